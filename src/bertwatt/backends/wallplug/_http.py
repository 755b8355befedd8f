"""HTTP for wall meters: :mod:`bertwatt._http` with the meters' logins and wording.

The request itself (a total deadline, bodies capped at :data:`MAX_BODY` bytes, no redirects,
the TLS check, redaction of every credential it sends) is :func:`bertwatt._http.request`, shared
with the carbon-intensity providers. This module adds :class:`Credentials` (a user name and a
password that prints as ``***``), HTTP basic and digest logins (Shelly Gen2+), a time budget
over several requests (a probe), and the errors a meter's reader records.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import ssl
import time
from pathlib import Path
from typing import Any

from bertwatt._http import (
    Failure,
    Redactor,
    Response,
    StatusError,
    TransportError,
    body_text,
    check_credential,
    parse_origin,
    request,
    tls_context,
)
from bertwatt._http import parse_json as _parse
from bertwatt.errors import ConfigError, SensorReadError

__all__ = ["MAX_BODY", "Credentials", "HttpClient", "HttpError", "Response", "parse_json"]

#: Largest response body read from a meter (a status document is a few kB).
MAX_BODY = 256 * 1024

_MAX_ECHO = 200
_MAX_ERROR_BODY = 64 << 10  # of an error answer: redacted whole, then cut to _MAX_ECHO
_DIGEST_PARAM = re.compile(r'(\w+)=("[^"]*"|[^,\s]+)')

#: How a meter's reader words a request that got no HTTP answer (see TransportError.phrase).
_UNREACHABLE = (
    "cannot reach the meter: {}",
    "check the address, the port and that the meter is on this network",
)
_NO_ANSWER: dict[Failure, tuple[str, str | None]] = {
    "timeout": ("{}", "check that the meter is powered and reachable, or raise timeout_s"),
    "connect": _UNREACHABLE,
    "protocol": _UNREACHABLE,
    "tls": (
        "{}",
        "give the BMC's CA bundle with verify='/path/ca.pem', or verify=False for a "
        "self-signed BMC on a trusted network",
    ),
    "header": (
        "{}",
        "check the user name, the password and the session token for stray characters",
    ),
}


class Credentials:
    """A user name and password for a meter. Prints as ``***``; never pickled.

    Both are checked like every bertwatt secret (:func:`bertwatt._http.check_credential`):
    surrounding whitespace is stripped, a control character is refused.

    Args:
        user: the user name (not secret, but checked the same way).
        password: the password text.
        password_file: a file holding the password (surrounding whitespace, such as the
            trailing newline, is stripped).
    """

    __slots__ = ("_password", "_redactor", "user")

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
        self.user = check_credential(user, "user") if user is not None else None
        self._password = check_credential(password, "password") if password is not None else None
        self._redactor = Redactor(self.secrets())

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

    def secrets(self) -> list[str]:
        """The texts to redact: the password and ``user:password`` in base64 (none without a
        password)."""
        if self._password is None:
            return []
        return [self._password, self.basic_header()[len("Basic ") :]]

    def redact(self, text: str) -> str:
        """``text`` with every form of the password (and of ``user:password`` in base64) replaced
        by ``***``: see :func:`bertwatt._http.redact`."""
        return self._redactor(text)

    def __repr__(self) -> str:
        return f"Credentials(user={self.user!r}, password={'***' if self._password else None})"

    def __reduce__(self) -> Any:
        raise TypeError("bertwatt does not pickle credentials")


class HttpError(StatusError, SensorReadError):
    """A meter answered with an HTTP error status (``status``) or not at all (``status`` None)."""


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
        self._origin = parse_origin(base_url, what=f"{backend}: URL")
        self.backend = backend
        self.scheme = self._origin.scheme
        self.host = self._origin.host
        self.port = self._origin.port
        self.prefix = self._origin.prefix
        self.timeout_s = timeout_s
        self.credentials = credentials or Credentials(self._origin.user)
        self.basic_auth = basic_auth
        self.verify = verify
        self.headers: dict[str, str] = {}
        self.deadline: float | None = None  # monotonic end of a multi-request budget (probe)
        self._context: ssl.SSLContext | None = None
        if self.scheme == "https":
            self._context = tls_context(verify, what=backend)

    @property
    def origin(self) -> str:
        """``scheme://host:port`` (never with credentials)."""
        return self._origin.base

    def url(self, path: str) -> str:
        """The full URL of ``path`` (for messages)."""
        return self._origin.url(path)

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
        headers = {"Accept": "application/json", **self.headers}
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
        try:
            resp = request(
                self._origin,
                method,
                path,
                timeout_s=timeout_s,
                max_body=MAX_BODY,
                headers=headers,
                body=data,
                context=self._context,
                secrets=self.credentials.secrets(),
                budget=budget,
            )
        except TransportError as err:
            raise self._transport_error(err, where) from None
        if not resp.complete:
            raise HttpError(
                f"answer larger than {MAX_BODY} bytes: not a meter status document",
                backend=self.backend,
                where=where,
            )
        return resp

    def _transport_error(self, err: TransportError, where: str) -> HttpError:
        """The meters' wording of a request that got no HTTP answer."""
        text, fix = err.phrase(_NO_ANSWER)
        return HttpError(self.credentials.redact(text), backend=self.backend, where=where, fix=fix)

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
        snippet = body_text(resp.body[:_MAX_ERROR_BODY], resp.redact, limit=_MAX_ECHO)
        return HttpError(
            f"the meter answered HTTP {status}" + (f": {snippet}" if snippet else ""),
            backend=self.backend,
            where=where,
            status=status,
        )


def parse_json(body: bytes, *, backend: str, where: str) -> Any:
    """Parse a JSON body; malformed text becomes a :class:`HttpError` naming the URL."""
    value, bad = _parse(body)
    if bad is not None:
        raise HttpError(
            f"malformed JSON from the meter ({bad[:_MAX_ECHO]})",
            backend=backend,
            where=where,
            fix="check that the URL points at the meter's status API",
        )
    return value
