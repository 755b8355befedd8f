"""One measurement window's state, and how channel energies add up without double counting.

Kept apart from :mod:`bertwatt.meter` so that the meter stays about its API; the report side
reads a window only through :meth:`Window.snapshot` (plain data, :mod:`bertwatt.report.snapshot`).

Long runs stay near-linear and bounded: a closed phase interval is folded into its phase's sums as
soon as every channel has resolved its edges, and marks nobody needs any more are dropped (all but
the first ``KEEP_FIRST``, the most recent ``KEEP_RECENT`` and those still in use by an open phase
or an interval not folded yet).
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from bertwatt.backends.base import Channel, Unavailable
from bertwatt.clock import Clock
from bertwatt.config import MeterConfig
from bertwatt.errors import ConfigError
from bertwatt.report.snapshot import (
    BaselineSnapshot,
    ChannelSnapshot,
    PhaseSnapshot,
    ProvenanceSnapshot,
    UnavailableSnapshot,
    WindowSnapshot,
)
from bertwatt.sampler import BackendGroup, Sampler
from bertwatt.timeline import ChannelTimeline

__all__ = ["KEEP_FIRST", "KEEP_RECENT", "Phase", "Window", "WindowEnergy", "total_of"]

#: Marks always kept from the start of a window (e.g. the start of training).
KEEP_FIRST = 1024
#: Most recent marks always kept.
KEEP_RECENT = 16384
_PRUNE_EVERY = 4096
#: Intervals listed per phase in a report (all are counted and summed).
MAX_INTERVALS = 10_000


@dataclass(frozen=True, slots=True)
class WindowEnergy:
    """Energy between two marks, as far as it is known now.

    Attributes:
        duration_s: time between the marks.
        energy_j: total over counted channels without double counting; None when no channel
            has resolved both edges yet.
        channels: per channel, joules or None while an edge is still unresolved (a blocking
            backend has not delivered a sample past it yet).
        complete: True when every channel resolved both edges.
    """

    duration_s: float
    energy_j: float | None
    channels: dict[str, float | None]
    complete: bool


@dataclass
class Phase:
    """One phase name: its folded sums, its closed intervals not folded yet, and its open state.

    Several threads may open the same name: the phase is then open from the first begin to the
    last end (one interval, its energy counted once), and each thread's own occurrence is
    tracked in ``owners`` for the energy :meth:`EnergyMeter.end` returns.
    """

    open_mark: int | None = None
    last_end: int | None = None
    owners: dict[int, list[int]] = field(default_factory=dict)
    count: int = 0
    duration_ns: int = 0
    intervals: list[tuple[int, int]] = field(default_factory=list)
    energy: dict[int, float] = field(default_factory=dict)
    covered: dict[int, int] = field(default_factory=dict)
    unfolded: deque[tuple[int, int]] = field(default_factory=deque)

    @property
    def depth(self) -> int:
        """Occurrences open now, over all threads."""
        return sum(len(v) for v in self.owners.values())


@dataclass
class Window:
    """Everything one start()/stop() cycle measured."""

    config: MeterConfig
    clock: Clock
    groups: tuple[BackendGroup, ...]
    timelines: tuple[ChannelTimeline, ...]
    unavailable: list[Unavailable]
    sampler: Sampler
    start_wall_ns: int
    run_id: str = ""
    node_id: str = ""
    mark_t: dict[int, int] = field(default_factory=dict)
    next_mark: int = 0
    phases: dict[str, Phase] = field(default_factory=dict)
    start_mark: int = 0
    end_mark: int | None = None
    baseline_marks: tuple[int, int] | None = None
    warnings: list[str] = field(default_factory=list)
    stopped: bool = False
    pid: int = field(default_factory=os.getpid)
    _fold: deque[tuple[Phase, int, int]] = field(default_factory=deque)
    _pruned_upto: int = KEEP_FIRST

    # ------------------------------------------------------------------ marks
    def new_mark(self, t_ns: int) -> int:
        """Register a window edge at monotonic ``t_ns`` on every timeline; returns its id."""
        mark_id = self.next_mark
        self.next_mark += 1
        self.mark_t[mark_id] = t_ns
        for g in self.groups:
            with g.lock:
                for tl in g.timelines:
                    tl.mark(mark_id, t_ns)
        return mark_id

    def t_of(self, mark_id: object) -> int:
        """Monotonic time of a mark, or ConfigError naming why it is not one."""
        if isinstance(mark_id, bool) or not isinstance(mark_id, int):
            raise ConfigError(f"{mark_id!r} is not a mark of this window")
        t = self.mark_t.get(mark_id)
        if t is None:
            if 0 <= mark_id < self.next_mark:
                raise ConfigError(
                    f"mark {mark_id} is no longer kept: on long runs only the first {KEEP_FIRST} "
                    f"marks, the last {KEEP_RECENT} and those of open phases are kept"
                )
            raise ConfigError(f"{mark_id!r} is not a mark of this window (0..{self.next_mark - 1})")
        return t

    def _resolved_below(self) -> float:
        low = math.inf
        for g in self.groups:
            with g.lock:
                for tl in g.timelines:
                    r = tl.resolved_below
                    if r is not None and r < low:
                        low = r
        return low

    def close_interval(self, ph: Phase, a: int, b: int) -> None:
        """Record a closed interval ``[a, b]`` of ``ph``; its energy is folded once resolved."""
        ta, tb = self.mark_t[a], self.mark_t[b]
        ph.count += 1
        ph.duration_ns += max(0, tb - ta)
        if len(ph.intervals) < MAX_INTERVALS:
            ph.intervals.append((ta, tb))
        ph.unfolded.append((a, b))
        self._fold.append((ph, a, b))

    def fold(self) -> None:
        """Fold every closed interval whose edges all channels have resolved into its phase."""
        if not self._fold:
            return
        low = self._resolved_below()
        ready: list[tuple[Phase, int, int]] = []
        while self._fold and self._fold[0][2] < low:
            ready.append(self._fold.popleft())
        if not ready:
            return
        idx = 0
        for g in self.groups:
            with g.lock:
                for tl in g.timelines:
                    marks, cov = tl.marks, tl.mark_cov
                    for ph, a, b in ready:
                        ph.energy[idx] = ph.energy.get(idx, 0.0) + max(0.0, marks[b] - marks[a])
                        ph.covered[idx] = ph.covered.get(idx, 0) + max(0, cov[b] - cov[a])
                    idx += 1
        for ph, _, _ in ready:
            ph.unfolded.popleft()

    def prune(self) -> None:
        """Drop marks no longer needed (amortised: runs once every few thousand marks)."""
        limit = min(self.next_mark - KEEP_RECENT, self._resolved_below())
        if limit - self._pruned_upto < _PRUNE_EVERY:
            return
        limit = int(limit)
        pinned = {self.start_mark}
        if self.baseline_marks is not None:
            pinned.update(self.baseline_marks)
        for ph in self.phases.values():
            if ph.open_mark is not None:
                pinned.add(ph.open_mark)
            for begins in ph.owners.values():
                pinned.update(begins)
        for _, a, b in self._fold:
            pinned.update((a, b))
        drop = [k for k in range(self._pruned_upto, limit) if k not in pinned and k in self.mark_t]
        for k in drop:
            del self.mark_t[k]
        for g in self.groups:
            with g.lock:
                for tl in g.timelines:
                    tl.forget(drop)
        self._pruned_upto = limit

    # ------------------------------------------------------------------ snapshots
    def snapshot(
        self,
        *,
        final: bool,
        now_ns: int,
        host: Mapping[str, object],
        run: Mapping[str, object] | None = None,
    ) -> WindowSnapshot:
        """Copy what the window measured into plain data (call under the meter's lock)."""
        t_start = self.mark_t[self.start_mark]
        end = self.end_mark
        t_end = self.mark_t[end] if end is not None else max(t_start, now_ns)
        edges = [(self.start_mark, t_start), (end, t_end)]
        if self.baseline_marks is not None:
            edges += [(m, self.mark_t[m]) for m in self.baseline_marks]
        pending = self._pending_intervals(t_end)
        channels: list[ChannelSnapshot] = []
        extra: list[list[tuple[float, int]]] = []  # per channel: per pending interval
        for g in self.groups:
            with g.lock:
                for tl in g.timelines:
                    vals = {m: _edge(tl, m, t) for m, t in edges}
                    channels.append(_channel(tl, g.backend.name, vals, edges, t_start, t_end))
                    extra.append([_between(tl, a, ta, b, tb) for _, a, ta, b, tb in pending])
        return WindowSnapshot(
            run_id=self.run_id,
            node_id=self.node_id,
            final=final,
            start_wall_ns=self.start_wall_ns,
            t_start_ns=t_start,
            t_end_ns=t_end,
            interval_s=self.config.interval_s,
            channels=tuple(channels),
            phases=self._phase_snapshots(channels, pending, extra),
            baseline=self._baseline_snapshot(channels),
            unavailable=tuple(
                UnavailableSnapshot(what=u.what, reason=u.reason, fix=u.fix)
                for u in self.unavailable
            ),
            warnings=tuple(self.warnings),
            missed_ticks=self.sampler.missed_ticks,
            host=dict(host),
            run=dict(run) if run is not None else None,
            phase_intervals_kept=MAX_INTERVALS,
        )

    def _pending_intervals(self, t_end: int) -> list[tuple[str, int | None, int, int | None, int]]:
        """Intervals not folded yet, and open ones (ending now): (phase, a, ta, b, tb)."""
        out: list[tuple[str, int | None, int, int | None, int]] = []
        for name, ph in self.phases.items():
            for a, b in ph.unfolded:
                out.append((name, a, self.mark_t[a], b, self.mark_t[b]))
            if ph.open_mark is not None:
                out.append((name, ph.open_mark, self.mark_t[ph.open_mark], None, t_end))
        return out

    def _phase_snapshots(
        self,
        channels: list[ChannelSnapshot],
        pending: list[tuple[str, int | None, int, int | None, int]],
        extra: list[list[tuple[float, int]]],
    ) -> tuple[PhaseSnapshot, ...]:
        out = []
        for name, ph in self.phases.items():
            count, dur, intervals = ph.count, ph.duration_ns, list(ph.intervals)
            energy = dict(ph.energy)
            covered = dict(ph.covered)
            for k, (pname, _, ta, b, tb) in enumerate(pending):
                if pname != name:
                    continue
                if b is None:  # the open interval, up to now
                    count += 1
                    dur += max(0, tb - ta)
                    if len(intervals) < MAX_INTERVALS:
                        intervals.append((ta, tb))
                for i, per in enumerate(extra):
                    energy[i] = energy.get(i, 0.0) + per[k][0]
                    covered[i] = covered.get(i, 0) + per[k][1]
            if not count:
                continue
            out.append(
                PhaseSnapshot(
                    name=name,
                    count=count,
                    duration_ns=dur,
                    intervals=tuple(intervals),
                    energy_j={
                        c.name: energy.get(i, 0.0) for i, c in enumerate(channels) if c.samples
                    },
                    covered_ns={
                        c.name: covered.get(i, 0) for i, c in enumerate(channels) if c.samples
                    },
                )
            )
        return tuple(out)

    def _baseline_snapshot(self, channels: list[ChannelSnapshot]) -> BaselineSnapshot | None:
        if self.baseline_marks is None:
            return None
        b0, b1 = self.baseline_marks
        return BaselineSnapshot(
            duration_ns=self.mark_t[b1] - self.mark_t[b0],
            energy_j={
                c.name: c.baseline_j for c in channels if c.samples and c.baseline_j is not None
            },
        )


def _edge(tl: ChannelTimeline, mark_id: int | None, t_ns: int) -> tuple[float, int]:
    """(cumulative J, covered ns) of ``tl`` at a mark, or at ``t_ns`` if unresolved."""
    if mark_id is not None:
        e = tl.marks.get(mark_id)
        if e is not None:
            return e, tl.mark_cov.get(mark_id, 0)
    return tl.energy_at(t_ns), tl.covered_to(t_ns)


def _between(
    tl: ChannelTimeline, a: int | None, ta: int, b: int | None, tb: int
) -> tuple[float, int]:
    ea, ca = _edge(tl, a, ta)
    eb, cb = _edge(tl, b, tb)
    return max(0.0, eb - ea), max(0, cb - ca)


def _channel(
    tl: ChannelTimeline,
    backend: str,
    vals: dict[int | None, tuple[float, int]],
    edges: list[tuple[int | None, int]],
    t_start: int,
    t_end: int,
) -> ChannelSnapshot:
    ch = tl.channel
    prov = ch.provenance
    t, e, p = tl.points()
    (e0, c0), (e1, c1) = vals[edges[0][0]], vals[edges[1][0]]
    baseline_j = None
    if len(edges) == 4:
        baseline_j = max(0.0, vals[edges[3][0]][0] - vals[edges[2][0]][0])
    stuck = tuple(
        (max(a, t_start), min(b, t_end)) for a, b in tl.stuck_spans() if b > t_start and a < t_end
    )
    return ChannelSnapshot(
        name=ch.name,
        backend=backend,
        domain=ch.domain,
        kind=ch.kind,
        counted=ch.counted,
        parent=ch.parent,
        provenance=ProvenanceSnapshot(
            kind=prov.kind,
            source=prov.source,
            scope=prov.scope,
            method=prov.method,
            update_period_s=prov.update_period_s,
            averaging_window_s=prov.averaging_window_s,
            resolution_j=prov.resolution_j,
            assumptions=dict(prov.assumptions),
            notes=tuple(prov.notes),
        ),
        info={k: str(v) for k, v in ch.info.items()},
        samples=tl.samples,
        rejected=tl.rejected,
        failed_reads=tl.failed_reads,
        wraps=tl.wraps,
        peak_w=tl.peak_w,
        events=tuple(tl.events),
        t_ns=t,
        energy_j=e,
        power_w=p,
        last_energy_j=tl.energy_j,
        start_j=e0,
        end_j=e1,
        covered_ns=max(0, c1 - c0),
        stuck_ns=stuck,
        stuck_count=len(stuck),
        max_power_w=tl.max_power_w,
        baseline_j=baseline_j,
        characterised=dict(tl.characterised),
        step_period_s=tl.step_clock.period_ns / 1e9 if tl.step_clock is not None else None,
    )


def total_of(
    values: dict[Channel, float],
    coverage: dict[Channel, float] | None = None,
    duration_s: float | None = None,
) -> tuple[float | None, str]:
    """Sum channel energies without double counting; returns (total, basis sentence).

    Channels marked ``counted=False`` (RAPL sub-zones, psys) never add. Whole-machine channels
    (scope ``system``: wall plugs, BMCs) overlap the components and are never added to them: the
    total is the component sum whenever a component channel was measured, and the wall meter's
    energy only when it is the sole measurement (counter, or its power when the counter is too
    coarse: :func:`bertwatt.report.wall.wall_energy`). ``coverage`` (share of the window per
    channel) lets that choice see a counter reset, ``duration_s`` a counter refreshed too rarely.
    """
    counted = {c: v for c, v in values.items() if c.counted}
    walls = [c for c in values if c.provenance.scope == "system"]
    components = {c: v for c, v in counted.items() if c.provenance.scope != "system"}
    if components:
        names = ", ".join(sorted(c.name for c in components))
        basis = f"sum of {names}"
        wall_names = sorted(c.name for c in walls if c.counted)
        if wall_names:
            basis += (
                f"; wall meter {', '.join(wall_names)} compared apart (report.wall), never added"
            )
        return sum(components.values()), basis
    if not any(c.counted for c in walls):
        return None, "no counted channel was measured"
    from bertwatt.report.wall import WallChannel, wall_energy

    cov = coverage or {}
    total, how, _ = wall_energy(
        [
            WallChannel(
                name=c.name,
                scope="system",
                counted=c.counted,
                kind=c.kind,
                parent=c.parent,
                energy_j=values[c],
                resolution_j=c.provenance.resolution_j,
                coverage=cov.get(c),
                update_period_s=c.provenance.update_period_s,
            )
            for c in walls
        ],
        duration_s,
    )
    return total, f"wall meter only (no component sensor): {how}"
