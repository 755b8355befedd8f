"""Turn a meter window (timelines, marks, phases) into an :class:`EnergyReport`.

Runs after the window closes (or on the checkpoint thread for partial reports), never on the
sampler's hot path. Each backend group is copied under its lock, then everything is computed from
the copies.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from bertwatt.backends.base import Channel
from bertwatt.host import host_facts
from bertwatt.report.models import (
    BaselineReport,
    ChannelReport,
    EnergyReport,
    HostInfo,
    PhaseReport,
    ProvenanceInfo,
    UnavailableInfo,
    kwh,
)
from bertwatt.report.wall import WallChannel, compare_wall
from bertwatt.timeline import covered_ns, interpolate

if TYPE_CHECKING:
    from bertwatt.window import Window

__all__ = ["build_report"]

_CHANNEL_POINTS = 500
_TOTAL_POINTS = 1000
_LOW_COVERAGE = 0.95


@dataclass
class _Copy:
    channel: Channel
    backend: str
    t: list[int]
    e: list[float]
    p: list[float]
    marks: dict[int, float]
    samples: int
    rejected: int
    failed_reads: int
    wraps: int
    peak_w: float
    events: list[str]
    event_counts: dict[str, int]
    gaps: list[tuple[int, int]]
    first_t: int | None
    last_t: int | None
    cum: float

    def energy_at(self, t_ns: int) -> float:
        return interpolate(self.t, self.e, self.cum, t_ns)

    def edge(self, mark_id: int, t_ns: int) -> float:
        v = self.marks.get(mark_id)
        return v if v is not None else self.energy_at(t_ns)

    def covered(self, t0: int, t1: int) -> int:
        return covered_ns(self.first_t, self.last_t, self.gaps, t0, t1)


def _copy(window: Window) -> list[_Copy]:
    out = []
    for g in window.groups:
        with g.lock:
            for tl in g.timelines:
                t, e, p = tl.points()
                out.append(
                    _Copy(
                        channel=tl.channel,
                        backend=g.backend.name,
                        t=list(t),
                        e=list(e),
                        p=list(p),
                        marks=dict(tl.marks),
                        samples=tl.samples,
                        rejected=tl.rejected,
                        failed_reads=tl.failed_reads,
                        wraps=tl.wraps,
                        peak_w=tl.peak_w,
                        events=list(tl.events),
                        event_counts=dict(tl.event_counts),
                        gaps=list(tl.gaps),
                        first_t=tl.first_t,
                        last_t=tl.last_t,
                        cum=tl.energy_j,
                    )
                )
    return out


def _finite(x: float) -> float | None:
    return x if isinstance(x, float | int) and math.isfinite(x) else None


def _thin(n: int, limit: int) -> range:
    step = max(1, math.ceil(n / limit))
    return range(0, n, step)


def _utc(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)


def build_report(window: Window, *, final: bool) -> EnergyReport:
    """Build the report of ``window``; ``final=False``: a partial report of a running window."""
    from bertwatt.window import total_of

    copies = _copy(window)
    marks = list(window.marks)
    clock = window.clock
    t_start = marks[window.start_mark]
    if window.end_mark is not None:
        t_end = marks[window.end_mark]
        end_id: int | None = window.end_mark
    else:
        t_end = clock.monotonic_ns()
        end_id = None
    duration_ns = max(0, t_end - t_start)
    duration_s = duration_ns / 1e9
    facts = host_facts()
    hostname = str(facts["hostname"])

    def at(c: _Copy, mark_id: int | None, t_ns: int) -> float:
        return c.edge(mark_id, t_ns) if mark_id is not None else c.energy_at(t_ns)

    channels: list[ChannelReport] = []
    energies: dict[Channel, float] = {}
    coverages: dict[Channel, float] = {}
    warnings = list(window.warnings)
    interval_s = window.config.interval_s
    for c in copies:
        e0 = at(c, window.start_mark, t_start)
        e1 = at(c, end_id, t_end)
        energy: float | None = max(0.0, e1 - e0) if c.samples else None
        covered_ns = c.covered(t_start, t_end)
        coverage = min(1.0, covered_ns / duration_ns) if duration_ns else 0.0
        mean_w = energy / (covered_ns / 1e9) if covered_ns and energy is not None else None
        in_window = [i for i, t in enumerate(c.t) if t_start <= t <= t_end]
        if window.baseline_marks is None:
            peak = _finite(c.peak_w)
        else:
            vals = [c.p[i] for i in in_window if math.isfinite(c.p[i])]
            peak = max(vals) if vals else None
        pts = [
            (
                (c.t[i] - t_start) / 1e9,
                max(0.0, c.e[i] - e0),
                _finite(c.p[i]),
            )
            for i in (in_window[j] for j in _thin(len(in_window), _CHANNEL_POINTS))
        ]
        prov = c.channel.provenance
        channels.append(
            ChannelReport(
                name=c.channel.name,
                backend=c.backend,
                domain=c.channel.domain,
                kind=c.channel.kind,
                host=hostname,
                counted=c.channel.counted,
                parent=c.channel.parent,
                energy_j=energy,
                energy_kwh=kwh(energy),
                mean_power_w=mean_w,
                peak_power_w=peak,
                samples=c.samples,
                rejected=c.rejected,
                failed_reads=c.failed_reads,
                wraps=c.wraps,
                coverage=coverage,
                provenance=ProvenanceInfo(
                    kind=prov.kind,
                    source=prov.source,
                    scope=prov.scope,
                    method=prov.method
                    or (
                        f"energy counter read every {interval_s:g} s and at window edges"
                        if c.channel.kind == "counter"
                        else f"power polled every {interval_s:g} s, trapezoid-integrated"
                    ),
                    update_period_s=prov.update_period_s,
                    averaging_window_s=prov.averaging_window_s,
                    resolution_j=prov.resolution_j,
                    assumptions=dict(prov.assumptions),
                    notes=list(prov.notes),
                ),
                info={k: str(v) for k, v in c.channel.info.items()},
                events=c.events,
                timeline=pts,
            )
        )
        coverages[c.channel] = coverage
        if energy is not None:
            energies[c.channel] = energy
        elif c.channel.counted:
            warnings.append(
                f"{c.channel.name} delivered no reading in the window: it is left out of the "
                "total (see its events)"
            )
        if c.channel.counted and duration_ns and coverage < _LOW_COVERAGE:
            warnings.append(
                f"{c.channel.name} covered only {coverage:.0%} of the window: its energy is "
                "a lower bound (see its events)"
            )
        if c.rejected:
            warnings.append(f"{c.channel.name}: {c.rejected} implausible reading(s) rejected")
        upd = prov.update_period_s
        if upd and duration_s and duration_s < 10 * upd:
            warnings.append(
                f"{c.channel.name}: the window ({duration_s:.3g} s) is shorter than 10 sensor "
                f"update periods ({upd:g} s); its figure is coarse"
            )
        if prov.kind == "estimated" and c.channel.counted:
            warnings.append(f"{c.channel.name} is estimated ({prov.source}), not measured")

    if (
        duration_s
        and duration_s < 10 * interval_s
        and any(c.channel.kind == "power" for c in copies)
    ):
        warnings.append(
            f"the window ({duration_s:.3g} s) spans fewer than 10 sampling intervals "
            f"({interval_s:g} s): power-sampled figures rest on few samples"
        )
    if duration_ns == 0:
        warnings.append("the window lasted 0 s: there was nothing to measure")
    if window.sampler.missed_ticks:
        warnings.append(
            f"the sampler missed {window.sampler.missed_ticks} tick(s) (the process was busy or "
            "suspended); coverage accounts for it"
        )

    total, basis = (
        total_of(energies, coverages, duration_s) if energies else (None, "nothing was measured")
    )
    wall_phases: dict[str, list[WallChannel]] = {}
    wall_durations: dict[str, float] = {}

    phases: dict[str, PhaseReport] = {}
    for name, ph in window.phases.items():
        intervals = list(ph.intervals)
        if ph.open_mark is not None:
            intervals.append((ph.open_mark, -1))
        if not intervals:
            continue
        per: dict[Channel, float] = {}
        dur_ns = 0
        offs = []
        cov_num: dict[Channel, int] = {}
        for a, b in intervals:
            ta = marks[a]
            tb = marks[b] if b >= 0 else t_end
            dur_ns += max(0, tb - ta)
            offs.append(((ta - t_start) / 1e9, (tb - t_start) / 1e9))
            for c in copies:
                if not c.samples:
                    continue
                ea = c.edge(a, ta)
                eb = c.edge(b, tb) if b >= 0 else c.energy_at(tb)
                per[c.channel] = per.get(c.channel, 0.0) + max(0.0, eb - ea)
                cov_num[c.channel] = cov_num.get(c.channel, 0) + c.covered(ta, tb)
        pcov = {ch: n / dur_ns for ch, n in cov_num.items()} if dur_ns else {}
        ptotal, _ = total_of(per, pcov, dur_ns / 1e9)
        wall_durations[name] = dur_ns / 1e9
        wall_phases[name] = [_wall_input(ch, per.get(ch), pcov.get(ch)) for ch in per]
        counted = [ch for ch in per if ch.counted]
        cov = min((cov_num[ch] / dur_ns for ch in counted), default=0.0) if dur_ns else 0.0
        phases[name] = PhaseReport(
            name=name,
            intervals=offs,
            count=len(intervals),
            duration_s=dur_ns / 1e9,
            energy_j=ptotal,
            energy_kwh=kwh(ptotal),
            mean_power_w=(ptotal / (dur_ns / 1e9)) if ptotal is not None and dur_ns else None,
            coverage=min(1.0, max(0.0, cov)),
            channels={ch.name: v for ch, v in per.items()},
        )

    baseline = None
    above = None
    if window.baseline_marks is not None:
        b0, b1 = window.baseline_marks
        tb0, tb1 = marks[b0], marks[b1]
        bdur = (tb1 - tb0) / 1e9
        per_w: dict[Channel, float] = {}
        if bdur > 0:
            for c in copies:
                if not c.samples:
                    continue
                per_w[c.channel] = max(0.0, c.edge(b1, tb1) - c.edge(b0, tb0)) / bdur
        idle_w, _ = total_of(per_w) if per_w else (None, "")
        baseline = BaselineReport(
            duration_s=bdur,
            power_w=idle_w,
            channels_w={ch.name: w for ch, w in per_w.items()},
        )
        if total is not None and idle_w is not None:
            above = total - idle_w * duration_s

    timeline: list[tuple[float, float]] = []
    counted_copies = [c for c in copies if c.channel.counted and c.samples]
    if counted_copies and duration_ns:
        # the curve of whatever forms the total: the components, or the wall meter alone
        has_component = any(c.channel.provenance.scope != "system" for c in counted_copies)
        use = [
            c for c in counted_copies if (c.channel.provenance.scope != "system") == has_component
        ]
        base = {id(c): at(c, window.start_mark, t_start) for c in use}
        n = _TOTAL_POINTS
        for k in range(n + 1):
            t = t_start + duration_ns * k // n
            if k == n:
                v = sum(at(c, end_id, t_end) - base[id(c)] for c in use)
            else:
                v = sum(c.energy_at(t) - base[id(c)] for c in use)
            timeline.append((duration_s * k / n, max(0.0, v)))
        if total is not None:
            timeline[-1] = (duration_s, total)

    gpu_names = sorted(
        {str(c.channel.info["gpu_name"]) for c in copies if "gpu_name" in c.channel.info}
    )
    host = HostInfo(
        hostname=hostname,
        os=str(facts["os"]),
        python=str(facts["python"]),
        bertwatt_version=str(facts["bertwatt_version"]),
        cpu_model=facts["cpu_model"],  # type: ignore[arg-type]
        logical_cpus=facts["logical_cpus"],  # type: ignore[arg-type]
        gpu_names=gpu_names,
        pid=os.getpid(),
    )
    unavailable = [
        UnavailableInfo(what=u.what, reason=u.reason, fix=u.fix, host=hostname)
        for u in window.unavailable
    ]
    if total is None:
        warnings.append(
            "no energy was measured: "
            + ("; ".join(f"{u.what}: {u.reason}" for u in unavailable) or "no backend")
        )
    start_wall = window.start_wall_ns
    extra: dict[str, Any] = {}
    wall = compare_wall(
        [_wall_input(c.channel, energies.get(c.channel), coverages.get(c.channel)) for c in copies],
        wall_phases,
        run_duration_s=duration_s,
        phase_durations_s=wall_durations,
    )
    return EnergyReport(
        status="complete" if final else "running",
        started_at=_utc(start_wall),
        ended_at=_utc(start_wall + duration_ns),
        duration_s=duration_s,
        interval_s=interval_s,
        host=host,
        hosts=[host],
        energy_j=total,
        energy_kwh=kwh(total),
        mean_power_w=(total / duration_s) if total is not None and duration_s else None,
        total_basis=basis,
        channels=channels,
        phases=phases,
        unavailable=unavailable,
        warnings=list(dict.fromkeys(warnings)),
        baseline=baseline,
        energy_above_idle_j=above,
        timeline=timeline,
        wall=wall,
        extra=extra,
    )


def _wall_input(ch: Channel, energy_j: float | None, coverage: float | None) -> WallChannel:
    return WallChannel(
        name=ch.name,
        scope=ch.provenance.scope,
        counted=ch.counted,
        kind=ch.kind,
        parent=ch.parent,
        energy_j=energy_j,
        resolution_j=ch.provenance.resolution_j,
        coverage=coverage,
        update_period_s=ch.provenance.update_period_s,
    )
