"""Fixtures for the carbon tests: real reports, and a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

START = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def _no_proxy_no_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every request on 127.0.0.1 and start each test without BERTWATT_ZONE."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("BERTWATT_ZONE", raising=False)


def make_report(
    *,
    energy_j: float | None = 360_000.0,
    duration_s: float = 3600.0,
    timeline: list[tuple[float, float]] | None = None,
    phases: dict[str, tuple[list[tuple[float, float]], float | None]] | None = None,
    started_at: datetime = START,
) -> Any:
    """A real EnergyReport with the fields carbon uses."""
    from bertwatt.report.models import EnergyReport, HostInfo, PhaseReport

    if timeline is None:
        timeline = [] if energy_j is None else [(0.0, 0.0), (duration_s, energy_j)]
    phase_models = {}
    for name, (intervals, e) in (phases or {}).items():
        dur = sum(b - a for a, b in intervals)
        phase_models[name] = PhaseReport(
            name=name,
            intervals=intervals,
            count=len(intervals),
            duration_s=dur,
            energy_j=e,
            energy_kwh=None if e is None else e / 3.6e6,
            mean_power_w=None if e is None or dur == 0 else e / dur,
            coverage=1.0,
        )
    return EnergyReport(
        started_at=started_at,
        ended_at=started_at + timedelta(seconds=duration_s),
        duration_s=duration_s,
        interval_s=0.1,
        host=HostInfo(hostname="test", os="linux", python="3.11", bertwatt_version="0.1.0"),
        energy_j=energy_j,
        energy_kwh=None if energy_j is None else energy_j / 3.6e6,
        mean_power_w=None if energy_j is None else energy_j / duration_s,
        total_basis="test",
        timeline=timeline,
        phases=phase_models,
    )


@pytest.fixture
def report_factory() -> Callable[..., Any]:
    """Build EnergyReports (see make_report)."""
    return make_report


@dataclass
class Reply:
    """One scripted answer: status, body (dict/list -> JSON, str/bytes as is), delay, headers."""

    status: int = 200
    body: Any = None
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    """One request the server received."""

    path: str
    query: str
    headers: dict[str, str]


class FakeAPI:
    """Scripted answers per path; the last answer of a path repeats. Records every request."""

    Reply = Reply

    def __init__(self) -> None:
        self.routes: dict[str, list[Reply]] = {}
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def add(self, path: str, *replies: Reply | dict[str, Any]) -> None:
        self.routes[path] = [r if isinstance(r, Reply) else Reply(body=r) for r in replies]

    def hits(self, path: str) -> int:
        return sum(1 for s in self.seen if s.path == path)

    def _next(self, path: str) -> Reply:
        with self._lock:
            replies = self.routes.get(path)
            if not replies:
                return Reply(status=404, body={"error": f"no route {path}"})
            return replies.pop(0) if len(replies) > 1 else replies[0]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                with api._lock:
                    api.seen.append(
                        Seen(
                            parts.path, parts.query, {k.lower(): v for k, v in self.headers.items()}
                        )
                    )
                reply = api._next(parts.path)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                body = reply.body
                if isinstance(body, dict | list):
                    data = json.dumps(body).encode()
                elif isinstance(body, str):
                    data = body.encode()
                else:
                    data = body or b""
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api() -> Iterator[FakeAPI]:
    """A real HTTP server on 127.0.0.1 serving scripted provider answers."""
    server = FakeAPI()
    try:
        yield server
    finally:
        server.close()
