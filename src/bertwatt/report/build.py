"""Turn a :class:`~bertwatt.report.snapshot.WindowSnapshot` into an :class:`EnergyReport`.

Pure: it reads plain data only (the meter side makes the snapshot under its locks) and imports
nothing from backends, the sampler, timelines or windows. Each part of a report has its own small
function, tested alone in ``tests/report/test_build.py``. Cost is linear in stored points,
channels and phases: phases arrive already summed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone

from bertwatt.report.models import (
    BaselineReport,
    ChannelReport,
    EnergyReport,
    HostInfo,
    PhaseReport,
    ProvenanceInfo,
    RunInfo,
    UnavailableInfo,
    kwh,
)
from bertwatt.report.snapshot import (
    ChannelSnapshot,
    PhaseSnapshot,
    WindowSnapshot,
)
from bertwatt.report.uncertainty import (
    Interval,
    SensorModel,
    characterise,
    counter_update_period,
    energy_interval,
    power_averaging_window,
    sensor_model_for,
)
from bertwatt.report.wall import WallChannel, WallReport, compare_wall, wall_energy

__all__ = [
    "baseline_report",
    "build_report",
    "channel_energy",
    "channel_interval",
    "channel_model",
    "channel_report",
    "channel_warnings",
    "host_info",
    "phase_report",
    "total_interval",
    "total_of",
    "total_timeline",
    "total_warnings",
    "wall_report",
    "window_warnings",
]

_CHANNEL_POINTS = 500
_TOTAL_POINTS = 1000
_LOW_COVERAGE = 0.95
_NS = 1e9
#: A window shorter than this many sensor update periods gets a warning.
_MIN_UPDATE_PERIODS = 10


def _finite(x: float | None) -> float | None:
    return x if isinstance(x, float | int) and math.isfinite(x) else None


def _thin(n: int, limit: int) -> range:
    step = max(1, math.ceil(n / limit))
    return range(0, n, step)


def _utc(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / _NS, tz=timezone.utc)


def _duration_ns(snap: WindowSnapshot) -> int:
    return max(0, snap.t_end_ns - snap.t_start_ns)


def channel_energy(c: ChannelSnapshot) -> float | None:
    """The channel's energy over the window; None when it delivered no sample."""
    return max(0.0, c.end_j - c.start_j) if c.samples else None


def total_of(
    channels: Sequence[ChannelSnapshot],
    values: Mapping[str, float],
    coverage: Mapping[str, float] | None = None,
    duration_s: float | None = None,
) -> tuple[float | None, str]:
    """Sum channel energies (``values`` by channel name) without double counting.

    Channels not counted (RAPL sub-zones, psys) never add. Whole-machine channels (scope
    ``system``: wall plugs, BMCs) overlap the components and are never added to them: the total is
    the component sum whenever a component channel was measured, and the wall meter's energy only
    when it is the sole measurement (its counter, or its integrated power when the counter is too
    coarse, refreshed too rarely or reset: :func:`bertwatt.report.wall.wall_energy`).
    ``coverage`` (share of the window per channel name) and ``duration_s`` inform that choice.
    Returns (total, basis sentence).
    """
    measured = [c for c in channels if c.name in values]
    components = [c for c in measured if c.counted and c.scope != "system"]
    walls = [c for c in measured if c.scope == "system"]
    if components:
        names = ", ".join(sorted(c.name for c in components))
        basis = f"sum of {names}"
        wall_names = sorted(c.name for c in walls if c.counted)
        if wall_names:
            basis += (
                f"; wall meter {', '.join(wall_names)} compared apart (report.wall), never added"
            )
        return sum(values[c.name] for c in components), basis
    if not any(c.counted for c in walls):
        return None, "no counted channel was measured"
    cov = coverage or {}
    total, how, _ = wall_energy(
        [_wall_channel(c, values.get(c.name), cov.get(c.name)) for c in walls], duration_s
    )
    return total, f"wall meter only (no component sensor): {how}"


