"""A Shelly Gen2 plug emulator on 127.0.0.1, to try ``--wallplug`` without hardware.

It answers ``GET /shelly`` and ``GET /rpc/Switch.GetStatus?id=0`` with the documented payload
(``apower`` in W, ``aenergy.total`` in Wh since start) for a constant load of ``--watts``. The
figures it gives are whatever you set: an emulator shows how the comparison reads, it measures
nothing.

    python examples/wallplug_emulator.py --watts 95 --port 8081 &
    bertwatt sensors --wallplug shelly+http://127.0.0.1:8081
"""

from __future__ import annotations

import argparse
import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watts", type=float, default=95.0, help="constant power to report")
    parser.add_argument("--port", type=int, default=8081)
    args = parser.parse_args()
    started = time.monotonic()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.path == "/shelly":
                doc: dict[str, object] = {
                    "id": "shellyplusplugs-emulated",
                    "gen": 2,
                    "model": "SNPL-00112EU",
                    "fw_id": "emulator",
                }
            elif self.path == "/rpc/Switch.GetStatus?id=0":
                wh = args.watts * (time.monotonic() - started) / 3600.0
                doc = {
                    "id": 0,
                    "output": True,
                    "apower": args.watts,
                    "aenergy": {"total": round(wh, 3)},
                }
            else:
                self.send_error(404)
                return
            body = json.dumps(doc).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"emulated Shelly at http://127.0.0.1:{args.port} reporting {args.watts:g} W", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
