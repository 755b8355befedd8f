"""Per-channel timelines: unwrapping, integration, validation, window edges and coverage.

Every channel, counter or power, becomes one cumulative-energy curve ``E(t)`` starting at 0 at its
first sample:

- **counter** channels add the difference between consecutive readings, corrected for
  wrap-around with ``Channel.wrap_j``. A reading that goes backwards without a plausible wrap is a
  counter reset: the interval is recorded as a gap and not summed.
- **power** channels are integrated by the trapezoid rule. An interval longer than the gap limit is
  a gap: it is not bridged by a guess, and it lowers the channel's coverage.

Readings that are NaN, negative (power), or imply more than ``Channel.max_power_w`` are rejected
and recorded, never summed. Window edges ("marks") are resolved by linear interpolation of
``E(t)``, which for power channels is exactly the trapezoid integral up to the mark. Stored points
are thinned (every other point dropped) when a timeline reaches its capacity, so memory stays
bounded on runs of days; totals and already-resolved marks are unaffected.

This module is the sampler's hot path: no logging, no per-sample objects beyond array appends.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from collections import deque
from collections.abc import Sequence

from bertwatt.backends.base import Channel

__all__ = ["ChannelTimeline", "covered_ns", "interpolate"]

_NS = 1e9
_MAX_EVENTS = 20
_REJECTS_BEFORE_REBASE = 3


def interpolate(t: Sequence[int], e: Sequence[float], last: float, t_ns: int) -> float:
    """Cumulative energy at ``t_ns`` from stored points ``(t, e)``; ``last`` past the end."""
    if not t or t_ns <= t[0]:
        return 0.0
    if t_ns >= t[-1]:
        return last
    i = bisect_left(t, t_ns)
    t0, t1 = t[i - 1], t[i]
    return e[i - 1] + (e[i] - e[i - 1]) * (t_ns - t0) / (t1 - t0)


def covered_ns(
    first: int | None, last: int | None, gaps: Sequence[tuple[int, int]], t0: int, t1: int
) -> int:
    """Nanoseconds of ``[t0, t1]`` inside ``[first, last]`` and outside every gap."""
    if t1 <= t0 or first is None or last is None:
        return 0
    a, b = max(t0, first), min(t1, last)
    if b <= a:
        return 0
    covered = b - a
    for g0, g1 in gaps:
        lo, hi = max(a, g0), min(b, g1)
        if hi > lo:
            covered -= hi - lo
    return max(0, covered)


class ChannelTimeline:
    """The measured history of one channel inside one meter window.

    Not thread-safe by itself: the sampler holds the owning backend's lock around every call.

    Args:
        channel: the channel measured.
        capacity: stored points before thinning.
        gap_ns: for power channels, the longest interval bridged by the trapezoid rule.
    """

    __slots__ = (
        "_capacity",
        "_cum",
        "_e",
        "_gap_ns",
        "_last_msg",
        "_p",
        "_pending",
        "_prev_raw",
        "_prev_t",
        "_prev_w",
        "_rejects_in_row",
        "_suspect",
        "_t",
        "_wrap_safe_ns",
        "channel",
        "covered_ns",
        "event_counts",
        "events",
        "failed_reads",
        "first_t",
        "gaps",
        "marks",
        "peak_w",
        "rejected",
        "samples",
        "wraps",
    )

    def __init__(self, channel: Channel, *, capacity: int = 8192, gap_ns: int = 1_000_000_000):
        self.channel = channel
        self._capacity = max(8, capacity)
        self._gap_ns = gap_ns
        self._t = array("q")
        self._e = array("d")
        self._p = array("d")
        self._cum = 0.0
        self._prev_t: int | None = None
        self._prev_raw = math.nan
        self._prev_w = math.nan
        self._rejects_in_row = 0
        self._suspect: tuple[int, float] | None = None
        self._pending: deque[tuple[int, int]] = deque()
        self._last_msg = ""
        if channel.wrap_j and channel.max_power_w:
            self._wrap_safe_ns = int(channel.wrap_j / channel.max_power_w * _NS)
        else:
            self._wrap_safe_ns = 0
        self.first_t: int | None = None
        self.samples = 0
        self.rejected = 0
        self.failed_reads = 0
        self.wraps = 0
        self.covered_ns = 0
        self.peak_w = math.nan
        self.gaps: list[tuple[int, int]] = []
        self.marks: dict[int, float] = {}
        self.events: list[str] = []
        self.event_counts: dict[str, int] = {}

    # ---------------------------------------------------------------- properties
    @property
    def energy_j(self) -> float:
        """Energy summed so far (J)."""
        return self._cum

    @property
    def last_t(self) -> int | None:
        """Monotonic ns of the latest accepted sample, or None before the first."""
        return self._prev_t

    @property
    def wrap_safe_s(self) -> float | None:
        """Longest interval between reads that cannot hide two wraps at ``max_power_w``."""
        return self._wrap_safe_ns / _NS if self._wrap_safe_ns else None

    # ---------------------------------------------------------------- recording
    def _event(self, kind: str, message: str) -> None:
        n = self.event_counts.get(kind, 0) + 1
        self.event_counts[kind] = n
        if n <= 3 and len(self.events) < _MAX_EVENTS:
            self.events.append(message)

    def _gap(self, t0: int, t1: int) -> None:
        if t1 <= t0:
            return
        if self.gaps and self.gaps[-1][1] >= t0:
            a, b = self.gaps[-1]
            self.gaps[-1] = (a, max(b, t1))
        else:
            self.gaps.append((t0, t1))

    def _append(self, t: int, power_w: float) -> None:
        if len(self._t) >= self._capacity:
            last = (self._t[-1], self._e[-1], self._p[-1])
            self._t = self._t[::2]
            self._e = self._e[::2]
            self._p = self._p[::2]
            if self._t[-1] != last[0]:
                self._t.append(last[0])
                self._e.append(last[1])
                self._p.append(last[2])
        self._t.append(t)
        self._e.append(self._cum)
        self._p.append(power_w)

    def _resolve(self, t: int, prev_t: int | None, prev_cum: float) -> None:
        pending = self._pending
        while pending and pending[0][1] <= t:
            mark_id, tm = pending.popleft()
            if prev_t is None or t == prev_t:
                value = self._cum if prev_t is not None else 0.0
            else:
                frac = (tm - prev_t) / (t - prev_t)
                value = prev_cum + (self._cum - prev_cum) * max(0.0, frac)
            self.marks[mark_id] = value

    def fail(self, t_ns: int, message: str) -> None:
        """Record a read that returned no value (the sensor errored)."""
        self.failed_reads += 1
        if message != self._last_msg:
            self._last_msg = message
            self._event("read-failed", f"read failed at +{self._offset_s(t_ns):.3f} s: {message}")

    def _offset_s(self, t_ns: int) -> float:
        return 0.0 if self.first_t is None else (t_ns - self.first_t) / _NS

    def add(self, t_ns: int, value: float) -> None:
        """Add one reading: joules (raw counter) or watts, stamped with monotonic ``t_ns``."""
        if value != value or math.isinf(value):
            self.rejected += 1
            self._event("rejected", f"rejected non-finite reading at +{self._offset_s(t_ns):.3f} s")
            return
        prev_t = self._prev_t
        if prev_t is None:
            self.first_t = t_ns
            self._prev_t = t_ns
            if self.channel.kind == "counter":
                self._prev_raw = value
                w = math.nan
            else:
                if value < 0 or (self.channel.max_power_w and value > self.channel.max_power_w):
                    self._prev_t = None
                    self.first_t = None
                    self._reject_power(t_ns, value)
                    return
                self._prev_w = value
                self.peak_w = value
                w = value
            self.samples += 1
            self._append(t_ns, w)
            self._resolve(t_ns, None, 0.0)
            return
        dt = t_ns - prev_t
        if dt <= 0:
            return
        prev_cum = self._cum
        if self.channel.kind == "counter":
            accepted = self._add_counter(t_ns, dt, value)
        else:
            accepted = self._add_power(t_ns, dt, value)
        if accepted is None:
            return
        self.samples += 1
        self._append(t_ns, accepted)
        self._resolve(t_ns, prev_t, prev_cum)
        self._prev_t = t_ns

    def _reject_power(self, t_ns: int, value: float) -> None:
        self.rejected += 1
        self._event(
            "rejected",
            f"rejected power reading {value:g} W at +{self._offset_s(t_ns):.3f} s "
            f"(outside 0..{self.channel.max_power_w or math.inf:g} W)",
        )

    def _add_power(self, t_ns: int, dt: int, w: float) -> float | None:
        mx = self.channel.max_power_w
        if w < 0 or (mx and w > mx):
            self._reject_power(t_ns, w)
            return None
        if dt > self._gap_ns:
            self._gap(self._prev_t or t_ns, t_ns)
            self._event(
                "gap",
                f"no reading for {dt / _NS:.3f} s before +{self._offset_s(t_ns):.3f} s: "
                "interval not integrated",
            )
        else:
            self._cum += 0.5 * (self._prev_w + w) * (dt / _NS)
            self.covered_ns += dt
        self._prev_w = w
        if not w <= self.peak_w:
            self.peak_w = w
        return w

    def _add_counter(self, t_ns: int, dt: int, raw: float) -> float | None:
        ch = self.channel
        delta = raw - self._prev_raw
        wrapped = False
        suspect = self._suspect
        if delta < 0 and not ch.wrap_j:
            if suspect is None:
                # One reading below the last: a glitch or a reset. Decide on the next reading.
                self._suspect = (t_ns, raw)
                self.rejected += 1
                self._event(
                    "backwards",
                    f"counter went back from {self._prev_raw:.6g} J to {raw:.6g} J at "
                    f"+{self._offset_s(t_ns):.3f} s: held back until the next reading",
                )
                return None
            # A second reading below the old base: the counter was reset at the suspect reading.
            st, sraw = suspect
            self._suspect = None
            self.rejected -= 1
            self._event(
                "reset",
                f"counter reset confirmed at +{self._offset_s(st):.3f} s "
                f"({self._prev_raw:.6g} J -> {sraw:.6g} J): that interval is not counted",
            )
            self._gap(self._prev_t or st, st)
            self._prev_raw = sraw
            if raw < sraw:
                self._gap(st, t_ns)
                self._prev_raw = raw
                return math.nan
            delta = raw - sraw
            dt = t_ns - st
            if dt <= 0:
                self._prev_raw = raw
                return math.nan
        elif suspect is not None:
            self._suspect = None  # the backwards reading was a glitch; it stays rejected
        if delta < 0:
            if raw >= 0:
                delta += ch.wrap_j  # type: ignore[operator]
                wrapped = True
            else:
                self.rejected += 1
                self._event("rejected", f"rejected negative counter reading {raw:.6g} J")
                return None
        power = delta / (dt / _NS)
        if ch.max_power_w and power > ch.max_power_w:
            self.rejected += 1
            self._rejects_in_row += 1
            self._event(
                "rejected",
                f"rejected counter jump of {delta:.6g} J in {dt / _NS:.4f} s "
                f"({power:.6g} W > {ch.max_power_w:g} W) at +{self._offset_s(t_ns):.3f} s",
            )
            if self._rejects_in_row >= _REJECTS_BEFORE_REBASE:
                self._event(
                    "reset",
                    f"counter re-based after {self._rejects_in_row} implausible readings: "
                    "interval not counted",
                )
                self._gap(self._prev_t or t_ns, t_ns)
                self._prev_raw = raw
                self._rejects_in_row = 0
                return math.nan
            return None
        self._rejects_in_row = 0
        if self._wrap_safe_ns and dt > self._wrap_safe_ns:
            self._event(
                "wrap-risk",
                f"{dt / _NS:.1f} s between reads exceeds the {self._wrap_safe_ns / _NS:.1f} s in "
                "which the counter can wrap at most once: interval not counted",
            )
            self._gap(self._prev_t or t_ns, t_ns)
            self._prev_raw = raw
            return math.nan
        if wrapped:
            self.wraps += 1
        self._cum += delta
        self.covered_ns += dt
        self._prev_raw = raw
        if not power <= self.peak_w:
            self.peak_w = power
        return power

    # ---------------------------------------------------------------- marks
    def mark(self, mark_id: int, t_ns: int) -> None:
        """Register a window edge at ``t_ns``; resolved now if already covered, else later."""
        last = self._prev_t
        if last is None or t_ns > last:
            self._pending.append((mark_id, t_ns))
        else:
            self.marks[mark_id] = self.energy_at(t_ns)

    def finish(self) -> None:
        """Resolve edges no sample came after (the channel stopped delivering) at the last value."""
        while self._pending:
            mark_id, _ = self._pending.popleft()
            self.marks[mark_id] = self._cum if self._prev_t is not None else 0.0

    def energy_at(self, t_ns: int) -> float:
        """Cumulative energy at ``t_ns`` by interpolation of the stored points."""
        return interpolate(self._t, self._e, self._cum, t_ns)

    # ---------------------------------------------------------------- analysis
    def covered_between(self, t0: int, t1: int) -> int:
        """Nanoseconds of ``[t0, t1]`` in which this channel's energy was measured."""
        return covered_ns(self.first_t, self._prev_t, self.gaps, t0, t1)

    def points(self) -> tuple[array, array, array]:
        """Copies of the stored (t_ns, cumulative J, W) arrays."""
        return array("q", self._t), array("d", self._e), array("d", self._p)
