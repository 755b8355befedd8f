"""The one HTTP client of bertwatt: bounded requests, no redirects, secrets never printed.

Standard library only (``http.client``, ``ssl``); nothing here touches the network until
:func:`request` is called. Used by the carbon-intensity providers (``carbon/providers/``) and the
wall meters (``backends/wallplug/``), which phrase their own errors on top of it.

- :class:`Secret` and :func:`check_credential`: a token or password is stripped of surrounding
  whitespace, refused if it holds a control character (the message names the position, never the
  text), prints as ``***`` and never pickles.
- :class:`Redactor` / :func:`redact`: every form a secret may be echoed in (raw, JSON-escaped,
  URL-encoded, HTML-escaped, repr, base64), in any letter case, whole or cut short, becomes
  ``***``. Texts are redacted *before* they are cut (:func:`body_text`).
- :func:`request`: one request with a total deadline (the socket timeout bounds each operation,
  and a timer shuts the socket down once the whole request has taken ``timeout_s``, so a peer that
  trickles bytes cannot hold it longer), a capped body, never a redirect (``http.client`` follows
  none), and every failure as a :class:`TransportError` whose text is already redacted. The
  values of credential headers (``Authorization``, ``X-Auth-Token``, ...) count as secrets.
- :func:`parse_origin` refuses a password in a URL (it would show in process lists, reprs and
  every error); :func:`tls_context` builds the certificate check; :func:`env_proxy` applies the
  ``*_proxy`` / ``no_proxy`` environment variables the way ``urllib`` does.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import re
import socket
import ssl
import threading
import time
import unicodedata
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bertwatt.errors import BertwattError, ConfigError

__all__ = [
    "SECRET_HEADERS",
    "Failure",
    "Origin",
    "Redactor",
    "Response",
    "Secret",
    "StatusError",
    "TransportError",
    "body_text",
    "check_credential",
    "cut",
    "env_proxy",
    "header_secrets",
    "parse_json",
    "parse_origin",
    "printable",
    "redact",
    "request",
    "tls_context",
]

#: Header names whose values are credentials (compared in lower case).
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-auth-token", "auth-token", "cookie", "x-api-key"}
)
_MAX_ECHO = 200  # characters of a URL or a path echoed in a configuration error
_MIN_FRAGMENT = 6  # a cut echo shorter than this says too little about a secret to matter
_CHUNK = 16384


# ----------------------------------------------------------------------------- secrets
class Secret:
    """A token or password. Prints as ``***``; :meth:`reveal` returns the text for a request.

    Surrounding whitespace (a token read from a file ends in a newline) is stripped at
    construction; any other control character is refused with a :class:`ConfigError` that names
    the position, never the text.

    Args:
        value: the secret text (or another Secret).
        what: what it is, for error messages (``"token"``, ``"password"``).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str | Secret, *, what: str = "token or password") -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        self._value = check_credential(value, what)

    def reveal(self) -> str:
        """The secret text itself (only for building a request)."""
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> Any:
        raise TypeError("bertwatt does not pickle secrets")


def check_credential(value: object, what: str) -> str:
    """``value`` with surrounding whitespace stripped; ConfigError if it is not a non-empty string
    or holds a control character (Unicode Cc, Cf, Zl, Zp). The message never contains the value."""
    if not isinstance(value, str):
        raise ConfigError(f"the {what} must be a string, got {type(value).__name__}")
    text = value.strip()
    if not text:
        raise ConfigError(f"the {what} must be a non-empty string")
    for pos, char in enumerate(text):
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            raise ConfigError(
                f"the {what} contains a control character (U+{ord(char):04X} at position {pos})",
                fix=f"pass the {what} exactly as issued, without line breaks or escape codes "
                "(a value read from a file: strip it first)",
            )
    return text


def _html_escape(value: str) -> str:
    """``html.escape(value)`` without importing ``html`` (its entity tables cost an import)."""
    for char, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;")):
        value = value.replace(char, entity)
    return value.replace("'", "&#x27;")


def _forms(value: str) -> set[str]:
    """Every spelling of ``value`` a server or a library may echo back."""
    raw = value.encode("utf-8")
    forms = {
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote(value),
        urllib.parse.quote_plus(value),
        _html_escape(value),
        repr(value)[1:-1],
        repr(raw)[2:-1],
        base64.b64encode(raw).decode("ascii"),
        base64.urlsafe_b64encode(raw).decode("ascii"),
        base64.b64encode(raw).decode("ascii").rstrip("="),
        base64.urlsafe_b64encode(raw).decode("ascii").rstrip("="),
    }
    forms |= {f.replace("/", "\\/") for f in list(forms)}  # JSON's optional escaped solidus
    forms |= {re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), f) for f in list(forms)}
    return {f for f in forms if f}