def _wall_channel(
    c: ChannelSnapshot, energy_j: float | None, coverage: float | None
) -> WallChannel:
    """The facts :mod:`bertwatt.report.wall` needs about one channel over one window."""
    return WallChannel(
        name=c.name,
        scope=c.scope,
        counted=c.counted,
        kind=c.kind,
        parent=c.parent,
        energy_j=energy_j,
        resolution_j=c.provenance.resolution_j,
        coverage=coverage,
        update_period_s=c.provenance.update_period_s,
    )


def _method(c: ChannelSnapshot, interval_s: float) -> str:
    if c.provenance.method:
        return c.provenance.method
    if c.kind == "counter":
        return f"energy counter read every {interval_s:g} s and at window edges"
    return f"power polled every {interval_s:g} s, trapezoid-integrated"


def _stuck_s(c: ChannelSnapshot) -> float:
    return sum(b - a for a, b in c.stuck_ns) / _NS


def _gpu_name(c: ChannelSnapshot) -> str:
    """The GPU's name: ``info["gpu_name"]``, or an NVML channel's ``info["name"]``."""
    return str(c.info.get("gpu_name") or (c.info.get("name", "") if c.backend == "nvml" else ""))


def channel_model(c: ChannelSnapshot, snap: WindowSnapshot) -> SensorModel | None:
    """The sensor model of a channel: by backend, kind and device (GPU name or CPU model)."""
    device = _gpu_name(c)
    if not device and c.backend == "rapl":
        device = str(snap.host.get("cpu_model") or "")
    return sensor_model_for(c.backend, c.kind, str(device))


def _update_period(c: ChannelSnapshot, model: SensorModel | None) -> float | None:
    return c.provenance.update_period_s or (model.update_period_s if model else None)


def _window_powers(c: ChannelSnapshot, t_start: int, t_end: int) -> list[float]:
    return [
        w
        for t, w in zip(c.t_ns, c.power_w, strict=False)
        if t_start <= t <= t_end and math.isfinite(w)
    ]


def channel_interval(
    c: ChannelSnapshot,
    snap: WindowSnapshot,
    *,
    energy_j: float | None = None,
    duration_ns: int | None = None,
    covered_ns: int | None = None,
    edges: int = 2,
    powers: list[float] | None = None,
) -> Interval | None:
    """The interval of a channel's energy over the window (or, with the keywords, a phase)."""
    energy = channel_energy(c) if energy_j is None else energy_j
    if energy is None or not math.isfinite(energy):
        return None
    model = channel_model(c, snap)
    dur = _duration_ns(snap) if duration_ns is None else duration_ns
    cov = c.covered_ns if covered_ns is None else covered_ns
    if powers is None:
        powers = _window_powers(c, snap.t_start_ns, snap.t_end_ns)
    update_s, averaging_s = _detected(c, model)
    return energy_interval(
        energy_j=energy,
        kind=c.kind,
        estimated=c.provenance.kind == "estimated",
        model=model,
        duration_s=dur / _NS,
        covered_s=min(cov, dur) / _NS,
        sample_interval_s=snap.interval_s,
        powers_w=powers,
        peak_w=_finite(c.peak_w),
        update_period_s=update_s,
        averaging_window_s=averaging_s,
        resolution_j=c.provenance.resolution_j,
        edges=edges,
        steps_placed=c.step_period_s is not None,
    )


def _detected(c: ChannelSnapshot, model: SensorModel | None) -> tuple[float | None, float | None]:
    """Update period and averaging window for the interval: declared, or detected when the
    first samples show a slower counter or an averaged reading the model does not know of."""
    upd, avg = c.provenance.update_period_s, c.provenance.averaging_window_s
    if c.kind == "counter":
        seen = c.step_period_s or counter_update_period(c.t_ns, c.energy_j)
        known = upd or (model.update_period_s if model else None)
        if seen is not None and (known is None or seen > known):
            upd = seen
    elif avg is None and not (model and model.averaging_window_s):
        seen = power_averaging_window(c.t_ns, c.power_w)
        if seen:
            avg = seen
    return upd, avg


