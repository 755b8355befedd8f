"""Energy report in, emissions out: :func:`apply_carbon`.

Emissions are ``IT energy (kWh) x PUE x intensity (gCO2e/kWh)``. A series is integrated exactly
against the report's cumulative-energy timeline (for the run and for each phase's intervals); a
static or live value applies to all of it. The summary keeps the intensity's zone, year and
source, the PUE and where it came from, both energies, and notes on every assumption.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from bertwatt.carbon.intensity import (
    CarbonIntensity,
    _NoIntensityError,
    _Resolved,
    as_intensity,
)
from bertwatt.carbon.series import weighted_intensity
from bertwatt.carbon.uncomputed import NO_ZONE_NOTE as _NO_ZONE_NOTE
from bertwatt.carbon.uncomputed import uncomputed as _uncomputed
from bertwatt.carbon.uncomputed import update as _update
from bertwatt.errors import BertwattError

__all__ = ["apply_carbon"]

_J_PER_KWH = 3.6e6
_LONG_LIVE_RUN_S = 3600.0
_LIVE_STALE_S = 3600.0


def _iso(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, timezone.utc).isoformat(timespec="seconds")


def _live_time_note(reading_time: datetime, start_unix: float, end_unix: float) -> str:
    t = reading_time.timestamp()
    if t < start_unix - _LIVE_STALE_S or t > end_unix + _LIVE_STALE_S:
        return (
            f"the live value is for {reading_time.isoformat(timespec='minutes')}, more than 1 h "
            "outside the run; it may not represent the run"
        )
    return ""


def apply_carbon(
    report: Any, intensity: CarbonIntensity | str | None = None, *, pue: float | None = None
) -> Any:
    """A copy of ``report`` with ``emissions_g``, ``carbon`` and ``carbon_note`` filled in.

    Args:
        report: an :class:`~bertwatt.report.models.EnergyReport` (or an object with the same
            fields and ``model_copy``).
        intensity: a CarbonIntensity or zone name; ``None`` uses the ``BERTWATT_ZONE``
            environment variable, and without it leaves emissions uncomputed with a note
            saying how to enable them (there is no default country).
        pue: power usage effectiveness, facility energy / IT energy, 1.0-3.0; ``None`` means
            1.0 and the report says facility overhead is not included.

    Raises:
        ConfigError: bad ``pue`` or ``intensity`` argument.
        CarbonDataError: ``intensity`` is an unknown zone name.
    """
    from bertwatt.config import validate_pue, zone_from_env

    if pue is None:
        pue_v, pue_source = 1.0, "default 1.0 (facility overhead not included)"
    else:
        pue_v, pue_source = validate_pue(pue), "user"
    origin = ""
    if intensity is None:
        env_zone = zone_from_env()
        if env_zone is None:
            return _uncomputed(report, _NO_ZONE_NOTE)
        try:
            intensity = CarbonIntensity.zone(env_zone)
        except BertwattError as err:
            return _uncomputed(
                report, f"emissions not computed: BERTWATT_ZONE={env_zone!r} is not usable: {err}"
            )
        origin = f"zone from the BERTWATT_ZONE environment variable ({env_zone})"
    intensity = as_intensity(intensity)
    assert intensity is not None
    energy_j = report.energy_j
    if energy_j is None:
        return _uncomputed(
            report,
            "emissions not computed: the report has no energy figure (energy_j is None; see "
            "its unavailable and warnings entries for why and how to fix it)",
        )
    if not math.isfinite(energy_j) or energy_j < 0:
        return _uncomputed(report, f"emissions not computed: energy_j is {energy_j!r}")
    try:
        resolved = intensity._resolve()
    except _NoIntensityError as err:
        return _uncomputed(report, f"emissions not computed: {err}")
    return _update(
        report,
        **_compute(report, float(energy_j), resolved, pue_v, pue_source, origin),
        carbon_note=None,
    )


def _compute(
    report: Any, energy_j: float, r: _Resolved, pue: float, pue_source: str, origin: str
) -> dict[str, Any]:
    notes: list[str] = [origin] if origin else []
    notes += list(r.notes)
    duration_s = float(report.duration_s)
    started = report.started_at
    if started.tzinfo is None:
        started = started.replace(tzinfo=timezone.utc)
    start_unix = started.timestamp()
    if r.live_at is not None:
        stale = _live_time_note(r.live_at, start_unix, start_unix + duration_s)
        if stale:
            notes.append(stale)
    static = r.kind != "series"
    bounds = [t - start_unix for t in r.times[1:]]
    timeline = [(float(a), float(b)) for a, b in (report.timeline or [])]
    if not static and len(timeline) < 2:
        timeline = [(0.0, 0.0), (duration_s, energy_j)]
        notes.append("the report has no energy timeline: energy assumed spread evenly over the run")

    def mean_over(windows: Sequence[tuple[float, float]]) -> float:
        if static:
            return r.values[0]
        w = weighted_intensity(timeline, windows, bounds, r.values)
        first = windows[0][0] if windows else 0.0
        return w.mean(r.values[_index(bounds, first)])

    if not static:
        first_offset = r.times[0] - start_unix
        if first_offset > 0:
            notes.append(
                f"the series starts {first_offset:.0f} s after the run started "
                f"({_iso(r.times[0])}); its first value ({r.values[0]:g} gCO2e/kWh) was "
                "used before it"
            )
        used = sorted({r.values[_index(bounds, x)] for x in _change_points(bounds, duration_s)})
        if len(used) > 1:
            notes.append(
                f"intensity varied from {used[0]:g} to {used[-1]:g} gCO2e/kWh over the run; "
                "integrated against the energy timeline"
            )
    if r.kind == "live" and duration_s > _LONG_LIVE_RUN_S:
        notes.append(
            f"the run lasted {duration_s / 3600:.1f} h but one live value was applied to all of "
            "it; pass a series (CarbonIntensity.series or from_csv) for time-resolved emissions"
        )

    it_kwh = energy_j / _J_PER_KWH
    facility_kwh = it_kwh * pue
    mean = mean_over([(0.0, duration_s)])
    emissions = facility_kwh * mean
    if energy_j == 0:
        notes.append("the measured energy is 0 J, so emissions are 0 g")
    phases: dict[str, float] = {}
    for name, ph in (report.phases or {}).items():
        if ph.energy_j is None:
            notes.append(f"phase {name!r}: no emissions (its energy is unknown)")
            continue
        windows = [(float(a), float(b)) for a, b in ph.intervals]
        phases[name] = ph.energy_j / _J_PER_KWH * pue * mean_over(windows)
    summary = {
        "kind": r.kind,
        "zone": r.zone,
        "intensity_g_per_kwh": mean,
        "year": r.year,
        "source": r.source,
        "pue": pue,
        "pue_source": pue_source,
        "it_energy_kwh": it_kwh,
        "facility_energy_kwh": facility_kwh,
        "emissions_g": emissions,
        "phases": phases,
        "notes": notes,
    }
    return {"emissions_g": emissions, "carbon": summary}


def _index(bounds: Sequence[float], t: float) -> int:
    return bisect_right(bounds, t)


def _change_points(bounds: Sequence[float], duration_s: float) -> list[float]:
    return [0.0, *(b for b in bounds if 0.0 < b < duration_s)]