class Redactor:
    """Replaces every echo of some secrets by ``***`` (see :func:`redact`). The forms of the
    secrets are worked out on the first call and kept."""

    __slots__ = ("_forms", "_values")

    def __init__(self, secrets: Iterable[Secret | str | None] = ()) -> None:
        values = (s.reveal() if isinstance(s, Secret) else s for s in secrets)
        self._values = tuple(v for v in values if v)
        self._forms: tuple[str, ...] | None = None

    def __call__(self, text: str) -> str:
        if not self._values or not text:
            return text
        if self._forms is None:
            self._forms = tuple(sorted(set().union(*(_forms(v) for v in self._values))))
        lowered = text.lower()
        same_length = len(lowered) == len(text)  # a few characters change length in lower case
        if not same_length:
            lowered = text
        spans: list[tuple[int, int]] = []
        for form in self._forms:
            spans += _spans(lowered, form.lower() if same_length else form)
        if not spans:
            return text
        spans.sort()
        out: list[str] = []
        pos = 0
        cur_start, cur_end = spans[0]
        for a, b in spans[1:]:
            if a <= cur_end:
                cur_end = max(cur_end, b)
                continue
            out += [text[pos:cur_start], "***"]
            pos = cur_end
            cur_start, cur_end = a, b
        out += [text[pos:cur_start], "***", text[cur_end:]]
        return "".join(out)


def redact(text: str, secrets: Iterable[Secret | str | None]) -> str:
    """``text`` with every secret replaced by ``***``.

    Covers each secret's raw text and its JSON-escaped (``\\/`` included), URL-encoded,
    HTML-escaped, Python-repr and base64 forms, in any letter case, and any echo of one cut
    short (at least six characters of the start of a form). Redact *before* truncating anything.
    """
    return Redactor(secrets)(text)


def _spans(text: str, form: str) -> list[tuple[int, int]]:
    """Where ``form`` occurs in ``text``, whole or cut short (a prefix of six characters or
    more; a form shorter than that only whole)."""
    head = form[: min(len(form), _MIN_FRAGMENT)]
    spans = []
    at = text.find(head)
    while at >= 0:
        end = at + len(head)
        while end < len(text) and end - at < len(form) and text[end] == form[end - at]:
            end += 1
        spans.append((at, end))
        at = text.find(head, end)
    return spans


def header_secrets(headers: Mapping[str, str]) -> list[str]:
    """The credential values among ``headers``: each whole, and without its scheme word
    (``Basic``, ``Bearer``, ...), so that an echo of either is redacted."""
    out = []
    for name, value in headers.items():
        if name.lower() in SECRET_HEADERS and value:
            out.append(value)
            scheme, _, rest = value.partition(" ")
            if rest and scheme.isalpha():
                out.append(rest.strip())
    return out


# ----------------------------------------------------------------------------- texts
def cut(text: str, limit: int) -> str:
    """An (already redacted) text cut to ``limit`` characters, saying so when it was cut."""
    return text if len(text) <= limit else text[:limit] + "... (cut)"


def printable(text: str) -> str:
    """``text`` on one line: line breaks and tabs become spaces, other unprintable characters
    (terminal escape codes, ...) ``?``."""
    text = text.replace("\r", " ").replace("\n", " ").replace("\t", " ")
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def body_text(body: bytes, redactor: Redactor, *, limit: int) -> str:
    """A peer's answer as text for an error message: decoded, redacted whole, put on one printable
    line, then cut to ``limit`` characters (redacting first: a cut can split a secret)."""
    text = redactor(body.decode("utf-8", "replace"))
    return cut(printable(text).strip(), limit)


def parse_json(body: bytes) -> tuple[Any, str | None]:
    """``(value, None)``, or ``(None, reason)`` when ``body`` is not UTF-8 JSON."""
    try:
        return json.loads(body.decode("utf-8")), None
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        return None, f"{type(err).__name__}: {err}"


# ----------------------------------------------------------------------------- errors
class StatusError(BertwattError):
    """Base of the HTTP errors that carry the answer's ``status`` (None: no answer came).

    The concrete classes also derive from the error branch of their area
    (:class:`~bertwatt.errors.CarbonDataError`, :class:`~bertwatt.errors.SensorReadError`).
    """

    def __init__(self, message: str, *, status: int | None = None, **context: str | None) -> None:
        # context: backend=, where=, fix=, as for every bertwatt error
        super().__init__(message, **context)
        self.status = status

    def __reduce__(self) -> tuple[Any, ...]:
        context = {"backend": self.backend, "where": self.where, "fix": self.fix}
        return (_rebuild_status, (type(self), self.message, self.status, context))