def total_interval(
    channels: Sequence[ChannelSnapshot],
    intervals: Mapping[str, Interval],
    coverage: Mapping[str, float] | None = None,
    duration_s: float | None = None,
) -> Interval | None:
    """The interval of the total: the same channels as :func:`total_of`, lows and highs added
    (``coverage`` and ``duration_s`` as for :func:`total_of`, so a wall meter alone uses the same
    reading for its interval as for its figure)."""
    if not intervals:
        return None
    low, _ = total_of(channels, {n: i.low_j for n, i in intervals.items()}, coverage, duration_s)
    high, basis = total_of(
        channels, {n: i.high_j for n, i in intervals.items()}, coverage, duration_s
    )
    if low is None or high is None:
        return None
    return Interval(
        low, high, f"lows and highs of the channels' intervals added ({basis}); see each channel"
    )


def _provenance(
    c: ChannelSnapshot, interval_s: float, model: SensorModel | None = None
) -> ProvenanceInfo:
    p = c.provenance
    notes = list(p.notes)
    if c.stuck_ns:
        notes.append(
            f"stuck sensor suspected: the counter did not move for {_stuck_s(c):.1f} s of the "
            "window although it should have; the figure is kept and may be too low"
        )
    return ProvenanceInfo(
        kind=p.kind,  # type: ignore[arg-type]
        source=p.source,
        scope=p.scope,
        method=_method(c, interval_s),
        update_period_s=p.update_period_s,
        averaging_window_s=p.averaging_window_s,
        resolution_j=p.resolution_j,
        assumptions=dict(p.assumptions),
        notes=notes,
        sensor_model=model.id if model is not None else None,
        sensor_model_source=model.source if model is not None else None,
        characterised={
            **characterise(c.kind, c.t_ns, c.energy_j, c.power_w),
            **c.characterised,  # the burst at start, polled faster than the samples
        },
    )


def _channel_points(
    c: ChannelSnapshot, t_start: int, t_end: int
) -> tuple[list[tuple[float, float, float | None]], list[float]]:
    """Thinned (offset_s, energy_j, power_w) points inside the window, and their finite powers."""
    inside = [i for i, t in enumerate(c.t_ns) if t_start <= t <= t_end]
    powers = [c.power_w[i] for i in inside if math.isfinite(c.power_w[i])]
    pts = [
        (
            (c.t_ns[i] - t_start) / _NS,
            max(0.0, c.energy_j[i] - c.start_j),
            _finite(c.power_w[i]),
        )
        for i in (inside[j] for j in _thin(len(inside), _CHANNEL_POINTS))
    ]
    return pts, powers


def channel_report(c: ChannelSnapshot, snap: WindowSnapshot) -> ChannelReport:
    """One channel's figures, provenance and thinned timeline over the window."""
    duration_ns = _duration_ns(snap)
    energy = channel_energy(c)
    coverage = min(1.0, c.covered_ns / duration_ns) if duration_ns else 0.0
    mean_w = energy / (c.covered_ns / _NS) if c.covered_ns and energy is not None else None
    pts, powers = _channel_points(c, snap.t_start_ns, snap.t_end_ns)
    # with a baseline, the peak of the window only, not of the idle baseline before it
    window_peak = max(powers) if powers else None
    peak = _finite(c.peak_w) if snap.baseline is None else window_peak
    interval = channel_interval(c, snap, powers=powers)
    return ChannelReport(
        name=c.name,
        backend=c.backend,
        domain=c.domain,
        kind=c.kind,  # type: ignore[arg-type]
        host=str(snap.host.get("hostname", "")),
        node_id=snap.node_id,
        counted=c.counted,
        parent=c.parent,
        energy_j=energy,
        energy_kwh=kwh(energy),
        energy_interval_j=(interval.low_j, interval.high_j) if interval else None,
        interval_basis=interval.basis if interval else None,
        mean_power_w=mean_w,
        peak_power_w=peak,
        samples=c.samples,
        rejected=c.rejected,
        failed_reads=c.failed_reads,
        wraps=c.wraps,
        coverage=coverage,
        provenance=_provenance(c, snap.interval_s, channel_model(c, snap)),
        info=dict(c.info),
        events=list(c.events),
        timeline=pts,
    )


