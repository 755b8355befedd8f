"""Credentials never leak: real HTTP servers on 127.0.0.1 echo them back in every form.

Each server answers with the credential it was sent, raw, JSON-escaped (``\\/``), URL-encoded,
HTML-escaped, as base64 of ``user:password``, cut short, and in the HTTP reason phrase. None of it
may reach the report's carbon notes, the JSON report, logs, warnings or exceptions.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import threading
import urllib.parse
import warnings
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bertwatt.carbon import CarbonIntensity
from bertwatt.carbon.providers import ElectricityMaps, ProviderHTTPError, WattTime
from bertwatt.carbon.providers._http import redact
from bertwatt.errors import CarbonDataError, ConfigError
from bertwatt.meter import EnergyMeter
from bertwatt.testing import FakeBackend, FakeChannel, FakeClock

# '/', '+', '=', '&' and ' ' make the JSON-escaped and URL-encoded forms differ from the raw one
TOKEN = "em/SeCrEt+t0ken=9f2c&Zk"
USER = "ada"
PASSWORD = "wt/pa55 w0rd+Zq=é"
JWT = "eyJhbGciOiJIUzI1NiJ9.wt/jwt+SeCrEt"


def every_form(secret: str) -> list[str]:
    raw = secret.encode()
    return [
        secret,
        json.dumps(secret)[1:-1].replace("/", "\\/"),
        json.dumps(secret, ensure_ascii=True)[1:-1],
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret),
        urllib.parse.quote(secret, safe="").lower(),
        html.escape(secret),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
        repr(raw)[2:-1],
    ]


def leaks(text: str) -> list[str]:
    """Every credential fragment (a form, or any 8-character piece of one) found in ``text``."""
    found = []
    for secret in (TOKEN, PASSWORD, JWT, f"{USER}:{PASSWORD}"):
        for form in every_form(secret):
            pieces = {form} | {form[i : i + 8] for i in range(0, max(1, len(form) - 7))}
            found += [p for p in pieces if len(p) >= 8 and p in text]
    return found


class EchoServer:
    """Answers every request with what it was sent, in the shape ``mode`` names."""

    def __init__(self) -> None:
        self.mode = "error-body"
        self.seen: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                server.seen.append({"path": self.path, **headers})
                sent = headers.get("auth-token") or headers.get("authorization", "")
                if sent.startswith("Basic "):
                    plain = base64.b64decode(sent[6:]).decode()
                    echoes = [sent, plain, *every_form(plain), *every_form(plain.split(":", 1)[1])]
                elif sent.startswith("Bearer "):
                    echoes = every_form(sent[7:])
                else:
                    echoes = every_form(sent)
                if self.path.startswith("/login") and server.mode != "login-fails":
                    self._send(200, {"token": JWT})
                    return
                mode = server.mode
                if mode in ("error-body", "login-fails"):
                    body = "denied: " + " | ".join(echoes)
                    self._send(401, body.encode(), reason="Unauthorized " + echoes[0][:40])
                elif mode == "cut-echo":
                    cut = echoes[0][: len(echoes[0]) - 3]
                    self._send(503, f"upstream rejected credential {cut}".encode())
                elif mode == "long-echo":
                    # the secret sits after 400 bytes: a truncate-then-redact leaks its start
                    self._send(500, ("x" * 400 + " token=" + echoes[0] + " " + "y" * 400).encode())
                elif mode == "json-escaped":
                    self._send(
                        403, json.dumps({"error": "bad token", "got": sent}).replace("/", "\\/")
                    )
                elif mode == "in-answer":
                    self._send(
                        200,
                        {
                            "zone": "DE",
                            "carbonIntensity": 300,
                            "datetime": f"not-a-date {sent}",
                            "isEstimated": True,
                            "estimationMethod": urllib.parse.quote(sent, safe=""),
                            "data": [{"point_time": f"bad {sent}", "value": 100.0}],
                            "meta": {"units": "lbs_co2_per_mwh"},
                        },
                    )
                elif mode == "bad-number":
                    self._send(
                        200, {"zone": "DE", "carbonIntensity": sent, "data": [{"value": sent}]}
                    )
                else:  # pragma: no cover - a typo in a test
                    raise AssertionError(mode)

            def _send(self, status: int, body: Any, reason: str | None = None) -> None:
                data = json.dumps(body).encode() if isinstance(body, dict) else body
                if isinstance(data, str):
                    data = data.encode()
                reason = reason.encode("latin-1", "replace").decode("latin-1") if reason else None
                self.send_response(status, reason)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def echo(monkeypatch: pytest.MonkeyPatch) -> Iterator[EchoServer]:
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    server = EchoServer()
    try:
        yield server
    finally:
        server.close()


def em(echo: EchoServer, tmp_path: Path, token: str = TOKEN) -> ElectricityMaps:
    return ElectricityMaps(
        zone="DE",
        token=token,
        base_url=echo.url + "/v3",
        timeout_s=2.0,
        retries=1,
        backoff_s=0.0,
        cache_dir=tmp_path / "cache",
    )


def wt(echo: EchoServer, tmp_path: Path, password: str = PASSWORD) -> WattTime:
    return WattTime(
        region="CAISO_NORTH",
        username=USER,
        password=password,
        base_url=echo.url,
        timeout_s=2.0,
        retries=1,
        backoff_s=0.0,
        cache_dir=tmp_path / "cache",
    )


def metered_report(provider: Any) -> tuple[Any, list[str]]:
    """A real meter run whose carbon comes from ``provider``; returns (report, warning texts)."""
    clock = FakeClock()
    backend = FakeBackend(channels=[FakeChannel("gpu:0", 100.0, kind="counter")], clock=clock)
    live = CarbonIntensity.live(provider, fallback="DE", wait_s=10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with EnergyMeter(backends=[backend], clock=clock, carbon=live) as meter:
            clock.advance(10)
    return meter.report, [str(w.message) for w in caught]


def exception_texts(err: BaseException) -> list[str]:
    texts = [str(err), repr(err), *(str(a) for a in err.args)]
    for name in ("message", "where", "fix"):
        texts.append(str(getattr(err, name, "")))
    seen = err.__cause__ or err.__context__
    while seen is not None:
        texts += [str(seen), repr(seen)]
        seen = seen.__cause__ or seen.__context__
    return texts


PROVIDERS: dict[str, Callable[[EchoServer, Path], Any]] = {"electricitymaps": em, "watttime": wt}


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
@pytest.mark.parametrize(
    "mode", ["error-body", "cut-echo", "long-echo", "json-escaped", "in-answer", "bad-number"]
)
def test_no_echo_of_a_credential_reaches_any_output(
    echo: EchoServer, tmp_path: Path, caplog: pytest.LogCaptureFixture, provider: str, mode: str
) -> None:
    caplog.set_level(logging.DEBUG)
    echo.mode = mode
    make = PROVIDERS[provider]
    # the exception path
    texts: list[str] = []
    try:
        make(echo, tmp_path).fetch()
    except CarbonDataError as err:
        texts += exception_texts(err)
    # the report path: a real meter, carbon from the live provider, fallback on failure
    report, warned = metered_report(make(echo, tmp_path / "second"))
    assert report.carbon is not None
    texts += [*report.carbon.notes, report.model_dump_json(), report.summary(), *warned]
    texts.append(caplog.text)
    texts += [p.read_text() for p in tmp_path.rglob("*") if p.is_file()]
    assert echo.seen, "the server was never asked"
    for text in texts:
        assert not leaks(text), (mode, text[:500])


def test_the_echo_server_really_echoes(echo: EchoServer, tmp_path: Path) -> None:
    """Guard: without redaction the server's answer holds the token (the test above can fail)."""
    import urllib.request

    req = urllib.request.Request(echo.url + "/x", headers={"auth-token": TOKEN})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=5)
    body = info.value.read().decode()
    assert TOKEN in body and leaks(body)
    with pytest.raises(ProviderHTTPError) as err:
        em(echo, tmp_path).fetch()
    assert "***" in str(err.value) and err.value.status == 401