def _rebuild_status(
    cls: type[StatusError], message: str, status: int | None, context: dict[str, str | None]
) -> StatusError:
    return cls(message, status=status, **context)


Failure = Literal["timeout", "connect", "tls", "protocol", "header"]


class TransportError(Exception):
    """A request that got no usable HTTP answer. ``text`` is redacted and printable.

    ``kind``: ``"timeout"`` (the deadline passed; ``text`` is the whole sentence),
    ``"tls"`` (the certificate is not trusted; whole sentence), ``"header"`` (a header value is not
    valid HTTP, refused before sending; whole sentence), ``"connect"`` (no connection, or it broke;
    ``text`` is the reason only) and ``"protocol"`` (the answer was not HTTP; reason only).
    """

    def __init__(self, kind: Failure, text: str) -> None:
        super().__init__(text)
        self.kind: Failure = kind
        self.text = text

    def phrase(self, wording: Mapping[Failure, tuple[str, str | None]]) -> tuple[str, str | None]:
        """``(message, fix)`` in a caller's words: ``wording[kind]`` is a template whose ``{}``
        takes :attr:`text`, and the fix (None: no fix)."""
        template, fix = wording[self.kind]
        return template.format(self.text), fix


# ----------------------------------------------------------------------------- where to
@dataclass(frozen=True, slots=True)
class Origin:
    """Where requests go: scheme, host, port, and a path prefix (no trailing slash)."""

    scheme: Literal["http", "https"]
    host: str
    port: int
    prefix: str = ""
    user: str | None = None

    @property
    def netloc(self) -> str:
        """``host:port`` (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def base(self) -> str:
        """``scheme://host:port`` (never with credentials)."""
        return f"{self.scheme}://{self.netloc}"

    def url(self, path: str) -> str:
        """The full URL of ``path`` (for messages)."""
        return f"{self.base}{self.prefix}{path}"

    def absolute(self, path: str) -> str:
        """The URL of ``path`` as a proxy is asked for it (no default port)."""
        default = self.port == (443 if self.scheme == "https" else 80)
        netloc = self.netloc.rpartition(":")[0] if default else self.netloc
        return f"{self.scheme}://{netloc}{self.prefix}{path}"


def parse_origin(url: object, *, what: str) -> Origin:
    """``url`` (``http[s]://host[:port][/prefix]``) as an :class:`Origin`.

    Raises ConfigError naming ``what`` (``"base_url"``, ``"shelly: URL"``) for another scheme, no
    host, a bad port, or a password in the URL (it would show in process lists, reprs and logs).
    """
    text = url if isinstance(url, str) else repr(url)
    shown = repr(text[:_MAX_ECHO])
    parts = urllib.parse.urlsplit(text) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{what} must be an http:// or https:// URL with a host "
            f"(http://HOST or https://HOST), got {shown}"
        )
    if parts.password is not None:
        raise ConfigError(
            f"{what}: put the password in password=, password_file= or the environment, "
            "not in the URL (it would show in process lists and logs)"
        )
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ConfigError(f"{what}: bad port in {shown}") from None
    scheme: Literal["http", "https"] = "https" if parts.scheme == "https" else "http"
    return Origin(scheme, parts.hostname, port, parts.path.rstrip("/"), parts.username)


def tls_context(verify: bool | str | Path, *, what: str) -> ssl.SSLContext:
    """The certificate check of https requests: True (the system CA store, which honours
    ``SSL_CERT_FILE``), False (none: self-signed devices on a trusted network), or the path of a
    CA bundle (ConfigError naming ``what`` when it cannot be loaded)."""
    if verify is True:
        return ssl.create_default_context()
    if verify is False:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    try:
        return ssl.create_default_context(cafile=str(verify))
    except (OSError, ssl.SSLError) as err:
        raise ConfigError(f"{what}: cannot load CA bundle {verify}: {err}") from None


@dataclass(frozen=True, slots=True)
class _Proxy:
    host: str
    port: int
    authorization: str | None  # the Proxy-Authorization value, from user:password in its URL