def channel_warnings(c: ChannelSnapshot, snap: WindowSnapshot) -> list[str]:
    """The doubts about one channel's figure, as sentences for ``report.warnings``."""
    out: list[str] = []
    duration_ns = _duration_ns(snap)
    duration_s = duration_ns / _NS
    if not c.samples and c.counted:
        out.append(
            f"{c.name} delivered no reading in the window: it is left out of the total "
            "(see its events)"
        )
    coverage = min(1.0, c.covered_ns / duration_ns) if duration_ns else 0.0
    if c.counted and duration_ns and coverage < _LOW_COVERAGE:
        out.append(
            f"{c.name} covered only {coverage:.0%} of the window: its energy is a lower bound "
            "(see its events)"
        )
    if c.rejected:
        bound = f" (plausibility bound {c.max_power_w:g} W)" if c.max_power_w else ""
        out.append(f"{c.name}: {c.rejected} implausible reading(s) rejected{bound}")
    if c.stuck_ns:
        upd = c.provenance.update_period_s
        every = f"its sensor updates every {upd:g} s" if upd else "it should update"
        out.append(
            f"{c.name}: stuck sensor suspected: the counter did not move for "
            f"{_stuck_s(c):.1f} s of the window ({len(c.stuck_ns)} span(s)) although {every}; "
            "its figure is kept, labelled, and may be too low"
        )
    upd = _update_period(c, channel_model(c, snap))
    if upd and duration_s and duration_s < _MIN_UPDATE_PERIODS * upd:
        out.append(
            f"{c.name}: the window ({duration_s:.3g} s) is shorter than {_MIN_UPDATE_PERIODS} "
            f"sensor update periods ({upd:g} s); its figure is coarse and cannot be trusted "
            "alone (repeat the workload to measure it)"
        )
    if c.provenance.kind == "estimated" and c.counted:
        out.append(f"{c.name} is estimated ({c.provenance.source}), not measured")
        util = c.provenance.assumptions.get("utilisation", "")
        if util and "this process" not in util and c.domain == "cpu":
            whose = util.split(",")[0]
            out.append(
                f"{c.name} charges the whole machine's CPU load to this window ({whose}): "
                "on a shared machine other users' work is counted; "
                "EstimateBackend(utilisation='process'), the default, counts this process tree"
            )
    return out


def window_warnings(snap: WindowSnapshot) -> list[str]:
    """Doubts about the window as a whole (too short, empty, missed sampler ticks)."""
    out: list[str] = []
    duration_ns = _duration_ns(snap)
    duration_s = duration_ns / _NS
    interval_s = snap.interval_s
    if (
        duration_s
        and duration_s < 10 * interval_s
        and any(c.kind == "power" for c in snap.channels)
    ):
        out.append(
            f"the window ({duration_s:.3g} s) spans fewer than 10 sampling intervals "
            f"({interval_s:g} s): power-sampled figures rest on few samples"
        )
    if duration_ns == 0:
        out.append("the window lasted 0 s: there was nothing to measure")
    if snap.missed_ticks:
        out.append(
            f"the sampler missed {snap.missed_ticks} tick(s) (the process was busy or "
            "suspended); coverage accounts for it"
        )
    return out


def total_warnings(
    channels: Sequence[ChannelSnapshot],
    energies: Mapping[str, float],
    total: float | None,
) -> list[str]:
    """Doubts about the total: an estimate-only total is a model's figure."""
    out: list[str] = []
    if total is None:
        return out
    used = [c for c in channels if c.counted and c.name in energies]
    if used and all(c.provenance.kind == "estimated" for c in used):
        out.append(
            "the total is estimated only (no counted channel is measured): it is a model's "
            "figure, not a measurement, and its interval is the model's assumed error"
        )
    return out


