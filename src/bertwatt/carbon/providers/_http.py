"""What every live provider shares: secrets that never print, JSON over HTTP, an on-disk cache.

Standard library only (``urllib.request``, ``json``). Nothing here touches the network until a
provider's :meth:`~LiveProvider.fetch` is called.

- :class:`Secret` wraps a token or password: ``str()``/``repr()`` give ``'***'``, and every error
  message built here has each secret's text replaced by ``***``.
- :func:`get_json` does one GET with a timeout, retries timeouts, connection errors, HTTP 429 and
  5xx with exponential backoff, refuses redirects (so an auth header cannot follow one to
  another host), caps the body size and parses JSON.
- :class:`HTTPProvider` is the base of the bundled providers: validated settings, and a
  :meth:`~HTTPProvider.fetch` that asks the on-disk cache (:mod:`._cache`) before the network.
"""

from __future__ import annotations

import base64
import html
import http.client
import json
import logging
import math
import os
import re
import time
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from bertwatt.carbon.providers._cache import DiskCache
from bertwatt.carbon.series import parse_timestamp as parse_time
from bertwatt.errors import BertwattError, CarbonDataError, ConfigError

__all__ = [
    "HTTPProvider",
    "LiveProvider",
    "LiveReading",
    "ProviderHTTPError",
    "Secret",
    "get_json",
    "parse_time",
]

logger = logging.getLogger(__name__)

_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_MAX_BODY = 1 << 20
_MAX_BACKOFF_S = 30.0


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
    or holds a control character. The message never contains the value."""
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


_MIN_FRAGMENT = 6  # a cut echo shorter than this says too little about a secret to matter


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
        html.escape(value),
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


def redact(text: str, secrets: Iterable[Secret | str]) -> str:
    """``text`` with every secret replaced by ``***``.

    Covers each secret's raw text and its JSON-escaped (``\\/`` included), URL-encoded,
    HTML-escaped, Python-repr and base64 forms, in any letter case, and any echo of one cut
    short (at least six characters of the start of a form). Redact *before* truncating anything.
    """
    forms: set[str] = set()
    for s in secrets:
        value = s.reveal() if isinstance(s, Secret) else s
        if value:
            forms |= _forms(value)
    if not forms or not text:
        return text
    lowered = text.lower()
    if len(lowered) != len(text):  # a few characters change length in lower case
        lowered = text
    spans: list[tuple[int, int]] = []
    for form in forms:
        spans += _spans(lowered, form.lower() if lowered is not text else form)
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


def redact_error(err: BaseException, secrets: Iterable[Secret | str]) -> None:
    """Redact a bertwatt error's message, ``where``, ``fix`` and ``args`` in place."""
    secret_list = list(secrets)
    if isinstance(err, BertwattError):
        err.message = redact(err.message, secret_list)
        if err.where:
            err.where = redact(err.where, secret_list)
        if err.fix:
            err.fix = redact(err.fix, secret_list)
        err.args = (err.message,)
    else:
        err.args = tuple(redact(str(a), secret_list) for a in err.args)


