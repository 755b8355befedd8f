"""Real HTTP servers on 127.0.0.1 that speak the documented meter payloads, with fault switches.

A :class:`Device` holds the state (power, an energy counter that grows with real time) and the
fault to inject; each test gives it a ``route(method, path, headers, body)`` that answers like the
device family. Servers listen on 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

Answer = tuple[int, Any, dict[str, str]]


class Device:
    """State and faults of one fake meter.

    ``fault``: None, ``"hang"`` (no answer until released), ``"500"``, ``"garbage"`` (not JSON),
    ``"close"`` (drop the connection), ``"trickle"`` (one byte every 0.5 s).
    """

    def __init__(self, power_w: float = 100.0, energy_j: float = 0.0) -> None:
        self.power_w = power_w
        self._e0 = energy_j
        self._t0 = time.monotonic()
        self.fault: str | None = None
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.basic: tuple[str, str] | None = None  # HTTP basic auth required
        self.query_login: tuple[str, str] | None = None  # Tasmota's user=/password= query
        self.digest: tuple[str, str] | None = None  # Shelly Gen2+: HTTP digest, SHA-256

    def energy_j(self) -> float:
        """Counter now: energy so far at the current power (re-based when power changes)."""
        with self.lock:
            return self._e0 + self.power_w * (time.monotonic() - self._t0)

    def set_power(self, watts: float) -> None:
        e = self.energy_j()
        with self.lock:
            self._e0, self._t0, self.power_w = e, time.monotonic(), watts

    def reboot(self) -> None:
        """The device restarts: its counter starts again from 0."""
        with self.lock:
            self._e0, self._t0 = 0.0, time.monotonic()

    def authorized(self, headers: dict[str, str]) -> bool:
        if self.basic is None:
            return True
        want = "Basic " + base64.b64encode(":".join(self.basic).encode()).decode()
        return headers.get("authorization") == want


def _handler(device: Device, route: Callable[..., Answer]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _any(self, method: str) -> None:
            n = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(n) if n else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            device.requests.append((method, self.path, headers, body))
            fault = device.fault
            if fault == "hang":
                device.release.wait(30)
                return
            if fault == "close":
                self.close_connection = True
                self.connection.close()
                return
            if fault == "500":
                self._send(500, b"internal error", {})
                return
            if fault == "garbage":
                self._send(200, b"{not json", {"Content-Type": "application/json"})
                return
            if not device.authorized(headers):
                self._send(401, b"unauthorized", {"WWW-Authenticate": 'Basic realm="x"'})
                return
            # Shelly answers GET /shelly without a login (its identity is public)
            if (
                device.digest is not None
                and self.path != "/shelly"
                and not _digest_ok(device.digest, method, self.path, headers)
            ):
                challenge = (
                    'Digest qop="auth", realm="shellyplusplugs-aabbcc", '
                    f'nonce="{int(time.time())}", algorithm=SHA-256'
                )
                self._send(401, b"", {"WWW-Authenticate": challenge})
                return
            status, payload, extra = route(method, self.path, headers, body)
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            if fault == "trickle":
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                for i in range(len(data)):
                    if device.release.wait(0.5):
                        return
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()
                return
            self._send(status, data, {"Content-Type": "application/json", **extra})

        def _send(self, status: int, data: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._any("GET")

        def do_POST(self) -> None:
            self._any("POST")

        def do_DELETE(self) -> None:
            self._any("DELETE")

    return Handler


def _digest_ok(login: tuple[str, str], method: str, path: str, headers: dict[str, str]) -> bool:
    """Check an RFC 7616 SHA-256 digest answer as a Shelly Gen2+ device does."""
    import hashlib
    import re

    value = headers.get("authorization", "")
    if not value.startswith("Digest "):
        return False
    f = {k: v.strip('"') for k, v in re.findall(r'(\w+)=("[^"]*"|[^,\s]+)', value[7:])}

    def h(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    user, password = login
    if f.get("username") != user or f.get("uri") != path or f.get("algorithm") != "SHA-256":
        return False
    ha1 = h(f"{user}:{f.get('realm')}:{password}")
    ha2 = h(f"{method}:{path}")
    want = h(f"{ha1}:{f.get('nonce')}:{f.get('nc')}:{f.get('cnonce')}:{f.get('qop')}:{ha2}")
    return f.get("response") == want


class Served:
    """A running server: ``url``, its ``device``, and ``stop()``."""

    def __init__(self, device: Device, route: Callable[..., Answer]) -> None:
        self.device = device
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(device, route))
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.device.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    """serve(route, device=None) -> Served; every server is stopped at the end of the test."""
    started: list[Served] = []

    def _serve(route: Callable[..., Answer], device: Device | None = None) -> Served:
        s = Served(device or getattr(route, "device", None) or Device(), route)
        started.append(s)
        return s

    yield _serve
    for s in started:
        s.stop()


def shelly_gen2(device: Device) -> Callable[..., Answer]:
    """Routes of a Shelly Plus Plug S (Gen2 RPC)."""

    def route(method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        if path == "/shelly":
            return (
                200,
                {
                    "id": "shellyplusplugs-aabbcc",
                    "model": "SNPL-00112EU",
                    "gen": 2,
                    "fw_id": "20231107-164738/1.0.8-g",
                    "auth_en": False,
                },
                {},
            )
        if path == "/rpc/Switch.GetStatus?id=0":
            return (
                200,
                {
                    "id": 0,
                    "source": "init",
                    "output": True,
                    "apower": round(device.power_w, 1),
                    "voltage": 231.2,
                    "current": round(device.power_w / 231.2, 3),
                    "aenergy": {
                        "total": round(device.energy_j() / 3600.0, 3),
                        "by_minute": [0.0, 0.0, 0.0],
                        "minute_ts": int(time.time()),
                    },
                    "temperature": {"tC": 38.1, "tF": 100.6},
                },
                {},
            )
        return 404, {"code": 404, "message": "No handler for " + path}, {}

    route.device = device  # type: ignore[attr-defined]
    return route


def tasmota(device: Device, energy_res: int = 3) -> Callable[..., Answer]:
    """Routes of a Tasmota plug (``/cm?cmnd=...``)."""
    import urllib.parse

    def route(method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        parts = urllib.parse.urlsplit(path)
        q = dict(urllib.parse.parse_qsl(parts.query))
        login = device.query_login
        if login is not None and (q.get("user"), q.get("password")) != login:
            return 200, {"WARNING": "Need user=<username>&password=<password>"}, {}
        cmnd = q.get("cmnd", "").lower()
        if parts.path == "/cm" and cmnd == "status 8":
            total_kwh = round(device.energy_j() / 3.6e6, energy_res)
            return (
                200,
                {
                    "StatusSNS": {
                        "Time": "2026-01-01T00:00:00",
                        "ENERGY": {
                            "TotalStartTime": "2025-12-01T00:00:00",
                            "Total": total_kwh,
                            "Yesterday": 0.0,
                            "Today": total_kwh,
                            "Power": round(device.power_w),
                            "ApparentPower": round(device.power_w),
                            "ReactivePower": 0,
                            "Factor": 1.0,
                            "Voltage": 230,
                            "Current": round(device.power_w / 230, 3),
                        },
                    }
                },
                {},
            )
        if parts.path == "/cm" and cmnd == "energyres":
            return 200, {"EnergyRes": energy_res}, {}
        return 200, {"Command": "Unknown"}, {}

    route.device = device  # type: ignore[attr-defined]
    return route
