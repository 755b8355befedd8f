"""Per-channel timelines: unwrapping, integration, validation, window edges and coverage.

Every channel, counter or power, becomes one cumulative-energy curve ``E(t)`` starting at 0 at its
first sample:

- **counter** channels add the difference between consecutive readings, corrected for
  wrap-around with ``Channel.wrap_j``. A reading that goes backwards without a plausible wrap is a
  counter reset: the interval is recorded as a gap and not summed.
- **power** channels are integrated by the trapezoid rule. An interval longer than the gap limit is
  a gap: it is not bridged by a guess, and it lowers the channel's coverage.

Readings that are NaN, negative (power), outside a wrapping counter's range, or imply more than the
channel's plausibility bound (``max_power_w``: the meter's setting, the backend's, or a default per
scope) are rejected and recorded, never summed. A counter difference that is still negative after
unwrapping is never energy. A counter whose sensor refreshes every ``update_period_s`` can show a
whole refresh's energy between two reads taken just before and just after the refresh, so its
plausibility check and its power figures (stored points, peak) spread each step over at least one
update period (from the previous change of the counter): a 1 s wall-meter counter read every
0.1 s shows its 95 W, not 0 W and then 950 W. A counter that does not move for longer than ten
of its sensor update periods (at least 2 s) is recorded as a suspected stuck sensor; its figure
is kept, and labelled.

The gap limit of a power channel is the larger of its base limit (from the sampling interval and
the sensor's update period) and three times its recent read cadence, so a backend that answers
every 2 s is integrated, not reported as all gaps; an interval with a failed or rejected read in
it is never bridged beyond the base limit.

Window edges ("marks") are resolved by linear interpolation of ``E(t)``, which for power channels
is exactly the trapezoid integral up to the mark. Stored points are thinned (every other point
dropped) when a timeline reaches its capacity, so memory stays bounded on runs of days; totals
and already-resolved marks are unaffected. Gaps are kept with prefix sums (coverage between two
times costs a binary search), the most recent ``_MAX_GAPS`` of them; each resolved mark stores its
energy and its covered time, so phases and windows are measured from marks alone and old marks
can be dropped (:meth:`ChannelTimeline.forget`).

This module is the sampler's hot path: no logging, no per-sample objects beyond array appends.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from bertwatt.backends.base import Channel
from bertwatt.report.snapshot import interpolate

if TYPE_CHECKING:
    from bertwatt._steps import StepClock
    from bertwatt.config import MeterConfig

__all__ = ["ChannelTimeline", "covered_ns", "interpolate", "timeline_for"]

_NS = 1e9
_MAX_EVENTS = 20
_REJECTS_BEFORE_REBASE = 3
#: Gaps kept for coverage queries; older ones are folded into one total.
_MAX_GAPS = 4096
#: Edges waiting for a later sample; past this, the oldest half is resolved at the last sample (a
#: channel that stopped delivering must not hold every later edge in memory).
_MAX_PENDING = 4096
#: Suspected stuck spans kept (more are counted).
_MAX_STUCK = 100
#: Recent read intervals from which a power channel's cadence is taken (a power of two).
_CADENCE_N = 8
#: A flat counter is suspect after this many sensor update periods, and never before 2 s.
_STUCK_PERIODS = 10
_STUCK_MIN_NS = 2_000_000_000
_STUCK_UNKNOWN_PERIOD_S = 0.5


def timeline_for(
    channel: Channel, cfg: MeterConfig, *, read_interval_s: float | None = None
) -> ChannelTimeline:
    """The timeline of ``channel`` under the meter's configuration ``cfg``.

    Base gap limit: five sampling intervals (``read_interval_s``, the channel's read cadence,
    default ``cfg.interval_s``) or five sensor update periods, at least 1 s (the timeline widens
    it to the channel's own read cadence as it learns it). Plausibility bound:
    :meth:`~bertwatt.config.MeterConfig.max_power_for`.
    """
    update = channel.provenance.update_period_s or 0.0
    every = cfg.interval_s if read_interval_s is None else read_interval_s
    gap_s = max(5 * every, 5 * update, 1.0)
    return ChannelTimeline(
        channel,
        capacity=cfg.timeline_points,
        gap_ns=int(gap_s * _NS),
        max_power_w=cfg.max_power_for(channel),
    )


def covered_ns(
    first: int | None, last: int | None, gaps: Sequence[tuple[int, int]], t0: int, t1: int
) -> int:
    """Nanoseconds of ``[t0, t1]`` inside ``[first, last]`` and outside every gap (a plain scan,
    for small gap lists; timelines answer the same question from prefix sums)."""
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
        gap_ns: for power channels, the base limit of an interval bridged by the trapezoid rule.
        max_power_w: plausibility bound in W (default: the channel's own, else none).
    """

    __slots__ = (
        "_attempt_dts",
        "_attempts",
        "_capacity",
        "_change_t",
        "_change_w",
        "_cum",
        "_e",
        "_flat_since",
        "_g0",
        "_g1",
        "_gap_dropped_ns",
        "_gap_ns",
        "_gcum",
        "_held",
        "_is_counter",
        "_last_attempt_t",
        "_last_msg",
        "_max_w",
        "_p",
        "_pending",
        "_prev_raw",
        "_prev_t",
        "_prev_w",
        "_rejects_in_row",
        "_steps",
        "_stuck_after_ns",
        "_suspect",
        "_t",
        "_trouble",
        "_upd_ns",
        "_wrap_safe_ns",
        "channel",
        "characterised",
        "covered_ns",
        "event_counts",
        "events",
        "failed_reads",
        "first_t",
        "gap_count",
        "mark_cov",
        "marks",
        "peak_w",
        "rejected",
        "samples",
        "stuck",
        "stuck_count",
        "wraps",
    )

    def __init__(
        self,
        channel: Channel,
        *,
        capacity: int = 8192,
        gap_ns: int = 1_000_000_000,
        max_power_w: float | None = None,
    ):
        self.channel = channel
        self._is_counter = channel.kind == "counter"
        self._capacity = max(8, capacity)
        self._gap_ns = gap_ns
        self._max_w = float(max_power_w or channel.max_power_w or 0.0)
        self._t = array("q")
        self._e = array("d")
        self._p = array("d")
        self._cum = 0.0
        self._prev_t: int | None = None
        self._prev_raw = math.nan
        self._prev_w = math.nan
        self._rejects_in_row = 0
        self._suspect: tuple[int, float] | None = None
        # counters: the sensor's refresh period, and the last time the counter moved (the power
        # of a step is spread over at least one refresh from there)
        upd_s = channel.provenance.update_period_s
        self._upd_ns = int(upd_s * _NS) if channel.kind == "counter" and upd_s else 0
        self._change_t = 0
        self._change_w = math.nan
        self._pending: deque[tuple[int, int]] = deque()
        self._last_msg = ""
        if channel.wrap_j and self._max_w:
            self._wrap_safe_ns = int(channel.wrap_j / self._max_w * _NS)
        else:
            self._wrap_safe_ns = 0
        # read cadence: the last few intervals between read attempts (ok or failed)
        self._attempt_dts = array("q", [0] * _CADENCE_N)
        self._attempts = 0
        self._last_attempt_t: int | None = None
        self._trouble = False  # a read failed or was rejected since the last accepted sample
        # gaps: sorted, disjoint; _gcum[i] = total gap length up to the end of gap i
        self._g0 = array("q")
        self._g1 = array("q")
        self._gcum = array("q")
        self._gap_dropped_ns = 0
        self.gap_count = 0
        # stuck-sensor detection (counters)
        update = channel.provenance.update_period_s or _STUCK_UNKNOWN_PERIOD_S
        self._stuck_after_ns = max(_STUCK_MIN_NS, int(_STUCK_PERIODS * update * _NS))
        self._flat_since: int | None = None
        self.stuck: list[tuple[int, int]] = []
        self.stuck_count = 0
        self.first_t: int | None = None
        self.samples = 0
        self.rejected = 0
        self.failed_reads = 0
        self.wraps = 0
        self.covered_ns = 0
        self.peak_w = math.nan
        self.marks: dict[int, float] = {}
        self.mark_cov: dict[int, int] = {}
        self.events: list[str] = []
        self.event_counts: dict[str, int] = {}
        # self-characterisation (bertwatt.characterise): edges held while it runs; a counter's
        # step clock places each reading at the counter's last step; what it found, as text
        self._held = False
        self._steps: StepClock | None = None
        self.characterised: dict[str, str] = {}

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
    def max_power_w(self) -> float | None:
        """The plausibility bound in force (W), or None when there is none."""
        return self._max_w or None

    @property
    def wrap_safe_s(self) -> float | None:
        """Longest interval between reads that cannot hide two wraps at ``max_power_w``."""
        return self._wrap_safe_ns / _NS if self._wrap_safe_ns else None

    @property
    def stuck_after_s(self) -> float:
        """How long a counter may stay flat before it is suspected stuck."""
        return self._stuck_after_ns / _NS

    @property
    def gaps(self) -> list[tuple[int, int]]:
        """The most recent gaps (at most ``_MAX_GAPS``), as ``(t0_ns, t1_ns)`` pairs."""
        return list(zip(self._g0, self._g1, strict=True))

    @property
    def resolved_below(self) -> int | None:
        """Every mark id below this one is resolved (None: every registered mark is)."""
        return self._pending[0][0] if self._pending else None

    # ---------------------------------------------------------------- recording
    def _event(self, kind: str, message: str) -> None:
        n = self.event_counts.get(kind, 0) + 1
        self.event_counts[kind] = n
        if n <= 3 and len(self.events) < _MAX_EVENTS:
            self.events.append(message)

    def _gap(self, t0: int, t1: int) -> None:
        if t1 <= t0:
            return
        g1 = self._g1
        if g1 and g1[-1] >= t0:
            if t1 > g1[-1]:
                self._gcum[-1] += t1 - g1[-1]
                g1[-1] = t1
            return
        if len(g1) >= _MAX_GAPS:
            half = _MAX_GAPS // 2
            self._gap_dropped_ns = self._gcum[half - 1]
            del self._g0[:half], self._g1[:half], self._gcum[:half]
        base = self._gcum[-1] if self._gcum else self._gap_dropped_ns
        self._g0.append(t0)
        g1.append(t1)
        self._gcum.append(base + (t1 - t0))
        self.gap_count += 1

    def _gapped_before(self, t_ns: int) -> int:
        """Total gap length before ``t_ns`` (exact for times after the dropped gaps)."""
        i = bisect_right(self._g0, t_ns)
        if i == 0:
            return self._gap_dropped_ns
        over = self._g1[i - 1] - t_ns
        return self._gcum[i - 1] - (over if over > 0 else 0)

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
        if self._held:
            return
        pending = self._pending
        while pending and pending[0][1] <= t:
            mark_id, tm = pending.popleft()
            if prev_t is None or t == prev_t:
                value = self._cum if prev_t is not None else 0.0
            else:
                frac = (tm - prev_t) / (t - prev_t)
                value = prev_cum + (self._cum - prev_cum) * max(0.0, frac)
            self.marks[mark_id] = value
            self.mark_cov[mark_id] = self.covered_to(tm)

    def _attempt(self, t_ns: int) -> None:
        last = self._last_attempt_t
        if last is not None and t_ns > last:
            self._attempt_dts[self._attempts & (_CADENCE_N - 1)] = t_ns - last
            self._attempts += 1
        if last is None or t_ns > last:
            self._last_attempt_t = t_ns

    def _gap_limit_ns(self) -> int:
        """The longest interval bridged now: the base limit or three read cadences."""
        if self._trouble or not self._attempts:
            return self._gap_ns
        n = min(self._attempts, _CADENCE_N)
        dts = sorted(self._attempt_dts[:n])
        return max(self._gap_ns, 3 * dts[n // 2])

    @property
    def in_trouble(self) -> bool:
        """True while the latest reading was rejected or failed (the sampler re-reads sooner)."""
        return self._trouble

    def fail(self, t_ns: int, message: str) -> None:
        """Record a read that returned no value (the sensor errored)."""
        self.failed_reads += 1
        self._trouble = True
        self._attempt(t_ns)
        if message != self._last_msg:
            self._last_msg = message
            self._event("read-failed", f"read failed at +{self._offset_s(t_ns):.3f} s: {message}")

    def _offset_s(self, t_ns: int) -> float:
        return 0.0 if self.first_t is None else (t_ns - self.first_t) / _NS

    def add(self, t_ns: int, value: float) -> None:
        """Add one reading: joules (raw counter) or watts, stamped with monotonic ``t_ns``."""
        self._attempt(t_ns)
        if value - value:  # NaN or infinite (x - x is 0.0 for every finite x)
            self.rejected += 1
            self._trouble = True
            self._event("rejected", f"rejected non-finite reading at +{self._offset_s(t_ns):.3f} s")
            return
        read_t = t_ns
        steps = self._steps
        if steps is not None:  # a counter reading shows the counter as of its last step
            t_ns = steps.stamp(t_ns)
        prev_t = self._prev_t
        if prev_t is None:
            self._first(t_ns, value)
            return
        dt = t_ns - prev_t
        if dt <= 0:
            if steps is not None:  # no new step: edges before this read are past the last one
                self._extrapolate(read_t)
            return
        prev_cum = self._cum
        if self._is_counter:
            accepted = self._add_counter(t_ns, dt, value)
        else:
            accepted = self._add_power(t_ns, dt, value)
        if accepted is None:
            self._trouble = True
            return
        self._trouble = False
        self.samples += 1
        self._append(t_ns, accepted)
        self._prev_t = t_ns
        if self._pending:
            self._resolve(t_ns, prev_t, prev_cum)
        if steps is not None:
            self._extrapolate(read_t)

    def _first(self, t_ns: int, value: float) -> None:
        if self.channel.kind == "counter":
            if self._counter_out_of_range(t_ns, value):
                return
            self._prev_raw = value
            w = math.nan
        else:
            if value < 0 or (self._max_w and value > self._max_w):
                self._reject_power(t_ns, value)
                return
            self._prev_w = value
            self.peak_w = value
            w = value
        self.first_t = t_ns
        self._change_t = t_ns
        self._prev_t = t_ns
        self.samples += 1
        self._append(t_ns, w)
        self._resolve(t_ns, None, 0.0)

    def _reject_power(self, t_ns: int, value: float) -> None:
        self.rejected += 1
        self._event(
            "rejected",
            f"rejected power reading {value:g} W at +{self._offset_s(t_ns):.3f} s "
            f"(outside 0..{self._max_w or math.inf:g} W)",
        )

    def _add_power(self, t_ns: int, dt: int, w: float) -> float | None:
        mx = self._max_w
        if w < 0 or (mx and w > mx):
            self._reject_power(t_ns, w)
            return None
        if dt > self._gap_ns and dt > self._gap_limit_ns():
            self._gap(self._prev_t or t_ns, t_ns)
            self._event(
                "gap",
                f"no reading for {dt / _NS:.3f} s before +{self._offset_s(t_ns):.3f} s: "
                "interval not integrated",
            )
        else:
            mean_w = w if self.channel.mean_since_last_read else 0.5 * (self._prev_w + w)
            self._cum += mean_w * (dt / _NS)
            self.covered_ns += dt
        self._prev_w = w
        if not w <= self.peak_w:
            self.peak_w = w
        return w

    def _counter_out_of_range(self, t_ns: int, raw: float) -> bool:
        """Reject a negative reading, or one past a wrapping counter's range."""
        wrap = self.channel.wrap_j
        if raw >= 0 and not (wrap and raw > wrap):
            return False
        self.rejected += 1
        rng = f"0..{wrap:.6g} J" if wrap else ">= 0 J"
        self._event(
            "rejected",
            f"rejected counter reading {raw:.6g} J outside the counter's range ({rng}) at "
            f"+{self._offset_s(t_ns):.3f} s",
        )
        return True

    def _rebase(self, t_ns: int, raw: float, kind: str, message: str) -> float:
        """Start again from ``raw``: the interval since the last accepted reading is a gap."""
        self._event(kind, message)
        self._gap(self._prev_t or t_ns, t_ns)
        self._prev_raw = raw
        self._change_t = t_ns
        self._change_w = math.nan
        self._flat_since = None
        return math.nan

    def _add_counter(self, t_ns: int, dt: int, raw: float) -> float | None:
        ch = self.channel
        wrap_j = ch.wrap_j
        if (raw < 0 or (wrap_j and raw > wrap_j)) and self._counter_out_of_range(t_ns, raw):
            return None
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
            self._flat_since = None
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
        if delta < 0 and ch.wrap_j:
            delta += ch.wrap_j
            wrapped = True
        if delta < 0:  # still negative after unwrapping: never energy
            self.rejected += 1
            return self._rebase(
                t_ns,
                raw,
                "negative",
                f"counter difference {delta:.6g} J is negative after unwrapping at "
                f"+{self._offset_s(t_ns):.3f} s: re-based there, interval not counted",
            )
        # a refresh can land just inside this read: the step holds up to dt + one period of energy
        power = delta / ((dt + self._upd_ns) / _NS)
        if self._max_w and power > self._max_w:
            self.rejected += 1
            self._rejects_in_row += 1
            self._event(
                "rejected",
                f"rejected counter jump of {delta:.6g} J in {dt / _NS:.4f} s "
                f"({power:.6g} W > {self._max_w:g} W) at +{self._offset_s(t_ns):.3f} s",
            )
            if self._rejects_in_row >= _REJECTS_BEFORE_REBASE:
                self._rejects_in_row = 0
                return self._rebase(
                    t_ns,
                    raw,
                    "reset",
                    f"counter re-based after {_REJECTS_BEFORE_REBASE} implausible readings: "
                    "interval not counted",
                )
            return None
        self._rejects_in_row = 0
        if self._wrap_safe_ns and dt > self._wrap_safe_ns:
            return self._rebase(
                t_ns,
                raw,
                "wrap-risk",
                f"{dt / _NS:.1f} s between reads exceeds the {self._wrap_safe_ns / _NS:.1f} s in "
                "which the counter can wrap at most once: interval not counted",
            )
        if wrapped:
            self.wraps += 1
        if delta == 0.0 or self._flat_since is not None:
            self._track_flat(t_ns, delta)
        self._cum += delta
        self.covered_ns += dt
        self._prev_raw = raw
        power = self._counter_power(t_ns, dt, delta)
        if not power <= self.peak_w and power == power:
            self.peak_w = power
        return power

    def _counter_power(self, t_ns: int, dt: int, delta: float) -> float:
        """The power a counter step stands for: over the read interval for a counter with no
        known refresh period; else over the time since the counter last moved, at least one
        refresh period (held at the last step's figure while the counter has not moved)."""
        if not self._upd_ns:
            return delta / (dt / _NS)
        if delta <= 0.0:
            return self._change_w
        since = max(t_ns - self._change_t, self._upd_ns)
        self._change_t = t_ns
        self._change_w = delta / (since / _NS)
        return self._change_w

    # ---------------------------------------------------------------- stuck sensors
    def _track_flat(self, t_ns: int, delta: float) -> None:
        if delta == 0.0:
            if self._flat_since is None:
                self._flat_since = self._prev_t
            return
        since = self._flat_since
        if since is not None:
            self._flat_since = None
            self._flat_ended(since, self._prev_t or t_ns)

    def _flat_ended(self, since: int, until: int) -> None:
        if until - since < self._stuck_after_ns:
            return
        self.stuck_count += 1
        if len(self.stuck) < _MAX_STUCK:
            self.stuck.append((since, until))
        self._event(
            "stuck",
            f"counter did not move for {(until - since) / _NS:.1f} s from "
            f"+{self._offset_s(since):.3f} s (more than {self._stuck_after_ns / _NS:g} s, "
            f"{_STUCK_PERIODS} sensor update periods): stuck sensor suspected",
        )

    def stuck_spans(self) -> list[tuple[int, int]]:
        """Spans in which the counter did not move although it should have, including one still
        going on at the latest sample."""
        spans = list(self.stuck)
        since, last = self._flat_since, self._prev_t
        if since is not None and last is not None and last - since >= self._stuck_after_ns:
            spans.append((since, last))
        return spans

    # ---------------------------------------------------------------- marks
    def mark(self, mark_id: int, t_ns: int) -> None:
        """Register a window edge at ``t_ns``; resolved now if already covered, else later."""
        last = self._prev_t
        if last is None or t_ns > last or self._held:
            self._pending.append((mark_id, t_ns))
            if len(self._pending) > _MAX_PENDING:
                self._resolve_stale(_MAX_PENDING // 2)
        else:
            self.marks[mark_id] = self.energy_at(t_ns)
            self.mark_cov[mark_id] = self.covered_to(t_ns)

    def _resolve_stale(self, n: int) -> None:
        """Resolve the ``n`` oldest pending edges at the latest sample (the channel is silent)."""
        cov = self.covered_to(self._prev_t) if self._prev_t is not None else 0
        value = self._cum if self._prev_t is not None else 0.0
        for _ in range(min(n, len(self._pending))):
            mark_id, _t = self._pending.popleft()
            self.marks[mark_id] = value
            self.mark_cov[mark_id] = cov
        self._event(
            "stale-edges",
            f"{_MAX_PENDING} window edges waited for a sample after the last one "
            f"(+{self._offset_s(self._prev_t or 0):.3f} s): the oldest were resolved at it",
        )

    def finish(self) -> None:
        """Resolve edges no sample came after (the channel stopped delivering) at the last value.

        With a step clock, an edge less than two counter periods after the last step is
        extrapolated from that step at the power of the last read interval, as edges are when
        they are read (the counter holds the energy up to its last step only).
        """
        if self._held:
            self.release_marks()
        if self._steps is not None:
            self._extrapolate(None)
        cov = self.covered_to(self._prev_t) if self._prev_t is not None else 0
        while self._pending:
            mark_id, _ = self._pending.popleft()
            self.marks[mark_id] = self._cum if self._prev_t is not None else 0.0
            self.mark_cov[mark_id] = cov
        since, last = self._flat_since, self._prev_t
        if since is not None and last is not None:
            self._flat_since = None
            self._flat_ended(since, last)

    # ---------------------------------------------------------------- self-characterisation
    @property
    def step_clock(self) -> StepClock | None:
        """The counter's step clock, once self-characterisation installed one."""
        return self._steps

    def hold_marks(self) -> None:
        """Keep every edge pending until :meth:`release_marks` (a characterisation burst runs)."""
        self._held = True

    def release_marks(self, steps: StepClock | None = None) -> bool:
        """End the hold and resolve the held edges the stored points reach.

        With ``steps`` (a counter's :class:`~bertwatt.characterise.StepClock`), the stored
        readings are first re-placed at the counter's steps and every later reading is placed
        the same way. Refused (False) for a power channel, after a gap, a rejected reading or
        a reset, or when the step clock contradicts the readings (two readings placed at the
        same step with different values).
        """
        ok = steps is not None and self._restamp(steps)
        self._held = False
        last = self._prev_t
        pending = self._pending
        while pending and last is not None and pending[0][1] <= last:
            mark_id, tm = pending.popleft()
            self.marks[mark_id] = self.energy_at(tm)
            self.mark_cov[mark_id] = self.covered_to(tm)
        return ok

    def _restamp(self, steps: StepClock) -> bool:
        if (
            self.channel.kind != "counter"
            or not self._t
            or self.gap_count
            or self.rejected
            or self._suspect is not None
            or len(self._t) >= self._capacity
        ):
            return False
        new_t: list[int] = []
        new_e: list[float] = []
        new_p: list[float] = []
        for t, e, p in zip(self._t, self._e, self._p, strict=True):
            s = steps.stamp(t)
            if new_t and s <= new_t[-1]:
                if e != new_e[-1]:
                    return False  # the readings disagree with the steps
                continue
            new_t.append(s)
            new_e.append(e)
            new_p.append(p)
        self._t = array("q", new_t)
        self._e = array("d", new_e)
        self._p = array("d", new_p)
        self.first_t = new_t[0]
        self._prev_t = new_t[-1]
        self.covered_ns = new_t[-1] - new_t[0]
        change = new_t[0]
        for i in range(1, len(new_t)):
            if new_e[i] != new_e[i - 1]:
                change = new_t[i]
        self._change_t = change
        self._flat_since = None
        self._steps = steps
        if not self._upd_ns:  # a step's energy spans at least one period (plausibility, power)
            self._upd_ns = steps.period_ns
        return True

    def _extrapolate(self, read_ns: int | None) -> None:
        """Resolve the edges a read at ``read_ns`` came after (None: every edge) that lie past
        the counter's last step, by less than two periods, at the power of the last stored
        interval of at least one period: the counter holds the energy up to its last step
        only."""
        assert self._steps is not None
        last = self._prev_t
        t, e = self._t, self._e
        if self._held or last is None or len(t) < 2 or t[-1] != last:
            return
        # the power of the last interval of at least one period: a shorter one may hold a
        # whole step's energy (two reads either side of a step) and says little of the power
        period = self._steps.period_ns
        j = len(t) - 2
        while j > 0 and t[-1] - t[j] < period:
            j -= 1
        rate = (e[-1] - e[j]) / (t[-1] - t[j]) if t[-1] > t[j] else 0.0
        limit = last + 2 * period
        if read_ns is not None:
            limit = min(limit, read_ns)
        cov = self.covered_to(last)
        pending = self._pending
        while pending and pending[0][1] <= limit:
            mark_id, tm = pending.popleft()
            extra = max(0, tm - last)
            self.marks[mark_id] = self._cum + rate * extra
            self.mark_cov[mark_id] = cov + extra

    def forget(self, mark_ids: Iterable[int]) -> None:
        """Drop resolved marks nobody needs any more (bounded memory on long runs)."""
        marks, cov = self.marks, self.mark_cov
        for k in mark_ids:
            marks.pop(k, None)
            cov.pop(k, None)

    def energy_at(self, t_ns: int) -> float:
        """Cumulative energy at ``t_ns`` by interpolation of the stored points."""
        return interpolate(self._t, self._e, self._cum, t_ns)

    # ---------------------------------------------------------------- analysis
    def covered_to(self, t_ns: int) -> int:
        """Nanoseconds measured from the first sample up to ``t_ns`` (gaps excluded)."""
        first, last = self.first_t, self._prev_t
        if first is None or last is None or t_ns <= first:
            return 0
        t = t_ns if t_ns < last else last
        return max(0, (t - first) - self._gapped_before(t))

    def covered_between(self, t0: int, t1: int) -> int:
        """Nanoseconds of ``[t0, t1]`` in which this channel's energy was measured."""
        if t1 <= t0:
            return 0
        return max(0, self.covered_to(t1) - self.covered_to(t0))

    def points(self) -> tuple[array, array, array]:
        """Copies of the stored (t_ns, cumulative J, W) arrays."""
        return array("q", self._t), array("d", self._e), array("d", self._p)
