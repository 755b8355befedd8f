"""Bounded HTTP for wall meters: one request, a hard deadline, no redirects, secrets never printed.

Standard library only (``http.client``, ``ssl``). Each request has a total deadline: the socket
timeout bounds every single operation, and a timer shuts the socket down when the whole request
(connect, send, headers, body) has taken longer than ``timeout_s``, so a device that trickles bytes
cannot hold a read for longer either. Bodies are capped at :data:`MAX_BODY` bytes.

:class:`Credentials` strips surrounding whitespace, refuses control characters, prints as ``***``
and redacts every form a password can be echoed in (raw, JSON-escaped, URL-encoded, base64 of
``user:password``) from any text before it reaches an error, a log line or a report.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import re
import secrets
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bertwatt.errors import ConfigError, SensorReadError

__all__ = ["MAX_BODY", "Credentials", "HttpClient", "HttpError", "parse_json"]

#: Largest response body read from a meter (a status document is a few kB).
MAX_BODY = 256 * 1024

_MAX_ECHO = 200
_DIGEST_PARAM = re.compile(r'(\w+)=("[^"]*"|[^,\s]+)')


class Credentials:
    """A user name and password for a meter. Prints as ``***``; never pickled.

    Args:
        user: the user name (not secret, but checked the same way).
        password: the password text.
        password_file: a file holding the password (surrounding whitespace, such as the
            trailing newline, is stripped).
    """

    __slots__ = ("_password", "user")

    def __init__(
        self,
        user: str | None,
        password: str | None = None,
        *,
        password_file: str | Path | None = None,
    ) -> None:
        if password is not None and password_file is not None:
            raise ConfigError("give password or password_file, not both")
        if password_file is not None:
            try:
                password = Path(password_file).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as err:
                reason = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
                raise ConfigError(
                    f"cannot read the password file {str(password_file)[:_MAX_ECHO]!r}: {reason}"
                ) from None
        self.user = _clean("user", user) if user is not None else None
        self._password = _clean("password", password) if password is not None else None

    @property
    def has_password(self) -> bool:
        """True when a password was given."""
        return self._password is not None

    def reveal(self) -> str | None:
        """The password itself (only to build a request or a child's environment)."""
        return self._password

    def basic_header(self) -> str:
        """The value of an ``Authorization: Basic`` header."""
        raw = f"{self.user or ''}:{self._password or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def redact(self, text: str) -> str:
        """``text`` with every known form of the password replaced by ``***``."""
        pw = self._password
        if not pw:
            return text
        forms = {
            pw,
            json.dumps(pw)[1:-1],
            json.dumps(pw, ensure_ascii=False)[1:-1],
            urllib.parse.quote(pw, safe=""),
            urllib.parse.quote_plus(pw, safe=""),
            self.basic_header()[len("Basic ") :],
            base64.b64encode(pw.encode()).decode("ascii"),
        }
        for form in sorted(forms, key=len, reverse=True):
            if form:
                text = text.replace(form, "***")
        return text

    def __repr__(self) -> str:
        return f"Credentials(user={self.user!r}, password={'***' if self._password else None})"

    def __reduce__(self) -> Any:
        raise TypeError("bertwatt does not pickle credentials")


def _clean(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a string, got {type(value).__name__}")
    value = value.strip()
    if not value:
        raise ConfigError(f"{name} is empty")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ConfigError(f"{name} contains a control character; check where it was read from")
    return value


class HttpError(SensorReadError):
    """A meter answered with an HTTP error status (``status``) or not at all (``status`` None)."""

    def __init__(
        self,
        message: str,
        *,
        backend: str | None = None,
        where: str | None = None,
        fix: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message, backend=backend, where=where, fix=fix)
        self.status = status

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_http, (self.message, self.backend, self.where, self.fix, self.status))


def _rebuild_http(
    message: str, backend: str | None, where: str | None, fix: str | None, status: int | None
) -> HttpError:
    return HttpError(message, backend=backend, where=where, fix=fix, status=status)


@dataclass(frozen=True, slots=True)
class Response:
    """One HTTP answer: status, headers (lower-case names) and body bytes."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class HttpClient:
    """Requests to one meter (scheme, host and port fixed at construction).

    Args:
        base_url: ``http://host[:port]`` or ``https://host[:port]``, optionally with a path prefix.
        backend: name used in error messages (``"shelly"``, ``"redfish"``, ...).
        timeout_s: total deadline of one request.
        verify: TLS certificate verification: True (system CA store), False (self-signed BMCs),
            or the path of a CA bundle.
        credentials: used for ``Authorization: Basic`` when ``basic_auth`` is true, and for
            redaction of every message.
    """

    def __init__(
        self,
        base_url: str,
        *,
        backend: str,
        timeout_s: float,
        verify: bool | str | Path = True,
        credentials: Credentials | None = None,
        basic_auth: bool = False,
    ) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"{backend}: URL must look like http://HOST or https://HOST, "
                f"got {base_url[:_MAX_ECHO]!r}"
            )
        if parts.password is not None:
            raise ConfigError(
                f"{backend}: put the password in password=, password_file= or the environment, "
                "not in the URL (it would show in process lists and logs)"
            )
        self.backend = backend
        self.scheme = parts.scheme
        self.host = parts.hostname
        try:
            self.port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ConfigError(f"{backend}: bad port in {base_url[:_MAX_ECHO]!r}") from None
        self.prefix = parts.path.rstrip("/")
        self.timeout_s = timeout_s
        self.credentials = credentials or Credentials(parts.username)
        self.basic_auth = basic_auth
        self.verify = verify
        self.headers: dict[str, str] = {}
        self.deadline: float | None = None  # monotonic end of a multi-request budget (probe)
        self._context: ssl.SSLContext | None = None
        if self.scheme == "https":
            if verify is False:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            elif verify is True:
                ctx = ssl.create_default_context()
            else:
                try:
                    ctx = ssl.create_default_context(cafile=str(verify))
                except (OSError, ssl.SSLError) as err:
                    raise ConfigError(f"{backend}: cannot load CA bundle {verify}: {err}") from None
            self._context = ctx

    @property
    def origin(self) -> str:
        """``scheme://host:port`` (never with credentials)."""
        return f"{self.scheme}://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        """The full URL of ``path`` (for messages)."""
        return f"{self.origin}{self.prefix}{path}"

    def request(
        self, method: str, path: str, *, body: Any = None, ok: tuple[int, ...] = (200,)
    ) -> Response:
        """One request with the total deadline; raises :class:`HttpError` on any failure.

        A 401 that asks for HTTP digest auth (Shelly Gen2+ logins: SHA-256) is answered once with
        the credentials, when there are some.
        """
        where = self.credentials.redact(self.url(path))
        resp = self._once(method, path, body, None, where)
        challenge = resp.headers.get("www-authenticate", "")
        if (
            resp.status == 401
            and challenge.lower().startswith("digest ")
            and self.credentials.has_password
        ):
            auth = self._digest(method, f"{self.prefix}{path}", challenge)
            if auth is not None:
                resp = self._once(method, path, body, auth, where)
        if resp.status not in ok:
            raise self._status_error(resp, where)
        return resp

    def _digest(self, method: str, uri: str, challenge: str) -> str | None:
        """An ``Authorization: Digest`` value for ``challenge`` (RFC 7616; MD5 or SHA-256)."""
        params = dict(_DIGEST_PARAM.findall(challenge[len("digest ") :]))
        params = {k.lower(): v.strip('"') for k, v in params.items()}
        algorithm = params.get("algorithm", "MD5").upper()
        hashes = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
        if algorithm not in hashes or "nonce" not in params:
            return None
        h = hashes[algorithm]

        def digest(text: str) -> str:
            return h(text.encode()).hexdigest()

        user = self.credentials.user or "admin"
        realm, nonce = params.get("realm", ""), params["nonce"]
        ha1 = digest(f"{user}:{realm}:{self.credentials.reveal() or ''}")
        ha2 = digest(f"{method}:{uri}")
        fields = {
            "username": user,
            "realm": realm,
            "nonce": nonce,
            "uri": uri,
            "algorithm": algorithm,
        }
        if "auth" in params.get("qop", "").split(","):
            cnonce = secrets.token_hex(8)
            fields["response"] = digest(f"{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}")
            extra = f', qop=auth, nc=00000001, cnonce="{cnonce}"'
        else:
            fields["response"] = digest(f"{ha1}:{nonce}:{ha2}")
            extra = ""
        if "opaque" in params:
            fields["opaque"] = params["opaque"]
        return "Digest " + ", ".join(f'{k}="{v}"' for k, v in fields.items()) + extra

    def _once(
        self, method: str, path: str, body: Any, authorization: str | None, where: str
    ) -> Response:
        target = f"{self.prefix}{path}"
        headers = {"Accept": "application/json", "Connection": "close", **self.headers}
        if authorization is not None:
            headers["Authorization"] = authorization
        elif self.basic_auth and self.credentials.has_password:
            headers["Authorization"] = self.credentials.basic_header()
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        timeout_s = self.timeout_s
        budget = ""
        if self.deadline is not None and self.deadline - time.monotonic() < timeout_s:
            timeout_s = self.deadline - time.monotonic()
            budget = ", the rest of the probe's time budget"
            if timeout_s <= 0.05:
                raise HttpError(
                    "the meter did not finish answering within the probe's time budget",
                    backend=self.backend,
                    where=where,
                    fix="check that the meter is reachable and not overloaded, or raise timeout_s",
                )
        conn: http.client.HTTPConnection
        if self._context is not None:
            conn = http.client.HTTPSConnection(
                self.host, self.port, timeout=timeout_s, context=self._context
            )
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout_s)
        expired = threading.Event()
        held: list[socket.socket] = []  # the response keeps the socket after conn.sock is reset

        def kill() -> None:
            expired.set()
            for sock in held or ([conn.sock] if conn.sock is not None else []):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

        timer = threading.Timer(timeout_s, kill)
        timer.daemon = True
        started = time.monotonic()
        timer.start()
        try:
            conn.connect()
            if conn.sock is not None:
                held.append(conn.sock)
            if expired.is_set():
                raise TimeoutError("deadline passed while connecting")
            conn.request(method, target, body=data, headers=headers)
            resp = conn.getresponse()
            chunks = []
            size = 0
            while True:
                chunk = resp.read(16384)
                if not chunk:
                    break
                size += len(chunk)
                if size > MAX_BODY:
                    raise HttpError(
                        f"answer larger than {MAX_BODY} bytes: not a meter status document",
                        backend=self.backend,
                        where=where,
                    )
                chunks.append(chunk)
            if expired.is_set():  # the deadline cut the body short
                raise TimeoutError("deadline passed while reading")
            result = Response(
                resp.status, {k.lower(): v for k, v in resp.getheaders()}, b"".join(chunks)
            )
        except HttpError:
            raise
        except ssl.SSLCertVerificationError as err:
            raise HttpError(
                self.credentials.redact(f"TLS certificate not trusted: {err.verify_message}"),
                backend=self.backend,
                where=where,
                fix="give the BMC's CA bundle with verify='/path/ca.pem', or verify=False for a "
                "self-signed BMC on a trusted network",
            ) from None
        except (OSError, http.client.HTTPException) as err:
            if expired.is_set() or isinstance(err, TimeoutError | socket.timeout):
                elapsed = time.monotonic() - started
                raise HttpError(
                    f"no answer within {timeout_s:.3g} s{budget} (gave up after {elapsed:.1f} s)",
                    backend=self.backend,
                    where=where,
                    fix="check that the meter is powered and reachable, or raise timeout_s",
                ) from None
            text = self.credentials.redact(_os_text(err))
            raise HttpError(
                f"cannot reach the meter: {text}",
                backend=self.backend,
                where=where,
                fix="check the address, the port and that the meter is on this network",
            ) from None
        finally:
            timer.cancel()
            conn.close()
        return result

    def get_json(self, path: str) -> Any:
        """GET ``path`` and parse the JSON body."""
        resp = self.request("GET", path)
        return parse_json(resp.body, backend=self.backend, where=self.url(path))

    def _status_error(self, resp: Response, where: str) -> HttpError:
        status = resp.status
        if status in (401, 403):
            what = "user name and password" if status == 401 else "the account's privileges"
            return HttpError(
                f"the meter refused the request (HTTP {status}): authentication failed",
                backend=self.backend,
                where=where,
                status=status,
                fix=f"check {what} (user=, password= or password_file=, or "
                "BERTWATT_WALLPLUG_USER / BERTWATT_WALLPLUG_PASSWORD_FILE)",
            )
        if 300 <= status < 400:
            return HttpError(
                f"the meter answered with a redirect (HTTP {status}); bertwatt does not follow "
                "redirects so that credentials cannot leak to another host",
                backend=self.backend,
                where=where,
                status=status,
                fix="use the URL the meter redirects to (often https:// instead of http://)",
            )
        snippet = self.credentials.redact(resp.body[:_MAX_ECHO].decode("utf-8", "replace"))
        snippet = "".join(ch if ch.isprintable() else "?" for ch in snippet)
        return HttpError(
            f"the meter answered HTTP {status}" + (f": {snippet}" if snippet else ""),
            backend=self.backend,
            where=where,
            status=status,
        )


def parse_json(body: bytes, *, backend: str, where: str) -> Any:
    """Parse a JSON body; malformed text becomes a :class:`HttpError` naming the URL."""
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise HttpError(
            f"malformed JSON from the meter ({type(err).__name__}: {str(err)[:_MAX_ECHO]})",
            backend=backend,
            where=where,
            fix="check that the URL points at the meter's status API",
        ) from None


def _os_text(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return f"{type(err).__name__}: {err}"[:_MAX_ECHO]