class ProviderHTTPError(CarbonDataError):
    """A live provider answered with an HTTP error status (``status``) or could not be reached.

    ``status`` is None when no HTTP answer came (timeout, refused connection, DNS).
    """

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


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveReading:
    """One intensity value fetched from a live provider.

    Attributes:
        provider: provider name, e.g. ``"electricitymaps"``.
        zone: the provider's zone or region id, e.g. ``"DE"``, ``"GB"``, ``"CAISO_NORTH"``.
        g_per_kwh: intensity in gCO2e/kWh (gCO2/kWh where ``notes`` say CO2 only).
        basis: ``"average"`` (all generation) or ``"marginal"`` (the generators that respond to a
            change in load).
        at: the time the value is for, as given by the provider (UTC), when given.
        fetched_at: when bertwatt fetched it from the provider (UTC).
        source: the provider, endpoint and query the value came from.
        notes: caveats (forecast instead of actual, CO2 only, unit conversion, ...).
        from_cache: True when served from the on-disk cache rather than the network.
    """

    provider: str
    zone: str
    g_per_kwh: float
    basis: Literal["average", "marginal"]
    at: datetime | None
    fetched_at: datetime
    source: str
    notes: tuple[str, ...] = ()
    from_cache: bool = False

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (for the cache)."""
        return {
            "provider": self.provider,
            "zone": self.zone,
            "g_per_kwh": self.g_per_kwh,
            "basis": self.basis,
            "at": None if self.at is None else self.at.isoformat(),
            "fetched_at": self.fetched_at.isoformat(),
            "source": self.source,
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LiveReading:
        """Inverse of :meth:`to_json`; raises ValueError/KeyError/TypeError on a bad dict."""
        value = float(data["g_per_kwh"])
        if not math.isfinite(value) or value < 0:
            raise ValueError("bad g_per_kwh")
        basis = data["basis"]
        if basis not in ("average", "marginal"):
            raise ValueError("bad basis")
        at = data.get("at")
        return cls(
            provider=str(data["provider"]),
            zone=str(data["zone"]),
            g_per_kwh=value,
            basis=basis,
            at=None if at is None else parse_time(str(at)),
            fetched_at=parse_time(str(data["fetched_at"])),
            source=str(data["source"]),
            notes=tuple(str(n) for n in data.get("notes", ())),
        )


@runtime_checkable
class LiveProvider(Protocol):
    """What :meth:`bertwatt.carbon.CarbonIntensity.live` needs from a provider.

    Attributes:
        name: short provider name, e.g. ``"electricitymaps"``.
        zone: the zone or region asked for, in the provider's own naming.
    """

    name: str
    zone: str

    def fetch(self) -> LiveReading:
        """Return the latest intensity (blocking; may raise :class:`CarbonDataError`)."""
        ...


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> None:
        return None  # urllib then raises HTTPError with the 3xx status


def get_json(
    url: str,
    *,
    provider: str,
    headers: Mapping[str, str] | None = None,
    timeout_s: float,
    retries: int,
    backoff_s: float,
    secrets: Iterable[Secret | str] = (),
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """GET ``url`` and return its parsed JSON body.

    Retries (at most ``retries`` times, waiting ``backoff_s * 2**k`` seconds, capped at 30 s)
    on timeouts, connection errors, HTTP 429 and 5xx. Other HTTP errors, redirects, bodies over
    1 MiB and malformed JSON fail at once.

    Raises:
        ProviderHTTPError: the provider could not be reached or answered with an error status.
        CarbonDataError: the body is not JSON.
    """
    secret_list = list(secrets)
    hdrs = {"Accept": "application/json", "User-Agent": _user_agent()}
    hdrs.update(headers or {})
    opener = urllib.request.build_opener(_NoRedirect)
    where = redact(url, secret_list)
    attempt = 0
    while True:
        req = urllib.request.Request(url, headers=hdrs, method="GET")
        failure: ProviderHTTPError
        try:
            with opener.open(req, timeout=timeout_s) as resp:
                body = resp.read(_MAX_BODY + 1)
        except urllib.error.HTTPError as err:
            text = redact(f"HTTP {err.code} {err.reason}{_snippet(err)}", secret_list)
            failure = ProviderHTTPError(_cut(text), backend=provider, where=where, status=err.code)
            retry = err.code in _RETRY_STATUS
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            reason = getattr(err, "reason", err)
            if isinstance(reason, TimeoutError):
                text = f"no answer within {timeout_s:g} s (timeout)"
            else:
                text = f"cannot connect ({reason})"
            failure = ProviderHTTPError(
                _cut(redact(text, secret_list)), backend=provider, where=where
            )
            retry = True
        except http.client.HTTPException as err:
            text = redact(f"bad HTTP answer ({type(err).__name__}: {err})", secret_list)
            failure = ProviderHTTPError(_cut(text), backend=provider, where=where)
            retry = True
        except (ValueError, UnicodeError):
            # http.client refuses a header value (its message quotes the header: a secret)
            failure = ProviderHTTPError(
                "the request was refused before sending: a header value is not valid HTTP",
                backend=provider,
                where=where,
                fix="check the token or password for stray characters",
            )
            retry = False
        else:
            if len(body) > _MAX_BODY:
                raise CarbonDataError(
                    "answer larger than 1 MiB; refusing to parse it", backend=provider, where=where
                )
            parsed, bad = _parse_json(body)
            if bad is None:
                return parsed
            raise CarbonDataError(
                _cut(redact(f"malformed JSON in the answer ({bad})", secret_list)),
                backend=provider,
                where=where,
                fix="check base_url points at the provider's API; retry later",
            )
        if not retry or attempt >= retries:
            if attempt:
                failure.message += f" (after {attempt + 1} attempts)"
                failure.args = (failure.message,)
            raise failure
        delay = min(_MAX_BACKOFF_S, backoff_s * (2**attempt))
        logger.debug("%s: %s; retrying in %.3g s", provider, failure.message, delay)
        sleep(delay)
        attempt += 1


_MAX_ERROR_BODY = 64 << 10  # read this much of an error answer, redact it whole, then cut
_MAX_MESSAGE = 300


def _cut(text: str) -> str:
    """A provider's (already redacted) text cut to a readable length."""
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "... (cut)"


def _parse_json(body: bytes) -> tuple[Any, str | None]:
    try:
        return json.loads(body.decode("utf-8")), None
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        return None, str(err)


def _snippet(err: urllib.error.HTTPError) -> str:
    try:
        raw = err.read(_MAX_ERROR_BODY)
    except Exception:
        return ""
    text = raw.decode("utf-8", "replace").strip().replace("\r", " ").replace("\n", " ")
    return f": {text}" if text else ""


def _user_agent() -> str:
    try:
        from bertwatt._version import __version__
    except ImportError:  # pragma: no cover
        __version__ = "unknown"
    return f"bertwatt/{__version__} (+https://pypi.org/project/bertwatt/)"


