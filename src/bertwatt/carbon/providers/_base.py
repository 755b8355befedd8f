"""What every live provider shares: the reading, the protocol, settings and a cached fetch.

- :class:`LiveReading` is one fetched value; :class:`LiveProvider` is what
  :meth:`bertwatt.carbon.CarbonIntensity.live` needs from a provider.
- :class:`HTTPProvider` is the base of the bundled providers: validated settings, and a
  :meth:`~HTTPProvider.fetch` that asks the on-disk cache (:mod:`._cache`) before the network
  (:mod:`._http`), redacting every error and text on the way out.

Nothing here touches the network until a provider's :meth:`~LiveProvider.fetch` is called.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

from bertwatt._http import Secret, cut, parse_origin, redact
from bertwatt.carbon.providers._cache import DiskCache
from bertwatt.carbon.providers._http import _MAX_MESSAGE, get_json, redact_error
from bertwatt.carbon.series import parse_timestamp as parse_time
from bertwatt.errors import BertwattError, CarbonDataError, ConfigError

__all__ = [
    "HTTPProvider",
    "LiveProvider",
    "LiveReading",
    "check_base_url",
    "check_transport",
    "now_utc",
    "number",
    "parse_time",
]

logger = logging.getLogger(__name__)


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


def check_base_url(url: object) -> str:
    """Validate a provider base URL (http or https, with a host, no password in it) and return
    it without a trailing slash."""
    parse_origin(url, what="base_url")
    return str(url).rstrip("/")


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


class _Settings(NamedTuple):
    """A provider's transport and cache settings, as its constructor took them."""

    base_url: str
    timeout_s: float
    retries: int
    backoff_s: float
    cache_dir: str | os.PathLike[str] | None
    cache_max_age_s: float


class HTTPProvider:
    """Shared settings and the cache-then-network :meth:`fetch` of the bundled providers.

    Subclasses set ``name`` and ``basis``, implement ``_fetch_remote()``, and override
    ``_identity()`` (the non-secret query, used as cache key) when more than the zone matters.
    """

    name: str = "live"
    zone: str = ""
    basis: Literal["average", "marginal"] = "average"

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
        self._configure(
            _Settings(base_url, timeout_s, retries, backoff_s, cache_dir, cache_max_age_s)
        )

    def _configure(self, settings: _Settings) -> None:
        """Validate and keep the transport and cache settings: what ``__init__`` does, for the
        bundled providers' own constructors (which keep their own defaults)."""
        base_url, timeout_s, retries, backoff_s, cache_dir, cache_max_age_s = settings
        self.base_url = check_base_url(base_url)
        self._origin = parse_origin(self.base_url, what="base_url")
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
                cut(
                    redact(f"unexpected answer ({type(err).__name__}: {err})", secrets),
                    _MAX_MESSAGE,
                ),
                backend=self.name,
                where=redact(self.base_url, secrets),
            )
        if failure is not None:
            failure.__context__ = None  # the original exception may quote a secret
            failure.__cause__ = None
            raise failure
        secrets = self._secrets()

        def clean(text: str) -> str:
            return cut(redact(text, secrets), _MAX_MESSAGE)

        return replace(
            reading,
            zone=clean(reading.zone),
            source=clean(reading.source),
            notes=tuple(clean(n) for n in reading.notes),
        )

    def _get(self, path: str, *, headers: Mapping[str, str] | None = None) -> Any:
        return get_json(
            self.base_url + path,
            origin=self._origin,
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

    def _reading(
        self,
        g_per_kwh: float,
        *,
        at: datetime | None,
        source: str,
        notes: list[str],
        zone: str = "",
    ) -> LiveReading:
        """A reading fetched now from this provider (``zone``: the one answered, if not ours)."""
        return LiveReading(
            provider=self.name,
            zone=zone or self.zone,
            g_per_kwh=g_per_kwh,
            basis=self.basis,
            at=at,
            fetched_at=now_utc(),
            source=source,
            notes=tuple(notes),
        )

    def _identity(self) -> dict[str, Any]:
        """The non-secret query, the cache key: provider, base_url and zone unless overridden."""
        return {"provider": self.name, "base_url": self.base_url, "zone": self.zone}

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