def phase_report(
    p: PhaseSnapshot,
    channels: Sequence[ChannelSnapshot],
    snap: WindowSnapshot,
    powers: Mapping[str, list[float]] | None = None,
) -> tuple[PhaseReport, str | None]:
    """One phase's report, and a warning when not every interval could be listed.

    ``powers``: each channel's power readings inside the window (computed when absent).
    """
    dur_ns = p.duration_ns
    ptotal, _ = total_of(channels, p.energy_j, _phase_coverage(p), dur_ns / _NS)
    counted = [c.name for c in channels if c.counted and c.name in p.energy_j]
    cov = min((p.covered_ns[n] / dur_ns for n in counted), default=0.0) if dur_ns else 0.0
    t0 = snap.t_start_ns
    by_name = {c.name: c for c in channels}
    ivals = {}
    for name, e in p.energy_j.items():
        c = by_name.get(name)
        if c is None:
            continue
        iv = channel_interval(
            c,
            snap,
            energy_j=e,
            duration_ns=dur_ns,
            covered_ns=p.covered_ns.get(name, 0),
            edges=2 * max(1, p.count),
            powers=powers.get(name) if powers is not None else None,
        )
        if iv is not None:
            ivals[name] = iv
    piv = (
        total_interval(channels, ivals, _phase_coverage(p), dur_ns / _NS)
        if ptotal is not None
        else None
    )
    report = PhaseReport(
        name=p.name,
        intervals=[((a - t0) / _NS, (b - t0) / _NS) for a, b in p.intervals],
        count=p.count,
        duration_s=dur_ns / _NS,
        energy_j=ptotal,
        energy_kwh=kwh(ptotal),
        energy_interval_j=(piv.low_j, piv.high_j) if piv else None,
        interval_basis=piv.basis if piv else None,
        mean_power_w=(ptotal / (dur_ns / _NS)) if ptotal is not None and dur_ns else None,
        coverage=min(1.0, max(0.0, cov)),
        channels=dict(p.energy_j),
    )
    note = None
    if p.count > len(p.intervals):
        note = (
            f"phase {p.name!r} occurred {p.count} times: its intervals list the first "
            f"{len(p.intervals)}; duration and energy cover all of them"
        )
    return report, note


def _phase_coverage(p: PhaseSnapshot) -> dict[str, float]:
    """Share of the phase's intervals each channel covered, by channel name."""
    if not p.duration_ns:
        return {}
    return {n: min(1.0, ns / p.duration_ns) for n, ns in p.covered_ns.items()}


def _run_coverage(snap: WindowSnapshot) -> dict[str, float]:
    duration_ns = _duration_ns(snap)
    if not duration_ns:
        return {}
    return {c.name: min(1.0, c.covered_ns / duration_ns) for c in snap.channels}


def wall_report(snap: WindowSnapshot) -> WallReport | None:
    """Software sensors against the wall meter for the run and each phase; None without one."""
    energies = {c.name: channel_energy(c) for c in snap.channels}
    cov = _run_coverage(snap)
    run = [_wall_channel(c, energies[c.name], cov.get(c.name)) for c in snap.channels]
    phases = {}
    durations = {}
    for p in snap.phases:
        pcov = _phase_coverage(p)
        phases[p.name] = [
            _wall_channel(c, p.energy_j.get(c.name), pcov.get(c.name))
            for c in snap.channels
            if c.name in p.energy_j
        ]
        durations[p.name] = p.duration_ns / _NS
    return compare_wall(
        run, phases, run_duration_s=_duration_ns(snap) / _NS, phase_durations_s=durations
    )


def baseline_report(
    snap: WindowSnapshot, total: float | None
) -> tuple[BaselineReport | None, float | None]:
    """Idle power from the baseline before the window, and the energy above it."""
    b = snap.baseline
    if b is None:
        return None, None
    bdur = b.duration_ns / _NS
    per_w = {name: j / bdur for name, j in b.energy_j.items()} if bdur > 0 else {}
    idle_j, _ = total_of(snap.channels, b.energy_j, None, bdur) if per_w else (None, "")
    idle_w = idle_j / bdur if idle_j is not None else None
    above = None
    if total is not None and idle_w is not None:
        above = total - idle_w * (_duration_ns(snap) / _NS)
    return BaselineReport(duration_s=bdur, power_w=idle_w, channels_w=per_w), above


def total_timeline(snap: WindowSnapshot, total: float | None) -> list[tuple[float, float]]:
    """(offset_s, cumulative counted J) at ``_TOTAL_POINTS`` + 1 evenly spaced times."""
    duration_ns = _duration_ns(snap)
    counted = [c for c in snap.channels if c.counted and c.samples]
    if not counted or not duration_ns:
        return []
    # the curve of whatever forms the total: the components, or the wall meter alone
    components = [c for c in counted if c.scope != "system"]
    if components:
        counted = components
    duration_s = duration_ns / _NS
    t_start, n = snap.t_start_ns, _TOTAL_POINTS
    out = []
    for k in range(n + 1):
        if k == n:
            v = sum(c.end_j - c.start_j for c in counted)
        else:
            t = t_start + duration_ns * k // n
            v = sum(c.energy_at(t) - c.start_j for c in counted)
        out.append((duration_s * k / n, max(0.0, v)))
    if total is not None:
        out[-1] = (duration_s, total)
    return out