def check_base_url(url: object) -> str:
    """Validate a provider base URL (http or https) and return it without a trailing slash."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ConfigError(f"base_url must be an http:// or https:// URL, got {url!r}")
    return url.rstrip("/")


def _seconds(v: object) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def check_transport(timeout_s: object, retries: object, backoff_s: object) -> None:
    """Validate timeout (0 < t <= 120 s), retries (0-10) and backoff (0-60 s) settings."""
    t = _seconds(timeout_s)
    if t is None or not 0 < t <= 120:
        raise ConfigError(f"timeout_s must be a number of seconds in (0, 120], got {timeout_s!r}")
    b = _seconds(backoff_s)
    if b is None or not 0 <= b <= 60:
        raise ConfigError(f"backoff_s must be a number of seconds in [0, 60], got {backoff_s!r}")
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10:
        raise ConfigError(f"retries must be an int between 0 and 10, got {retries!r}")


class HTTPProvider:
    """Shared settings and the cache-then-network :meth:`fetch` of the bundled providers.

    Subclasses set ``name`` and ``basis`` and implement ``_identity()`` (the non-secret query,
    used as cache key) and ``_fetch_remote()``.
    """

    name: str = "live"
    zone: str = ""

    def __init__(
        self,
        *,
        base_url: str,
        timeout_s: float,
        retries: int,
        backoff_s: float,
        cache_dir: str | os.PathLike[str] | None,
        cache_max_age_s: float,
    ) -> None:
        self.base_url = check_base_url(base_url)
        check_transport(timeout_s, retries, backoff_s)
        self.timeout_s = float(timeout_s)
        self.retries = retries
        self.backoff_s = float(backoff_s)
        self.cache = DiskCache(
            None if cache_dir is None else Path(cache_dir), max_age_s=cache_max_age_s
        )
        self._sleep: Callable[[float], None] = time.sleep

    def fetch(self) -> LiveReading:
        """The latest reading: from the cache when fresh, else from the provider (blocking).

        Raises:
            CarbonDataError: the provider failed or answered something unusable; the message
                never contains a token or password.
        """
        identity = self._identity()
        hit = self.cache.get(identity)
        if hit is not None:
            data, age_s = hit
            try:
                cached = LiveReading.from_json(data)
            except (ValueError, KeyError, TypeError):
                logger.debug("%s: ignoring a malformed cache entry", self.name)
            else:
                return replace(
                    cached,
                    notes=(*cached.notes, f"served from the on-disk cache ({age_s:.0f} s old)"),
                    from_cache=True,
                )
        reading = self._fetch_redacted()
        self.cache.put(identity, reading.to_json(), reading.fetched_at.timestamp())
        return reading

    def _fetch_redacted(self) -> LiveReading:
        """``_fetch_remote()`` behind the last barrier: every error and every text of the reading
        (the provider's own words may quote what it was sent) is redacted before it leaves."""
        failure: BaseException | None = None
        try:
            reading = self._fetch_remote()
        except BertwattError as err:
            redact_error(err, self._secrets())  # asked after the call: a login adds a token
            failure = err
        except Exception as err:  # a parsing bug must not carry the answer out unredacted
            secrets = self._secrets()
            failure = CarbonDataError(
                _cut(redact(f"unexpected answer ({type(err).__name__}: {err})", secrets)),
                backend=self.name,
                where=redact(self.base_url, secrets),
            )
        if failure is not None:
            failure.__context__ = None  # the original exception may quote a secret
            failure.__cause__ = None
            raise failure
        secrets = self._secrets()

        def clean(text: str) -> str:
            return _cut(redact(text, secrets))

        return replace(
            reading,
            zone=clean(reading.zone),
            source=clean(reading.source),
            notes=tuple(clean(n) for n in reading.notes),
        )

    def _get(self, path: str, *, headers: Mapping[str, str] | None = None) -> Any:
        return get_json(
            self.base_url + path,
            provider=self.name,
            headers=headers,
            timeout_s=self.timeout_s,
            retries=self.retries,
            backoff_s=self.backoff_s,
            secrets=self._secrets(),
            sleep=self._sleep,
        )

    def _secrets(self) -> tuple[Secret, ...]:
        return ()

    def _identity(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _fetch_remote(self) -> LiveReading:  # pragma: no cover - abstract
        raise NotImplementedError

    def _settings_repr(self) -> str:
        return (
            f"base_url={self.base_url!r}, timeout_s={self.timeout_s:g}, retries={self.retries}, "
            f"cache_max_age_s={self.cache.max_age_s:g}"
        )


def now_utc() -> datetime:
    """The current wall time as an aware UTC datetime."""
    return datetime.now(timezone.utc)


def number(value: object, what: str, *, provider: str, where: str) -> float:
    """``value`` as a finite float >= 0, else CarbonDataError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CarbonDataError(
            f"answer has no numeric {what} (got {value!r})", backend=provider, where=where
        )
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise CarbonDataError(
            f"answer has {what} {value!r}, not a number >= 0", backend=provider, where=where
        )
    return v