@pytest.mark.parametrize("padding", ["\n", "\r\n", "  ", "\t", " \n"])
def test_surrounding_whitespace_is_stripped_at_construction(
    echo: EchoServer, tmp_path: Path, padding: str
) -> None:
    echo.mode = "in-answer"
    reading = em(echo, tmp_path, token=TOKEN + padding).fetch()
    assert reading.g_per_kwh == 300.0
    assert echo.seen[-1]["auth-token"] == TOKEN
    wt(echo, tmp_path, password=padding + PASSWORD + padding).fetch()
    basic = next(s["authorization"] for s in echo.seen if s["path"] == "/login")
    assert base64.b64decode(basic[6:]).decode() == f"{USER}:{PASSWORD}"


@pytest.mark.parametrize("bad", ["\n", "\r", "\x00", "\x1b[2J", "\x7f", "\u2028", "\u200b"])
def test_inner_control_characters_are_refused_without_echo(tmp_path: Path, bad: str) -> None:
    token = TOKEN[:6] + bad + TOKEN[6:]
    with pytest.raises(ConfigError, match="control character") as info:
        ElectricityMaps(zone="DE", token=token, cache_dir=tmp_path)
    for text in exception_texts(info.value):
        assert TOKEN[:6] not in text and TOKEN[6:] not in text
    with pytest.raises(ConfigError, match="control character") as info:
        WattTime(region="CAISO_NORTH", username=USER, password=token, cache_dir=tmp_path)
    assert not any(TOKEN[6:] in t for t in exception_texts(info.value))
    with pytest.raises(ConfigError, match="control character"):
        WattTime(region="CAISO_NORTH", username="a" + bad + "b", password=PASSWORD)


def test_redaction_happens_before_truncation() -> None:
    text = "x" * 290 + " " + TOKEN
    out = redact(text, [TOKEN])
    assert out.endswith("***") and not leaks(out)
    # an echo cut short by the server itself is still redacted
    assert redact("said " + TOKEN[:9], [TOKEN]) == "said ***"
    assert redact("said " + TOKEN[:9] + "... more", [TOKEN]) == "said ***... more"


def test_a_login_token_with_control_characters_is_refused_without_echo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad_jwt = JWT + "\r\nX-Injected: 1"

    class Login(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"token": bad_jwt}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Login)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        provider = WattTime(
            region="CAISO_NORTH",
            username=USER,
            password=PASSWORD,
            base_url=f"http://127.0.0.1:{httpd.server_address[1]}",
            retries=0,
            cache_dir=tmp_path,
        )
        with pytest.raises(CarbonDataError, match="control characters") as info:
            provider.fetch()
    finally:
        httpd.shutdown()
        httpd.server_close()
    for text in exception_texts(info.value):
        assert not leaks(text) and "X-Injected" not in text


def test_secrets_do_not_pickle_and_print_masked() -> None:
    import pickle

    from bertwatt.carbon.providers import Secret

    s = Secret(TOKEN + "\n")
    assert s.reveal() == TOKEN and str(s) == repr(s) == "'***'"
    with pytest.raises(TypeError):
        pickle.dumps(s)
    assert TOKEN not in repr(ElectricityMaps(zone="DE", token=s))
