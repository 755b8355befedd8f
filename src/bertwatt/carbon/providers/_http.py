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

import http.client
import json
import logging
import math
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from bertwatt.carbon.providers._cache import DiskCache
from bertwatt.carbon.series import parse_timestamp as parse_time
from bertwatt.errors import CarbonDataError, ConfigError

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
    """A token or password. Prints as ``***``; :meth:`reveal` returns the text for a request."""

    __slots__ = ("_value",)

    def __init__(self, value: str | Secret) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str) or not value.strip():
            raise ConfigError("a token or password must be a non-empty string")
        self._value = value

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


def redact(text: str, secrets: Iterable[Secret | str]) -> str:
    """``text`` with every secret's value replaced by ``***``."""
    for s in secrets:
        value = s.reveal() if isinstance(s, Secret) else s
        if value:
            text = text.replace(value, "***")
    return text


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
    attempt = 0
    while True:
        req = urllib.request.Request(url, headers=hdrs, method="GET")
        failure: ProviderHTTPError
        try:
            with opener.open(req, timeout=timeout_s) as resp:
                body = resp.read(_MAX_BODY + 1)
        except urllib.error.HTTPError as err:
            snippet = _snippet(err)
            failure = ProviderHTTPError(
                redact(f"HTTP {err.code} {err.reason}{snippet}", secret_list),
                backend=provider,
                where=redact(url, secret_list),
                status=err.code,
            )
            retry = err.code in _RETRY_STATUS
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            reason = getattr(err, "reason", err)
            if isinstance(reason, TimeoutError):
                text = f"no answer within {timeout_s:g} s (timeout)"
            else:
                text = f"cannot connect ({reason})"
            failure = ProviderHTTPError(
                redact(text, secret_list), backend=provider, where=redact(url, secret_list)
            )
            retry = True
        except http.client.HTTPException as err:
            failure = ProviderHTTPError(
                redact(f"bad HTTP answer ({type(err).__name__}: {err})", secret_list),
                backend=provider,
                where=redact(url, secret_list),
            )
            retry = True
        else:
            if len(body) > _MAX_BODY:
                raise CarbonDataError(
                    "answer larger than 1 MiB; refusing to parse it",
                    backend=provider,
                    where=redact(url, secret_list),
                )
            try:
                return json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as err:
                raise CarbonDataError(
                    redact(f"malformed JSON in the answer ({err})", secret_list),
                    backend=provider,
                    where=redact(url, secret_list),
                    fix="check base_url points at the provider's API; retry later",
                ) from None
        if not retry or attempt >= retries:
            if attempt:
                failure.message += f" (after {attempt + 1} attempts)"
            raise failure
        delay = min(_MAX_BACKOFF_S, backoff_s * (2**attempt))
        logger.debug("%s: %s; retrying in %.3g s", provider, failure.message, delay)
        sleep(delay)
        attempt += 1


def _snippet(err: urllib.error.HTTPError) -> str:
    try:
        raw = err.read(300)
    except Exception:
        return ""
    text = raw.decode("utf-8", "replace").strip().replace("\n", " ")
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
        reading = self._fetch_remote()
        self.cache.put(identity, reading.to_json(), reading.fetched_at.timestamp())
        return reading

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