def host_info(snap: WindowSnapshot) -> HostInfo:
    """The machine, from the snapshot's host facts (GPU names from the channels' info)."""
    h = snap.host
    gpu_names = sorted({d for c in snap.channels if (d := _gpu_name(c))})
    pid = h.get("pid")
    cpus = h.get("logical_cpus")
    cpu = h.get("cpu_model")
    return HostInfo(
        hostname=str(h.get("hostname", "")),
        os=str(h.get("os", "")),
        python=str(h.get("python", "")),
        bertwatt_version=str(h.get("bertwatt_version", "")),
        cpu_model=str(cpu) if cpu is not None else None,
        logical_cpus=cpus if isinstance(cpus, int) else None,
        gpu_names=gpu_names,
        pid=pid if isinstance(pid, int) else None,
        node_id=snap.node_id,
    )


def build_report(snap: WindowSnapshot) -> EnergyReport:
    """Build the report of a window snapshot (a partial one while ``snap.final`` is False)."""
    duration_ns = _duration_ns(snap)
    duration_s = duration_ns / _NS
    hostname = str(snap.host.get("hostname", ""))
    channels = [channel_report(c, snap) for c in snap.channels]
    energies = {c.name: e for c in snap.channels if (e := channel_energy(c)) is not None}
    total, basis = (
        total_of(snap.channels, energies, _run_coverage(snap), duration_s)
        if energies
        else (None, "nothing was measured")
    )
    ivals = {r.name: r for r in channels}
    tiv = total_interval(
        snap.channels,
        {
            n: Interval(r.energy_interval_j[0], r.energy_interval_j[1], r.interval_basis or "")
            for n, r in ivals.items()
            if r.energy_interval_j is not None
        },
        _run_coverage(snap),
        duration_s,
    )
    if total is None:
        tiv = None
    warnings = list(snap.warnings)
    for c in snap.channels:
        warnings.extend(channel_warnings(c, snap))
    warnings.extend(window_warnings(snap))
    warnings.extend(total_warnings(snap.channels, energies, total))
    phases: dict[str, PhaseReport] = {}
    powers = (
        {c.name: _window_powers(c, snap.t_start_ns, snap.t_end_ns) for c in snap.channels}
        if snap.phases
        else None
    )
    for p in snap.phases:
        phases[p.name], note = phase_report(p, snap.channels, snap, powers)
        if note:
            warnings.append(note)
    baseline, above = baseline_report(snap, total)
    host = host_info(snap)
    unavailable = [
        UnavailableInfo(
            what=u.what, reason=u.reason, fix=u.fix, host=hostname, node_id=snap.node_id
        )
        for u in snap.unavailable
    ]
    if total is None:
        warnings.append(
            "no energy was measured: "
            + ("; ".join(f"{u.what}: {u.reason}" for u in unavailable) or "no backend")
        )
    return EnergyReport(
        kind="energy",
        run_id=snap.run_id,
        node_id=snap.node_id,
        status="complete" if snap.final else "running",
        started_at=_utc(snap.start_wall_ns),
        ended_at=_utc(snap.start_wall_ns + duration_ns),
        duration_s=duration_s,
        interval_s=snap.interval_s,
        host=host,
        hosts=[host],
        energy_j=total,
        energy_kwh=kwh(total),
        energy_interval_j=(tiv.low_j, tiv.high_j) if tiv else None,
        interval_basis=tiv.basis if tiv else None,
        mean_power_w=(total / duration_s) if total is not None and duration_s else None,
        total_basis=basis,
        channels=channels,
        phases=phases,
        unavailable=unavailable,
        warnings=list(dict.fromkeys(warnings)),
        baseline=baseline,
        energy_above_idle_j=above,
        timeline=total_timeline(snap, total),
        run=RunInfo.model_validate(dict(snap.run)) if snap.run is not None else None,
        wall=wall_report(snap),
    )