def env_proxy(origin: Origin) -> _Proxy | None:
    """The proxy the ``http_proxy`` / ``https_proxy`` / ``no_proxy`` environment variables choose
    for ``origin``, as ``urllib.request`` would (None: go direct)."""
    import urllib.request  # its import is not free; only the carbon providers ask

    proxies = urllib.request.getproxies()
    url = proxies.get(origin.scheme)
    if not url or urllib.request.proxy_bypass(origin.netloc):
        return None
    parts = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
    try:
        port = parts.port or 80
    except ValueError:
        port = 80
    auth = None
    if parts.username is not None and parts.password is not None:
        pair = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password)}"
        auth = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    return _Proxy(parts.hostname or "", port, auth)


# ----------------------------------------------------------------------------- request
@dataclass(frozen=True, slots=True)
class Response:
    """One HTTP answer: status, reason phrase, headers (lower-case names), and the body.

    ``complete`` is False when the body was longer than the cap: ``body`` then holds the first
    ``max_body + 1`` bytes only. :meth:`redact` knows every secret the request carried.
    """

    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes
    complete: bool = True
    redact: Redactor = field(default_factory=Redactor, repr=False)


def request(
    origin: Origin,
    method: str,
    path: str,
    *,
    timeout_s: float,
    max_body: int,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    context: ssl.SSLContext | None = None,
    proxy: _Proxy | None = None,
    secrets: Iterable[Secret | str | None] = (),
    budget: str = "",
) -> Response:
    """One request to ``origin.prefix + path`` within ``timeout_s`` seconds in total.

    Any HTTP answer (3xx and errors included: a redirect is never followed) is returned; reading
    stops past ``max_body`` bytes (``Response.complete`` False). ``context`` checks https
    certificates (:func:`tls_context`; None: the system store). ``budget`` is added to a timeout's
    text when ``timeout_s`` is the rest of a larger budget.

    Raises:
        TransportError: no usable answer (timeout, connection, TLS, not HTTP, a bad header).
    """
    hdrs = {"Connection": "close", **(headers or {})}
    target = origin.prefix + path
    tunnel_headers: dict[str, str] = {}
    if proxy is not None and proxy.authorization is not None:
        if origin.scheme == "https":
            tunnel_headers["Proxy-Authorization"] = proxy.authorization
        else:
            hdrs["Proxy-Authorization"] = proxy.authorization
    redactor = Redactor([*secrets, *header_secrets(hdrs), *header_secrets(tunnel_headers)])
    host, port = (origin.host, origin.port) if proxy is None else (proxy.host, proxy.port)
    conn: http.client.HTTPConnection
    if origin.scheme == "https":
        ctx = context if context is not None else ssl.create_default_context()
        conn = http.client.HTTPSConnection(host, port, timeout=timeout_s, context=ctx)
        if proxy is not None:
            conn.set_tunnel(origin.host, origin.port, headers=tunnel_headers)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
        if proxy is not None:
            target = origin.absolute(path)  # a plain proxy is asked for the absolute URL
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
        conn.request(method, target, body=body, headers=hdrs)
        resp = conn.getresponse()
        chunks: list[bytes] = []
        size = 0
        while size <= max_body:
            chunk = resp.read(min(_CHUNK, max_body + 1 - size))
            if not chunk:
                break
            size += len(chunk)
            chunks.append(chunk)
        if expired.is_set():  # the deadline cut the body short
            raise TimeoutError("deadline passed while reading")
        reason = str(resp.reason or "")
        if reason != http.client.responses.get(resp.status):  # a standard phrase holds no secret
            reason = printable(redactor(reason))
        return Response(
            status=resp.status,
            reason=reason,
            headers={k.lower(): v for k, v in resp.getheaders()},
            body=b"".join(chunks),
            complete=size <= max_body,
            redact=redactor,
        )
    except ssl.SSLCertVerificationError as err:
        text = f"TLS certificate not trusted: {err.verify_message}"
        raise TransportError("tls", printable(redactor(text))) from None
    except (OSError, http.client.HTTPException) as err:
        if expired.is_set() or isinstance(err, TimeoutError):
            elapsed = time.monotonic() - started
            text = f"no answer within {timeout_s:.3g} s{budget} (gave up after {elapsed:.1f} s)"
            raise TransportError("timeout", text) from None
        kind: Failure = "connect" if isinstance(err, OSError) else "protocol"
        raise TransportError(kind, cut(printable(redactor(_error_text(err))), 300)) from None
    except (ValueError, UnicodeError):
        # http.client refuses a header value; its message quotes the header (a secret)
        text = "the request was refused before sending: a header value is not valid HTTP"
        raise TransportError("header", text) from None
    finally:
        timer.cancel()
        conn.close()


def _error_text(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return f"{type(err).__name__}: {err}"
