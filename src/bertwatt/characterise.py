"""Self-characterisation at start: a short polling burst per backend, on its sampler thread.

Right after a backend's first read (so ``start()`` is never delayed), its sampler thread polls it
for at most :data:`BURST_S` seconds and :data:`BURST_READS` reads, then stops for good: every
7.5 ms until a counter steps, then, with the sensor model's period, asleep until just before the
next step is due and every 2 ms around it, until three steps are seen (about 10-20 reads). From
the burst it learns, per channel:

- for an energy **counter**: whether it moves in steps slower than the polls, its update period
  and the times of its steps (phase), bounded on both sides by the polls that saw it unchanged
  and changed. A period within the polls' precision of the sensor model's (``sensor_models.csv``)
  is taken as the model's; else the measured one, whose error then grows with time;
- whether the **power reading** is instant or averaged: for a counter whose backend also offers
  ``read_power()`` (NVML), the reading's swing is compared with the counter's step-to-step swing
  over the burst (an instant reading follows the steps, a 1 s average moves a few tenths of
  them); a power channel's own refresh period is found like a counter's steps.

What it found goes into each channel's ``provenance.characterised`` (period, phase resolution,
averaged or instant, and how it was measured). With a counter's steps known, every counter
reading is placed at the counter's last step (:class:`StepClock`) instead of at the read: a
window edge then falls between two known steps and is interpolated, or, after the last step, is
extrapolated at the power of the last read interval. Where the phase is no longer known to a
quarter period (the clocks drift apart, :data:`DRIFT_REL`, or the period was measured rather than
confirmed), a reading is placed half a period before the read, its expected age.

Run for backends that set ``characterise = True`` (NVML), or whose sensor model updates every
10 ms or slower (their start edge is then read as it is: the model is looked up after the first
read, so that ``start()`` never waits for it); skipped for blocking (network) backends, for
estimates, for backends that set ``characterise = False`` and for those whose first read did
not return in time. A window edge asked for during the burst ends it at once (the edge is read
right after). Nothing here runs on the caller's thread, and with a manual clock
(:class:`bertwatt.testing.FakeClock`) the burst polls as the clock advances.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bertwatt._steps import (
    DRIFT_REL,
    MIN_STEPS,
    StepClock,
    StepFit,
    classify_reading,
    fit_steps,
)
from bertwatt.backends._guard import check_reading

if TYPE_CHECKING:
    from bertwatt.clock import Clock
    from bertwatt.sampler import BackendGroup, Sampler
    from bertwatt.timeline import ChannelTimeline

__all__ = [
    "BURST_READS",
    "BURST_S",
    "DRIFT_REL",
    "Burst",
    "StepClock",
    "StepFit",
    "attach_bursts",
    "classify_reading",
    "fit_steps",
    "start_burst",
]

#: Longest burst (s) and most reads per channel.
BURST_S = 0.3
BURST_READS = 40
#: Sensors updating at least this slowly are characterised unless the backend says otherwise.
_SLOW_SENSOR_S = 0.01
#: Around an expected step: polls this often, from this long before it is due.
_FINE_NS = 2_000_000
_SLACK_NS = 2_000_000
_NS = 1_000_000_000


# --------------------------------------------------------------------------- the burst
@dataclass
class _Track:
    """The polls of one channel (or of the power reading beside a counter)."""

    t0: list[int] = field(default_factory=list)
    t1: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    power: list[float] = field(default_factory=list)


def _model_period(backend: str, tl: ChannelTimeline) -> float | None:
    from bertwatt.report.uncertainty import sensor_model_for

    ch = tl.channel
    if ch.provenance.update_period_s:
        return ch.provenance.update_period_s
    device = str(ch.info.get("gpu_name") or ch.info.get("name") or "")
    try:
        model = sensor_model_for(backend, ch.kind, device)
    except Exception:  # a broken override table must not stop the burst
        return None
    return model.update_period_s if model is not None else None


def _eligible(g: BackendGroup, *, full: bool = True) -> bool:
    """Burst for a non-blocking, measuring backend that asks for it (``characterise = True``)
    or, when it does not say, whose sensor model updates every 10 ms or slower (NVML's 100 ms;
    not RAPL's 1 ms, which no burst can resolve). ``full=False`` leaves the sensor model out
    (it is looked up after the first read, so a fresh process's first look-up never delays
    ``start()``)."""
    if g.blocking or not g.at_edges or not g.timelines:
        return False
    if getattr(g.backend, "name", "") == "estimate":
        return False
    if any(tl.channel.provenance.kind == "estimated" for tl in g.timelines):
        return False
    if all(tl.channel.mean_since_last_read for tl in g.timelines):
        return False  # means since the previous read (NVML's buffered samples): nothing to find
    wanted = getattr(g.backend, "characterise", None)
    if isinstance(wanted, bool):
        return wanted
    if not full:
        return True
    return any((_model_period(g.name, tl) or 0.0) >= _SLOW_SENSOR_S for tl in g.timelines)


class Burst:
    """One backend's characterisation burst (see the module docstring).

    Args:
        group: the backend's sampler group (its thread, lock and timelines).
        clock: the meter's clock.
    """

    def __init__(self, group: BackendGroup, clock: Clock, *, hold: bool = True) -> None:
        self.group = group
        #: counter edges are held for the burst, so it may place readings at the steps
        self.hold = hold
        self.clock = clock
        self.tracks = [_Track() for _ in group.timelines]
        self.started_ns: int | None = None
        self.next_ns = 0
        self.reads = 0
        self.ended = ""
        reader = getattr(group.backend, "read_power", None)
        self.read_power: Callable[[], Sequence[float]] | None = (
            reader
            if callable(reader) and any(tl.channel.kind == "counter" for tl in group.timelines)
            else None
        )
        self.poll_ns = int(BURST_S / BURST_READS * _NS)
        # the counter whose steps steer the polls (the first with a known period): found by
        # prepare(), after the group's first read
        self.steer: int | None = None
        self.steer_period_ns = 0
        self.changes: list[tuple[int, int]] = []
        self.prepared = False
        if hold:
            with group.lock:
                for tl in group.timelines:
                    if tl.channel.kind == "counter":
                        tl.hold_marks()

    def prepare(self) -> bool:
        """Look the sensor models up; False (edges released) when the burst is not wanted."""
        if self.prepared:
            return True
        g = self.group
        if not _eligible(g):
            with g.lock:
                for tl in g.timelines:
                    tl.release_marks()
            return False
        for k, tl in enumerate(g.timelines):
            period = _model_period(g.name, tl) if tl.channel.kind == "counter" else None
            if period and period >= _SLOW_SENSOR_S:
                self.steer, self.steer_period_ns = k, round(period * _NS)
                break
        self.prepared = True
        return True

    # -- polling
    def poll(self) -> bool:
        """Take one burst read; False when the burst is over."""
        g, clock = self.group, self.clock
        t0 = clock.monotonic_ns()
        if self.started_ns is None:
            self.started_ns = t0
        g.read_started_ns = t0
        g.call = "read"
        try:
            values, _errors = check_reading(g.backend.read(), g.n_channels, f"{g.name}.read()")
            power: Sequence[float] = ()
            if self.read_power is not None and self.reads % 2 == 0:  # every other poll
                try:
                    power = list(self.read_power())
                except Exception:
                    self.read_power = None
        except Exception as err:
            self.ended = f"a read failed during the burst ({type(err).__name__})"
            return False
        finally:
            g.call = ""
            g.read_started_ns = 0
        t1 = clock.monotonic_ns()
        index = g.index
        for j, track in enumerate(self.tracks):
            i = index[j] if index is not None else j
            track.t0.append(t0)
            track.t1.append(t1)
            track.values.append(values[i])
            if power and i < len(power):
                track.power.append(float(power[i]))
        self.reads += 1
        nxt = self._next_poll(t0, t1)
        if nxt is None:
            return False
        self.next_ns = nxt
        return self.reads < BURST_READS and t1 - self.started_ns < BURST_S * _NS

    def _next_poll(self, t0: int, t1: int) -> int | None:
        """When to poll next (None: the steps are known well enough).

        Every :attr:`poll_ns` until the counter is seen to step; then, with the sensor model's
        period, asleep until just before the next step is due and every :data:`_FINE_S` around
        it, until three steps are seen (the last two to within a few ms).
        """
        k = self.steer
        if k is None:
            return t0 + self.poll_ns
        track = self.tracks[k]
        if len(track.values) >= 2 and track.values[-1] != track.values[-2]:
            self.changes.append((track.t0[-2], track.t1[-1]))
        if not self.changes:
            return t0 + self.poll_ns
        if len(self.changes) >= MIN_STEPS:
            return None
        lo, _hi = self.changes[-1]
        due = lo + self.steer_period_ns - _SLACK_NS  # the earliest the next step can come
        return due if t1 < due else t0 + _FINE_NS

    def run(self, halted: Callable[[], bool], sleep: Callable[[bool, float], bool]) -> None:
        """Poll on the group's own thread until done, stopped, or an edge is wanted; then finish.

        ``halted`` says whether the sampler is stopping; ``sleep(True, seconds)`` is the group's
        wake-up (its raw lock's timed acquire: True when an edge or stop poked it)."""
        g = self.group
        # one poll interval first: start() returns and its caller goes on without sharing the
        # interpreter with the burst's set-up (an edge asked for meanwhile wakes this at once)
        sleep(True, self.poll_ns / _NS)
        if g.edge_wanted or halted():  # an edge at once (a window of nothing): no burst
            self.ended = "a window edge was asked for before it began"
            self.finish()  # says so, and releases the held edges
            return
        if not self.prepare():
            return
        try:
            while not halted() and not g.edge_wanted:
                if not self.poll():
                    break
                left = (self.next_ns - self.clock.monotonic_ns()) / _NS
                if left > 0 and not g.edge_wanted:
                    sleep(True, left)  # a poke is consumed here; edge_wanted stays for the loop
            if g.edge_wanted and not self.ended:
                self.ended = f"a window edge was asked for after {self.reads} reads"
        finally:
            self.finish()
            # the burst's reads stood for the ticks it took: the next tick is one interval on
            g.next_due_ns = max(g.next_due_ns, self.clock.monotonic_ns() + g.interval_ns)

    # -- manual clocks: the clock calls these as it advances
    def next_due_ns(self) -> int | None:
        """The next poll (manual clocks)."""
        return self.next_ns

    def run_due(self, now_ns: int) -> None:
        """Take the poll due at ``now_ns``, or finish (manual clocks)."""
        if self.group.finished or not self.poll():
            detach = getattr(self.clock, "detach", None)
            if detach is not None:
                detach(self)
            self.finish()

    # -- the result
    def finish(self) -> None:
        """Fit what the burst saw, record it, install step clocks, release the held edges."""
        g = self.group
        start = self.started_ns or 0
        span = (max((t.t1[-1] for t in self.tracks if t.t1), default=start) - start) / _NS
        how = (
            f"burst of {self.reads} reads over {span:.3g} s on the sampler thread right after "
            f"start() returned (a read every {self.poll_ns / 1e6:.3g} ms"
            + (
                f" until a step, then every {_FINE_NS / 1e6:g} ms around the next expected ones)"
                if self.steer is not None
                else ")"
            )
            + (f"; ended early: {self.ended}" if self.ended else "")
        )
        with g.lock:
            if g.finished:
                for tl in g.timelines:
                    tl.release_marks()
                return
            for tl, track in zip(g.timelines, self.tracks, strict=True):
                self._finish_channel(tl, track, how)

    def _finish_channel(self, tl: ChannelTimeline, track: _Track, how: str) -> None:
        info: dict[str, str] = {"how_measured": how}
        # (too few polls: no need to look the sensor model up)
        model_s = _model_period(self.group.name, tl) if len(track.values) >= 4 else None
        fit = fit_steps(track.t0, track.t1, track.values, model_s)
        what = "counter" if tl.channel.kind == "counter" else "power reading"
        if fit.clock is None:
            info["update_period_s"] = f"not resolved: {fit.reason}"
        else:
            c = fit.clock
            period_s, precision_s = fit.measured_period_s or 0.0, fit.period_precision_s or 0.0
            measured = f"{period_s:.4g} s +/- {precision_s * 1e3:.2g} ms"
            info["update_period_s"] = (
                f"{c.period_ns / _NS:.4g} (the sensor model's; the burst measured {measured} "
                f"from {fit.steps} steps)"
                if fit.snapped
                else f"{c.period_ns / _NS:.4g} (measured from {fit.steps} steps, +/- "
                f"{precision_s * 1e3:.2g} ms)"
            )
            offset = ((c.anchor_ns - (self.started_ns or 0)) % c.period_ns) / _NS
            info["phase"] = (
                f"the {what} steps {offset * 1e3:.1f} ms after the burst's first poll "
                "(mod the period)"
            )
            info["phase_resolution_s"] = f"{c.res_ns / _NS:.2g}"
        if tl.channel.kind == "counter":
            self._counter(tl, track, fit, info)
        else:
            # the burst's power readings are samples like any other: keep them
            last = tl.last_t
            for t0, t1, v in zip(track.t0, track.t1, track.values, strict=True):
                t = (t0 + t1) // 2
                if (last is None or t > last) and math.isfinite(v):
                    tl.add(t, v)
            info["power_reading"] = (
                "not resolved at start: no energy counter to compare it with (the report's "
                "detected_reading looks at its samples)"
            )
        tl.characterised = info

    def _counter(
        self, tl: ChannelTimeline, track: _Track, fit: StepFit, info: dict[str, str]
    ) -> None:
        if fit.clock is not None and track.power:
            steps_t = [
                track.t1[j + 1]
                for j in range(len(track.values) - 1)
                if track.values[j + 1] != track.values[j]
            ]
            steps_j = [
                track.values[j + 1]
                for j in range(len(track.values) - 1)
                if track.values[j + 1] != track.values[j]
            ]
            verdict, detail = classify_reading(steps_t, steps_j, track.power, fit.clock.period_ns)
            info["power_reading"] = f"{verdict}: {detail}" if verdict else f"not resolved: {detail}"
        elif fit.clock is not None:
            info["power_reading"] = "not measured: the backend offers no power reading"
        last = tl.last_t
        if not self.hold:
            tl.release_marks()
            info["edges"] = (
                "read as they are: the start edge was read before the sensor model was looked up "
                "(a backend that sets characterise = True has it held for the burst)"
            )
            return
        installed = tl.release_marks(fit.clock)
        if not installed:
            info["edges"] = (
                "read as they are (no step clock: "
                + (fit.reason or "the readings could not be placed at its steps")
                + ")"
            )
            return
        # the burst's own readings are counter readings too: they place the start edge
        # between two steps
        clock = fit.clock
        assert clock is not None
        for t0, t1, v in zip(track.t0, track.t1, track.values, strict=True):
            t = (t0 + t1) // 2
            # a poll too close to a step to say which side it read adds nothing: skip it
            step = clock.anchor_ns + ((t - clock.anchor_ns) // clock.period_ns) * clock.period_ns
            if clock.stamp(t) != step:
                continue
            if last is not None and t > last and math.isfinite(v):
                tl.add(t, v)
        life = (clock.period_ns / 4 - clock.res_ns) / clock.rate / _NS
        info["edges"] = (
            "each counter reading placed at the counter's last step, so a window edge between "
            "two steps is interpolated and one after the last step is extrapolated at the power "
            "of the last stored interval of at least one period; the phase is trusted for "
            f"about {life:.3g} s after start "
            f"({DRIFT_REL * 1e6:.0f} ppm drift assumed"
            + ("" if fit.snapped else ", and the measured period's error")
            + "), after which a reading is placed half a period before it was taken"
        )


def start_burst(group: BackendGroup, clock: Clock) -> Burst | None:
    """The burst of one group on its own thread, or None when it is skipped."""
    if clock.manual or not _eligible(group, full=False):
        return None
    # a backend that asks for the burst has its counter edges held for it; for the others the
    # sensor model is looked up after the first read, so their start edge is read as it is
    return Burst(group, clock, hold=getattr(group.backend, "characterise", None) is True)


def attach_bursts(sampler: Sampler) -> None:
    """With a manual clock: a burst per eligible group, polled as the clock advances."""
    clock: Any = sampler.clock
    attach = getattr(clock, "attach", None)
    if not clock.manual or attach is None:
        return
    now = clock.monotonic_ns()
    for g in sampler.groups:
        if _eligible(g):
            burst = Burst(g, clock)
            burst.prepare()
            burst.next_ns = now + burst.poll_ns
            attach(burst)
