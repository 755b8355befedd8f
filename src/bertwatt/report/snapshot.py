"""Frozen, plain-data pictures of a meter window, from which a report is built.

The meter side (:mod:`bertwatt.window`) copies what it measured into these dataclasses under its
locks; :func:`bertwatt.report.build.build_report` turns them into an
:class:`~bertwatt.report.models.EnergyReport` without touching live objects. Nothing here imports
backends, the sampler, timelines or windows: a channel's facts (provenance, scope, whether it is
counted) travel as plain values, and times are monotonic nanoseconds.

Also home of :func:`interpolate`, the one piece of timeline maths both sides need.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "BaselineSnapshot",
    "ChannelSnapshot",
    "PhaseSnapshot",
    "ProvenanceSnapshot",
    "UnavailableSnapshot",
    "WindowSnapshot",
    "interpolate",
]


def interpolate(t: Sequence[int], e: Sequence[float], last: float, t_ns: int) -> float:
    """Cumulative energy at ``t_ns`` from stored points ``(t, e)``; ``last`` past the end."""
    if not t or t_ns <= t[0]:
        return 0.0
    if t_ns >= t[-1]:
        return last
    i = bisect_left(t, t_ns)
    t0, t1 = t[i - 1], t[i]
    return e[i - 1] + (e[i] - e[i - 1]) * (t_ns - t0) / (t1 - t0)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProvenanceSnapshot:
    """Where a channel's numbers come from (a copy of ``bertwatt.backends.base.Provenance``)."""

    kind: str
    source: str
    scope: str
    method: str = ""
    update_period_s: float | None = None
    averaging_window_s: float | None = None
    resolution_j: float | None = None
    assumptions: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelSnapshot:
    """One channel over one window.

    Attributes:
        name, backend, domain, kind, counted, parent: the channel's identity.
        provenance: where its numbers come from.
        info: device facts.
        samples, rejected, failed_reads, wraps: counts since the window's sampler started.
        peak_w: highest accepted power (W), NaN when none.
        events: the first few notable events, as sentences.
        t_ns, energy_j, power_w: stored (thinned) points of the cumulative curve.
        last_energy_j: the cumulative energy at the latest sample.
        start_j, end_j: cumulative energy at the window's start and end edges.
        covered_ns: nanoseconds of the window in which the channel was measured.
        stuck_ns: spans (monotonic ns) in which the counter did not move although it should
            have (suspected stuck sensor); ``stuck_count`` counts all of them.
        max_power_w: the plausibility bound readings were checked against (W).
        baseline_j: energy over the idle baseline, None without one.
        characterised: what the self-characterisation burst at start found (text by key).
        step_period_s: a counter's update period when its readings were placed at its steps
            (found at start), else None.
    """

    name: str
    backend: str
    domain: str
    kind: str
    counted: bool
    parent: str | None
    provenance: ProvenanceSnapshot
    info: Mapping[str, str]
    samples: int
    rejected: int
    failed_reads: int
    wraps: int
    peak_w: float
    events: tuple[str, ...]
    t_ns: Sequence[int]
    energy_j: Sequence[float]
    power_w: Sequence[float]
    last_energy_j: float
    start_j: float
    end_j: float
    covered_ns: int
    stuck_ns: tuple[tuple[int, int], ...] = ()
    stuck_count: int = 0
    max_power_w: float | None = None
    baseline_j: float | None = None
    characterised: Mapping[str, str] = field(default_factory=dict)
    step_period_s: float | None = None

    @property
    def scope(self) -> str:
        """The part of the machine the channel covers."""
        return self.provenance.scope

    def energy_at(self, t_ns: int) -> float:
        """Cumulative energy at ``t_ns`` (interpolated between stored points)."""
        return interpolate(self.t_ns, self.energy_j, self.last_energy_j, t_ns)


@dataclass(frozen=True, slots=True, kw_only=True)
class PhaseSnapshot:
    """Every occurrence of one phase name, summed.

    Attributes:
        name: the phase name.
        count: number of intervals (occurrences; overlapping ones from several threads are one).
        duration_ns: their total length.
        intervals: ``(t0_ns, t1_ns)`` of the first intervals (at most a fixed number).
        energy_j: per channel name, joules over all intervals.
        covered_ns: per channel name, measured nanoseconds over all intervals.
    """

    name: str
    count: int
    duration_ns: int
    intervals: tuple[tuple[int, int], ...]
    energy_j: Mapping[str, float]
    covered_ns: Mapping[str, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class BaselineSnapshot:
    """The idle baseline measured before the window: its length and energy per channel."""

    duration_ns: int
    energy_j: Mapping[str, float]


@dataclass(frozen=True, slots=True, kw_only=True)
class UnavailableSnapshot:
    """Something that could not be measured, why, and the fix."""

    what: str
    reason: str
    fix: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WindowSnapshot:
    """Everything a report of one window needs, as plain data.

    Attributes:
        run_id: the window's identity (checkpoints and the final report share it).
        node_id: the node measured (the hostname for now).
        final: True once the window is closed (False: a checkpoint of a running window).
        start_wall_ns: wall-clock time of the window start (a label, ns since the epoch).
        t_start_ns, t_end_ns: monotonic start and end (the end is "now" while running).
        interval_s: the sampling period.
        channels, phases, baseline, unavailable: what was measured and what was not.
        warnings: sentences the meter side already wrote (e.g. a phase closed at stop()).
        missed_ticks: sampler ticks missed because the process was busy.
        host: facts about the machine (hostname, os, python, bertwatt_version, cpu_model,
            logical_cpus, pid).
        run: what was run (fields of :class:`~bertwatt.report.models.RunInfo`), if known.
        phase_intervals_kept: how many intervals per phase are listed before the rest are only
            counted.
    """

    run_id: str
    node_id: str
    final: bool
    start_wall_ns: int
    t_start_ns: int
    t_end_ns: int
    interval_s: float
    channels: tuple[ChannelSnapshot, ...]
    phases: tuple[PhaseSnapshot, ...] = ()
    baseline: BaselineSnapshot | None = None
    unavailable: tuple[UnavailableSnapshot, ...] = ()
    warnings: tuple[str, ...] = ()
    missed_ticks: int = 0
    host: Mapping[str, object] = field(default_factory=dict)
    run: Mapping[str, object] | None = None
    phase_intervals_kept: int = 10_000
