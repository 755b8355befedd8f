"""Carbon intensity objects, and :func:`apply_carbon`: energy report in, emissions out.

Every way to say how carbon-intensive the electricity was is a :class:`CarbonIntensity`::

    CarbonIntensity.zone("FR")                    # shipped table: value, year and source
    CarbonIntensity.constant(350.0, source="my utility's 2024 disclosure", year=2024)
    CarbonIntensity.from_csv("grid.csv")          # timestamp,gco2e_per_kwh step series
    CarbonIntensity.series([(t0, 120.0), (t1, 310.0)])
    CarbonIntensity.live(UKCarbonIntensity(), fallback="GB")

Emissions are ``IT energy (kWh) x PUE x intensity (gCO2e/kWh)``. A series is integrated exactly
against the report's energy timeline, for the run and for each phase; a static or live value is
applied to all of it.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from bertwatt.carbon.series import normalize_points, read_series_csv
from bertwatt.errors import BertwattError, CarbonDataError, ConfigError

if TYPE_CHECKING:
    from bertwatt.carbon.providers._base import LiveProvider, LiveReading
    from bertwatt.carbon.zones import ZoneTables

__all__ = [
    "CarbonIntensity",
    "LiveIntensity",
    "SeriesIntensity",
    "StaticIntensity",
    "apply_carbon",
    "as_intensity",
]

logger = logging.getLogger(__name__)


def _iso(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, timezone.utc).isoformat(timespec="seconds")


class CarbonIntensity:
    """How carbon-intensive the electricity was. Build one with the class methods.

    All instances are immutable and validated on construction: a bad number raises
    :class:`~bertwatt.errors.ConfigError`, an unknown zone or malformed file
    :class:`~bertwatt.errors.CarbonDataError`.
    """

    __slots__ = ()
    kind: ClassVar[Literal["static", "series", "live"]]

    def apply(self, report: Any, *, pue: float | None = None) -> Any:
        """A copy of ``report`` with its emissions computed from this intensity (see
        :func:`apply_carbon`); ``EnergyReport.with_carbon(intensity)`` calls this."""
        return apply_carbon(report, self, pue=pue)

    @classmethod
    def zone(cls, name: str, *, tables: ZoneTables | None = None) -> StaticIntensity:
        """The yearly average of a shipped zone: ``"FR"``, ``"fra"``, ``"US-CA"``, ``"SE3"``,
        ``"CN-BJ"``, ``"aws:eu-west-3"``, ``"gcp:europe-west1"`` (case-insensitive).

        Args:
            name: zone key (see ``bertwatt zones``).
            tables: look in these tables instead of the shipped ones.

        Raises:
            CarbonDataError: unknown zone (the message names the closest ones), or a zone the
                table lists without a value.
        """
        from bertwatt.carbon.zones import default_tables

        record = (tables if tables is not None else default_tables()).lookup(name)
        if record.g_per_kwh is None:
            raise CarbonDataError(
                f"zone {record.key} ({record.name}) is listed in the {record.table} table "
                f"without a published intensity (source: {record.source})",
                fix="use CarbonIntensity.constant(g_per_kwh, source=..., year=...) with a value "
                "you can cite, or a neighbouring zone",
            )
        return StaticIntensity(
            g_per_kwh=record.g_per_kwh,
            source=record.source,
            year=record.year,
            zone=record.key,
            notes=record.notes,
        )

    @classmethod
    def constant(
        cls,
        g_per_kwh: float,
        *,
        source: str = "user-supplied constant",
        year: int | None = None,
        zone: str | None = None,
    ) -> StaticIntensity:
        """A fixed intensity in gCO2e/kWh; say where it comes from in ``source``."""
        return StaticIntensity(g_per_kwh=g_per_kwh, source=source, year=year, zone=zone)

    @classmethod
    def from_csv(cls, path: str | PathLike[str], *, zone: str | None = None) -> SeriesIntensity:
        """A step series from a CSV with columns ``timestamp`` (ISO 8601; naive = UTC) and
        ``gco2e_per_kwh``; each value holds from its timestamp until the next.

        Raises:
            CarbonDataError: unreadable or malformed file (the message names the line).
        """
        points = read_series_csv(path)
        return SeriesIntensity(points=points, source=f"CSV series {Path(path)}", zone=zone)

    @classmethod
    def series(
        cls,
        points: Sequence[tuple[datetime | float, float]],
        *,
        source: str = "user-supplied series",
        zone: str | None = None,
    ) -> SeriesIntensity:
        """A step series from ``(timestamp, gCO2e/kWh)`` pairs; timestamps are datetimes (naive
        = UTC) or Unix seconds and must strictly increase."""
        return SeriesIntensity(points=normalize_points(points), source=source, zone=zone)

    @classmethod
    def live(
        cls,
        provider: LiveProvider,
        *,
        fallback: CarbonIntensity | str | None,
        wait_s: float = 10.0,
    ) -> LiveIntensity:
        """The latest value of a live provider, fetched in the background.

        Call :meth:`LiveIntensity.prefetch` when the run starts (the meter does); at report time
        the fetched value is used, or bertwatt waits at most ``wait_s`` for it, and otherwise
        uses ``fallback`` and says so in the report's carbon notes.

        Args:
            provider: an :class:`~bertwatt.carbon.providers.ElectricityMaps`,
                :class:`~bertwatt.carbon.providers.UKCarbonIntensity`,
                :class:`~bertwatt.carbon.providers.WattTime` or any ``LiveProvider``.
            fallback: zone name or static/series intensity used when the provider fails;
                ``None`` leaves emissions uncomputed in that case.
            wait_s: longest wait at report time, in seconds.
        """
        return LiveIntensity(provider, fallback=fallback, wait_s=wait_s)

    # implemented by the subclasses
    def _resolve(self) -> _Resolved:
        raise NotImplementedError


def as_intensity(value: CarbonIntensity | str | None) -> CarbonIntensity | None:
    """``value`` as a CarbonIntensity: a zone name is looked up, None stays None.

    Raises:
        ConfigError: ``value`` is neither.
        CarbonDataError: unknown zone name.
    """
    if value is None or isinstance(value, CarbonIntensity):
        return value
    if isinstance(value, str):
        return CarbonIntensity.zone(value)
    raise ConfigError(
        f"carbon must be a CarbonIntensity or a zone name such as 'FR', got {value!r}"
    )


@dataclass(frozen=True, slots=True)
class _Resolved:
    """A step function of intensity in absolute time, plus its provenance."""

    kind: Literal["static", "series", "live"]
    times: tuple[float, ...]  # unix seconds of each value's start (first one unused if static)
    values: tuple[float, ...]
    zone: str | None
    year: int | None
    source: str
    notes: tuple[str, ...]
    live_at: datetime | None = None  # the time a live value is for


def _check_year(year: object) -> int | None:
    if year is None:
        return None
    if isinstance(year, bool) or not isinstance(year, int) or not 1900 <= year <= 2200:
        raise ConfigError(f"year must be an int such as 2023, or None, got {year!r}")
    return year


def _check_text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{name} must be a non-empty string, got {value!r}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class StaticIntensity(CarbonIntensity):
    """One intensity for the whole run.

    Attributes:
        g_per_kwh: gCO2e/kWh.
        source: where the value comes from.
        year: data year, when known.
        zone: zone key, when the value is a zone's.
        notes: caveats carried into the report (basis, unit, mapping).
    """

    kind: ClassVar[Literal["static"]] = "static"
    g_per_kwh: float
    source: str
    year: int | None = None
    # the instance attribute shadows the CarbonIntensity.zone() constructor on instances only
    zone: str | None = None  # type: ignore[assignment]
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        g = self.g_per_kwh
        if isinstance(g, bool) or not isinstance(g, int | float) or not math.isfinite(g) or g < 0:
            raise ConfigError(f"carbon intensity must be a finite number >= 0 gCO2e/kWh, got {g!r}")
        object.__setattr__(self, "g_per_kwh", float(g))
        _check_text("source", self.source)
        _check_year(self.year)
        if self.zone is not None:
            _check_text("zone", self.zone)
        object.__setattr__(self, "notes", tuple(str(n) for n in self.notes))

    def __repr__(self) -> str:
        year = "year unknown" if self.year is None else str(self.year)
        where = f"zone {self.zone}, " if self.zone else ""
        return f"<CarbonIntensity {self.g_per_kwh:g} gCO2e/kWh ({where}{year}; {self.source})>"

    def _resolve(self) -> _Resolved:
        return _Resolved(
            "static", (0.0,), (self.g_per_kwh,), self.zone, self.year, self.source, self.notes
        )


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class SeriesIntensity(CarbonIntensity):
    """A step function of intensity over time.

    Attributes:
        points: ``(unix_s, gCO2e/kWh)`` pairs, strictly increasing in time.
        source: where the series comes from.
        zone: zone the series is for, when given.
    """

    kind: ClassVar[Literal["series"]] = "series"
    points: tuple[tuple[float, float], ...]
    source: str
    zone: str | None = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        object.__setattr__(self, "points", normalize_points(self.points))
        _check_text("source", self.source)
        if self.zone is not None:
            _check_text("zone", self.zone)

    @property
    def start(self) -> datetime:
        """Timestamp of the first value (UTC)."""
        return datetime.fromtimestamp(self.points[0][0], timezone.utc)

    @property
    def end(self) -> datetime:
        """Timestamp of the last value (UTC); it holds from then on."""
        return datetime.fromtimestamp(self.points[-1][0], timezone.utc)

    def __repr__(self) -> str:
        return (
            f"<CarbonIntensity series of {len(self.points)} values from "
            f"{_iso(self.points[0][0])} to {_iso(self.points[-1][0])} ({self.source})>"
        )

    def _resolve(self) -> _Resolved:
        times = tuple(p[0] for p in self.points)
        values = tuple(p[1] for p in self.points)
        src = (
            f"{self.source} ({len(values)} values, {_iso(times[0])} to {_iso(times[-1])}, "
            "each holding until the next)"
        )
        return _Resolved("series", times, values, self.zone, None, src, ())


class LiveIntensity(CarbonIntensity):
    """The latest value of a live provider, fetched on a daemon thread (see
    :meth:`CarbonIntensity.live`). Public state is read-only."""

    __slots__ = (
        "_done",
        "_error",
        "_fallback",
        "_lock",
        "_provider",
        "_reading",
        "_thread",
        "_wait",
    )
    kind: ClassVar[Literal["live"]] = "live"

    def __init__(
        self, provider: LiveProvider, *, fallback: CarbonIntensity | str | None, wait_s: float
    ) -> None:
        if not callable(getattr(provider, "fetch", None)) or not isinstance(
            getattr(provider, "name", None), str
        ):
            raise ConfigError(
                f"{provider!r} is not a live provider: it needs name, zone and fetch() "
                "(see bertwatt.carbon.providers)"
            )
        fb = as_intensity(fallback)
        if isinstance(fb, LiveIntensity):
            raise ConfigError("the fallback of a live intensity must be static or a series")
        if isinstance(wait_s, bool) or not isinstance(wait_s, int | float):
            raise ConfigError(f"wait_s must be a number of seconds, got {wait_s!r}")
        if not 0 <= wait_s <= 600:
            raise ConfigError(f"wait_s must be between 0 and 600 seconds, got {wait_s!r}")
        self._provider = provider
        self._fallback = fb
        self._wait = float(wait_s)
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._reading: LiveReading | None = None
        self._error: str | None = None

    @property
    def provider(self) -> LiveProvider:
        """The provider asked."""
        return self._provider

    @property
    def fallback(self) -> CarbonIntensity | None:
        """What is used when the provider fails."""
        return self._fallback

    @property
    def wait_s(self) -> float:
        """Longest wait for the provider at report time, in seconds."""
        return self._wait

    def __repr__(self) -> str:
        return f"CarbonIntensity.live({self._provider!r}, fallback={self._fallback!r})"

    def prefetch(self) -> None:
        """Start fetching on a daemon thread and return at once (no-op if already started)."""
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._run, name=f"bertwatt-carbon-{self._provider.name}", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        error = ""
        try:
            reading = self._provider.fetch()
            if not math.isfinite(reading.g_per_kwh) or reading.g_per_kwh < 0:
                raise CarbonDataError(f"provider returned intensity {reading.g_per_kwh!r}")
            self._reading = reading
        except BertwattError as err:
            error = str(err)
        except Exception as err:  # a provider bug must not escape into a thread traceback
            error = f"{type(err).__name__}: {err}"
        finally:
            if error:
                self._error = _redacted(self._provider, error)
            self._done.set()
        if self._error:
            logger.info("live carbon intensity unavailable: %s", self._error)

    def reading(self, timeout_s: float | None = None) -> LiveReading | None:
        """The fetched reading, waiting at most ``timeout_s`` (default ``wait_s``); None if the
        provider failed or has not answered in time."""
        self.prefetch()
        self._done.wait(self._wait if timeout_s is None else max(0.0, timeout_s))
        return self._reading

    def failure(self) -> str:
        """Why there is no reading (empty while one may still come)."""
        if self._reading is not None:
            return ""
        if self._done.is_set():
            return self._error or "no reading"
        return f"no answer within {self._wait:g} s"

    def _resolve(self) -> _Resolved:
        reading = self.reading()
        name = f"live provider {self._provider.name} ({getattr(self._provider, 'zone', '?')})"
        if reading is None:
            why = self.failure()
            if self._fallback is None:
                raise _NoIntensityError(
                    f"{name} failed ({why}) and no fallback was given; pass "
                    "fallback='ZONE' to CarbonIntensity.live to use a yearly average instead"
                )
            fb = self._fallback._resolve()
            note = f"{name} failed ({why}); used the fallback instead"
            return _Resolved(
                fb.kind, fb.times, fb.values, fb.zone, fb.year, fb.source, (note, *fb.notes)
            )
        at = "" if reading.at is None else f", for {reading.at.isoformat(timespec='minutes')}"
        notes = (
            f"live {reading.basis} value fetched {reading.fetched_at.isoformat(timespec='seconds')}"
            f"{at}, applied to the whole run",
            *reading.notes,
        )
        year = (reading.at or reading.fetched_at).year
        return _Resolved(
            "live",
            (0.0,),
            (reading.g_per_kwh,),
            reading.zone,
            year,
            reading.source,
            notes,
            live_at=reading.at or reading.fetched_at,
        )


def _redacted(provider: object, text: str) -> str:
    """A provider's failure text with its secrets redacted (bundled providers know theirs),
    bounded in length."""
    from bertwatt.carbon.providers._http import redact

    secrets_of = getattr(provider, "_secrets", None)
    secrets = ()
    if callable(secrets_of):
        try:
            secrets = tuple(secrets_of())
        except Exception:
            secrets = ()
    text = redact(text, secrets)
    return text if len(text) <= 400 else text[:400] + "... (cut)"


class _NoIntensityError(Exception):
    """Internal: a live intensity failed without fallback; the message becomes carbon_note."""


def apply_carbon(
    report: Any, intensity: CarbonIntensity | str | None = None, *, pue: float | None = None
) -> Any:
    """A copy of ``report`` with emissions filled in.

    See :func:`bertwatt.carbon.apply.apply_carbon` (this is the same function, importable from
    here for the meter and ``EnergyReport.with_carbon``).
    """
    from bertwatt.carbon.apply import apply_carbon as _apply

    return _apply(report, intensity, pue=pue)
