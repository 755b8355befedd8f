"""The one HTTP client (bertwatt._http) through its two users, against real servers on 127.0.0.1.

Each test here pins a behaviour that only one of the two former clients had (the safer one now
holds for both): the wall meters' total deadline, URL-password refusal and TLS wording for the
carbon providers; the providers' thorough redaction, redact-before-cut, wider control-character
check and header-refusal handling for the wall meters; plus the proxy environment variables the
providers honoured through urllib, and the body caps.
"""

from __future__ import annotations

import base64
import html
import os
import pickle
import select
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bertwatt._http import Redactor, body_text, parse_origin, redact
from bertwatt.backends.wallplug._http import MAX_BODY, Credentials, HttpClient, HttpError
from bertwatt.carbon.providers import ProviderHTTPError, UKCarbonIntensity
from bertwatt.errors import CarbonDataError, ConfigError

PASSWORD = "s3cr3t/Pass word"
UK_NATIONAL = b'{"data": [{"from": "2025-03-01T12:00Z", "intensity": {"actual": 175}}]}'

Respond = Callable[[BaseHTTPRequestHandler], None]


class Server:
    """A ThreadingHTTPServer on 127.0.0.1 whose every request goes to ``respond``."""

    def __init__(self, respond: Respond, tls: ssl.SSLContext | None = None) -> None:
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                server.seen.append((self.command, self.path, headers))
                respond(self)

            def do_GET(self) -> None:
                self._any()

            def do_CONNECT(self) -> None:
                self._any()

            def log_message(self, *args: Any) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(respond: Respond, tls: ssl.SSLContext | None = None) -> Server:
        servers.append(Server(respond, tls))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy of the machine applies: a test that wants one sets it."""
    for name in [n for n in os.environ if n.lower().endswith("_proxy")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def reply(status: int, body: bytes, reason: str | None = None, **headers: str) -> Respond:
    def respond(h: BaseHTTPRequestHandler) -> None:
        h.send_response(status, reason)
        h.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            h.send_header(k.replace("_", "-"), v)
        h.end_headers()
        h.wfile.write(body)

    return respond


def echo_headers(status: int) -> Respond:
    """Answers ``status`` with every request header in the body and the reason phrase."""

    def respond(h: BaseHTTPRequestHandler) -> None:
        said = " ".join(f"{k}={v}" for k, v in h.headers.items())
        body = f"you sent {said}".encode()
        reason = ("got " + said)[:200].encode("latin-1", "replace").decode("latin-1")
        h.send_response(status, reason)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return respond


def meter(server: Server, **kw: Any) -> HttpClient:
    kw.setdefault("credentials", Credentials("admin", PASSWORD))
    return HttpClient(f"http://127.0.0.1:{server.port}", backend="http_json", timeout_s=2.0, **kw)


def uk(port: int, tmp_path: Path, scheme: str = "http", **kw: Any) -> UKCarbonIntensity:
    kw = {"timeout_s": 2.0, "retries": 0, "backoff_s": 0.0, "cache_dir": tmp_path, **kw}
    return UKCarbonIntensity(base_url=f"{scheme}://127.0.0.1:{port}", **kw)


def fragments(secret: str, size: int = 4) -> list[str]:
    return [secret[i : i + size] for i in range(len(secret) - size + 1)]


# ------------------------------------------------------------ wall meters: the providers' rules
def test_a_meter_error_is_redacted_before_it_is_cut(serve: Callable[..., Server]) -> None:
    # the old meter client cut the body at 200 characters, then redacted: 's3cr' leaked
    s = serve(reply(500, b"x" * 196 + PASSWORD.encode() + b" " + b"y" * 300))
    with pytest.raises(HttpError) as info:
        meter(s).get_json("/status")
    text = str(info.value)
    assert "HTTP 500" in text and "x" * 196 in text and "(cut)" in text
    assert not any(f in text for f in fragments(PASSWORD))


def test_a_meter_error_redacts_every_form_in_any_case(serve: Callable[..., Server]) -> None:
    raw = PASSWORD.encode()
    forms = [
        PASSWORD.upper(),
        html.escape(PASSWORD),
        urllib.parse.quote(PASSWORD, safe="").lower(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        PASSWORD[:9],  # an echo the device itself cut short
    ]
    s = serve(reply(503, (" | ".join(forms)).encode()))
    with pytest.raises(HttpError) as info:
        meter(s).get_json("/status")
    text = str(info.value)
    assert "HTTP 503" in text and "***" in text
    for form in forms:
        assert form not in text
    assert not any(f in text.lower() for f in fragments(PASSWORD.lower(), 6))


def test_a_session_token_sent_in_a_header_never_reaches_an_error(
    serve: Callable[..., Server],
) -> None:
    # Redfish sends its session token as X-Auth-Token; the old client redacted only the password
    s = serve(echo_headers(500))
    client = meter(s)
    client.headers["X-Auth-Token"] = "tok-9f8e7d6c5b4a"
    with pytest.raises(HttpError) as info:
        client.get_json("/redfish/v1/")
    text = str(info.value) + repr(info.value.args)
    assert "you sent" in text and "***" in text
    assert "9f8e7d6c" not in text and "tok-9f8e" not in text
    assert s.seen[0][2]["x-auth-token"] == "tok-9f8e7d6c5b4a"  # it was sent


def test_a_header_http_refuses_is_a_clear_meter_error(serve: Callable[..., Server]) -> None:
    # http.client refuses it with a UnicodeEncodeError that used to escape the meter client
    s = serve(reply(200, b"{}"))
    client = meter(s)
    client.headers["X-Auth-Token"] = "tøken-\u0394-0123456789"
    with pytest.raises(HttpError, match="not valid HTTP") as info:
        client.get_json("/status")
    assert "0123456789" not in str(info.value) and info.value.__cause__ is None
    assert s.seen == []


@pytest.mark.parametrize("bad", ["\u2028", "\u200b", "\x85", "\x9b"])
def test_meter_credentials_refuse_every_control_character(bad: str) -> None:
    # the old check refused only ASCII controls; the providers' check (Unicode Cc/Cf/Zl/Zp) holds
    with pytest.raises(ConfigError, match="control character") as info:
        Credentials("admin", "Qz7k" + bad + "Wv9m")
    assert "Qz7k" not in str(info.value) and "Wv9m" not in str(info.value)
    with pytest.raises(ConfigError, match="control character"):
        Credentials("ad" + bad + "min", "password")


def test_a_meter_answer_over_the_cap_is_refused(serve: Callable[..., Server]) -> None:
    s = serve(reply(200, b"[" + b"0," * (MAX_BODY // 2) + b"0]"))
    with pytest.raises(HttpError, match=f"larger than {MAX_BODY} bytes"):
        meter(s).get_json("/status")


# ------------------------------------------------------------ carbon providers: the meters' rules
def test_a_provider_request_has_a_total_deadline(
    serve: Callable[..., Server], tmp_path: Path
) -> None:
    # each byte comes within the socket timeout, so the old per-operation timeout never fired
    stop = threading.Event()

    def trickle(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(UK_NATIONAL)))
        h.end_headers()
        for i in range(len(UK_NATIONAL)):
            if stop.wait(0.2):
                return
            h.wfile.write(UK_NATIONAL[i : i + 1])
            h.wfile.flush()

    s = serve(trickle)
    begin = time.monotonic()
    try:
        with pytest.raises(ProviderHTTPError, match=r"no answer within 0\.5 s") as info:
            uk(s.port, tmp_path, timeout_s=0.5).fetch()
    finally:
        stop.set()
    assert time.monotonic() - begin < 4.0  # the whole body would take 14 s
    assert info.value.status is None


def test_a_password_in_a_provider_url_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not in the URL") as info:
        UKCarbonIntensity(base_url="https://ada:hunter2@api.example", cache_dir=tmp_path)
    assert "hunter2" not in str(info.value)
    with pytest.raises(ConfigError, match="base_url"):
        UKCarbonIntensity(base_url="https://", cache_dir=tmp_path)


def test_a_provider_error_has_no_terminal_codes(
    serve: Callable[..., Server], tmp_path: Path
) -> None:
    s = serve(reply(503, b"busy\x1b[2J\x07\r\nsecond line", reason="Busy\x1b[31m"))
    with pytest.raises(ProviderHTTPError) as info:
        uk(s.port, tmp_path).fetch()
    text = str(info.value)
    assert "HTTP 503" in text and "busy" in text and "second line" in text
    assert "\x1b" not in text and "\x07" not in text and "\n" not in text


def test_provider_errors_pickle_with_their_status() -> None:
    err = ProviderHTTPError("HTTP 503 busy", backend="ukgrid", where="http://x/", status=503)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is ProviderHTTPError and back.status == 503 and str(back) == str(err)
    werr = HttpError("the meter answered HTTP 500", backend="shelly", status=500, fix="retry")
    wback = pickle.loads(pickle.dumps(werr))
    assert type(wback) is HttpError and wback.status == 500 and str(wback) == str(werr)


def test_provider_body_caps(serve: Callable[..., Server], tmp_path: Path) -> None:
    big = b'{"data": "' + b"x" * (1 << 20) + b'"}'
    s = serve(reply(200, big))
    with pytest.raises(CarbonDataError, match="larger than 1 MiB"):
        uk(s.port, tmp_path).fetch()
    # an error answer is cut, not refused: it stays an HTTP error (and is retried)
    s = serve(reply(502, b"bad gateway " + b"z" * (2 << 20)))
    with pytest.raises(ProviderHTTPError, match="HTTP 502") as info:
        uk(s.port, tmp_path, retries=1).fetch()
    assert info.value.status == 502 and len(s.seen) == 2


# ------------------------------------------------------------ TLS and proxies
@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: cannot make a test certificate")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def tls_server(serve: Callable[..., Server], cert: tuple[Path, Path]) -> Server:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    return serve(reply(200, UK_NATIONAL), tls=ctx)


def test_a_provider_names_an_untrusted_certificate(
    serve: Callable[..., Server], cert: tuple[Path, Path], tmp_path: Path, monkeypatch: Any
) -> None:
    s = tls_server(serve, cert)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with pytest.raises(ProviderHTTPError, match="TLS certificate not trusted") as info:
        uk(s.port, tmp_path, scheme="https").fetch()
    assert "SSL_CERT_FILE" in str(info.value.fix)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert[0]))
    assert uk(s.port, tmp_path / "2", scheme="https").fetch().g_per_kwh == 175.0


def proxy_server(serve: Callable[..., Server]) -> Server:
    """A forward proxy for plain http (answers absolute-URI requests itself) and a CONNECT
    tunnel to 127.0.0.1 only."""

    def respond(h: BaseHTTPRequestHandler) -> None:
        if h.command != "CONNECT":
            reply(200, UK_NATIONAL)(h)
            return
        host, _, port = h.path.rpartition(":")
        if host != "127.0.0.1":
            reply(403, b"loopback only")(h)
            return
        upstream = socket.create_connection(("127.0.0.1", int(port)), timeout=5)
        h.send_response(200, "Connection established")
        h.end_headers()
        h.wfile.flush()
        pipes = [h.connection, upstream]
        try:
            while True:
                ready, _, _ = select.select(pipes, [], [], 5)
                if not ready:
                    return
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is h.connection else h.connection).sendall(data)
        finally:
            upstream.close()
            h.close_connection = True

    return serve(respond)


def test_a_provider_uses_the_http_proxy_of_the_environment(
    serve: Callable[..., Server], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = proxy_server(serve)
    monkeypatch.setenv("HTTP_PROXY", f"http://pu:proxy-pw-31415@127.0.0.1:{proxy.port}")
    monkeypatch.setenv("NO_PROXY", "localhost")
    # the host is never resolved: only the proxy is asked for it
    provider = UKCarbonIntensity(base_url="http://carbon.invalid", retries=0, cache_dir=tmp_path)
    assert provider.fetch().g_per_kwh == 175.0
    method, target, headers = proxy.seen[0]
    assert (method, target) == ("GET", "http://carbon.invalid/intensity")
    assert headers["host"] == "carbon.invalid"
    pair = base64.b64decode(headers["proxy-authorization"].split()[1]).decode()
    assert pair == "pu:proxy-pw-31415"


def test_a_provider_error_through_a_proxy_redacts_the_proxy_password(
    serve: Callable[..., Server], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = serve(echo_headers(502))
    monkeypatch.setenv("HTTP_PROXY", f"http://pu:proxy-pw-31415@127.0.0.1:{proxy.port}")
    monkeypatch.setenv("NO_PROXY", "localhost")
    provider = UKCarbonIntensity(base_url="http://carbon.invalid", retries=0, cache_dir=tmp_path)
    with pytest.raises(ProviderHTTPError, match="HTTP 502") as info:
        provider.fetch()
    text = str(info.value)
    assert "you sent" in text and "proxy-pw" not in text
    assert base64.b64encode(b"pu:proxy-pw-31415").decode()[:8] not in text


def test_a_provider_tunnels_https_through_the_proxy_unless_no_proxy_says(
    serve: Callable[..., Server],
    cert: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = tls_server(serve, cert)
    proxy = proxy_server(serve)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert[0]))
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.setenv("NO_PROXY", "localhost")
    assert uk(target.port, tmp_path, scheme="https").fetch().g_per_kwh == 175.0
    assert proxy.seen[0][:2] == ("CONNECT", f"127.0.0.1:{target.port}")
    assert target.seen[0][1] == "/intensity"
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert uk(target.port, tmp_path / "2", scheme="https").fetch().g_per_kwh == 175.0
    assert len(proxy.seen) == 1 and len(target.seen) == 2


# ------------------------------------------------------------ the shared pieces
def test_redaction_is_whole_then_cut() -> None:
    body = ("a" * 290 + " " + PASSWORD + " tail").encode()
    text = body_text(body, Redactor([PASSWORD]), limit=295)
    assert text.endswith("... (cut)") and "s3cr" not in text
    assert redact("said " + PASSWORD[:7], [PASSWORD]) == "said ***"
    assert Redactor([])("nothing to hide") == "nothing to hide"


def test_origins_refuse_what_would_leak_or_fail() -> None:
    o = parse_origin("https://meter.lan:8443/api/", what="x")
    assert (o.scheme, o.host, o.port, o.prefix) == ("https", "meter.lan", 8443, "/api")
    assert o.url("/s") == "https://meter.lan:8443/api/s"
    assert parse_origin("http://[::1]/", what="x").base == "http://[::1]:80"
    for bad in ("ftp://h", "http://", "h:80", None):
        with pytest.raises(ConfigError, match="http:// or https://"):
            parse_origin(bad, what="x")
    with pytest.raises(ConfigError, match="bad port"):
        parse_origin("http://h:99999", what="x")


def test_any_2xx_answer_of_a_provider_is_an_answer(
    serve: Callable[..., Server], tmp_path: Path
) -> None:
    # as with urllib before: 203 (a caching gateway's "non-authoritative") is still the answer
    s = serve(reply(203, UK_NATIONAL, reason="Non-Authoritative Information"))
    assert uk(s.port, tmp_path).fetch().g_per_kwh == 175.0
