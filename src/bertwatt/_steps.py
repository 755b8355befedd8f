"""Stepping sensors: a step clock, and the fit of a burst's polls to it (pure functions).

Used by :mod:`bertwatt.characterise` (the burst at start) and :mod:`bertwatt.timeline` (which
places a counter's readings at its steps). A poll that finds a value changed puts a step between
it and the poll before; :func:`fit_steps` fits a period and a phase to those bounds, and
:class:`StepClock` then says, for any later read, at which step the value it shows was taken.
:func:`classify_reading` tells an instant power reading from an averaged one by comparing its
swing with a counter's step-to-step swing over the same burst.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

__all__ = ["DRIFT_REL", "StepClock", "StepFit", "classify_reading", "fit_steps"]

#: Relative drift assumed between a sensor's own clock and the host's monotonic clock (100 ppm:
#: the tolerance of common quartz oscillators); a phase found at start loses precision this fast.
DRIFT_REL = 1e-4
#: A period within this share of the sensor model's, beyond the polls' precision, is the model's.
_SNAP_REL = 0.02
MIN_STEPS = 3
_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class StepClock:
    """When a stepping counter last moved, from a period and one step time found at start.

    Attributes:
        period_ns: the counter's update period.
        anchor_ns: the time of one step (monotonic ns).
        res_ns: half-width of the anchor's uncertainty.
        rate: growth of that uncertainty per ns away from the anchor (drift, period error).
    """

    period_ns: int
    anchor_ns: int
    res_ns: int
    rate: float

    def uncertainty_ns(self, t_ns: int) -> float:
        """How well the step times are known near ``t_ns`` (half-width, ns)."""
        return self.res_ns + self.rate * abs(t_ns - self.anchor_ns)

    def stamp(self, t_ns: int) -> int:
        """The time a reading taken at ``t_ns`` stands for: the counter's last step when it is
        known to a quarter period and the read is not within that uncertainty of a step, else
        half a period before the read (its expected age)."""
        period = self.period_ns
        u = self.uncertainty_ns(t_ns)
        if u < period / 4:
            step = self.anchor_ns + ((t_ns - self.anchor_ns) // period) * period
            if t_ns - step >= u and step + period - t_ns >= u:
                return step
        return t_ns - period // 2


@dataclass(frozen=True, slots=True)
class StepFit:
    """What a burst's polls say about a stepping value: the steps, or why they are not known."""

    clock: StepClock | None
    steps: int
    measured_period_s: float | None
    period_precision_s: float | None
    snapped: bool
    reason: str = ""


def fit_steps(
    t0_ns: Sequence[int],
    t1_ns: Sequence[int],
    values: Sequence[float],
    model_period_s: float | None = None,
    drift_rel: float = DRIFT_REL,
) -> StepFit:
    """Find a stepping value's period and phase from polls ``[t0, t1]`` and their values.

    A change between poll ``j`` and ``j + 1`` puts a step in ``(t0[j], t1[j + 1]]``. Needs at
    least three changes at regular gaps (two when their gap confirms the sensor model's period),
    with unchanged polls between (a value that changes at every poll moves at least as fast as it
    was polled, which says nothing more).
    """
    n = min(len(t0_ns), len(t1_ns), len(values))
    if n < 4:
        return StepFit(None, 0, None, None, False, f"too few polls ({n})")
    bounds = [(t0_ns[j], t1_ns[j + 1]) for j in range(n - 1) if values[j + 1] != values[j]]
    if len(bounds) >= n - 1:
        return StepFit(None, len(bounds), None, None, False, "it changed at every poll")
    if len(bounds) < 2:
        return StepFit(
            None, len(bounds), None, None, False, f"{len(bounds)} step(s) seen in the burst"
        )
    mids = [(a + b) / 2 for a, b in bounds]
    gaps = sorted(b - a for a, b in pairwise(mids))
    median = gaps[len(gaps) // 2]
    if median <= 0 or gaps[0] < 0.6 * median or gaps[-1] > 1.4 * median:
        return StepFit(None, len(bounds), None, None, False, "irregular steps")
    k = len(bounds) - 1
    measured = (mids[-1] - mids[0]) / k
    precision = ((bounds[0][1] - bounds[0][0]) + (bounds[-1][1] - bounds[-1][0])) / 2 / k
    snapped = False
    period = measured
    rate = drift_rel + precision / measured
    if model_period_s:
        model_ns = model_period_s * _NS
        if abs(measured - model_ns) <= precision + _SNAP_REL * model_ns:
            period, rate, snapped = model_ns, drift_rel, True
    if not snapped and len(bounds) < MIN_STEPS:
        return StepFit(
            None,
            len(bounds),
            measured / _NS,
            precision / _NS,
            False,
            f"{len(bounds)} steps seen in the burst, and no sensor model period they confirm "
            f"(needs {MIN_STEPS})",
        )
    # every step is anchor0 + i * period: intersect what each says about anchor0
    lo = max(a - i * period for i, (a, _) in enumerate(bounds))
    hi = min(b - i * period for i, (_, b) in enumerate(bounds))
    if lo > hi:
        if snapped:
            return StepFit(
                None, len(bounds), measured / _NS, precision / _NS, True, "steps off the period"
            )
        lo, hi = bounds[-1][0] - k * period, bounds[-1][1] - k * period
    anchor = (lo + hi) / 2 + k * period
    clock = StepClock(
        period_ns=round(period),
        anchor_ns=round(anchor),
        res_ns=math.ceil((hi - lo) / 2) + 1,
        rate=rate,
    )
    return StepFit(clock, len(bounds), measured / _NS, precision / _NS, snapped)


def classify_reading(
    counter_t_ns: Sequence[int],
    counter_j: Sequence[float],
    power_w: Sequence[float],
    period_ns: int,
) -> tuple[str, str]:
    """Instant or averaged: the power reading's swing against the counter's over one burst.

    ``counter_t_ns``/``counter_j``: the step times and counter values after each step; ``power_w``
    the power readings of the burst. Returns ``(verdict, detail)`` with verdict ``"instant"``,
    ``"averaged"`` or ``""`` (not resolved).
    """
    pw = [w for w in power_w if math.isfinite(w)]
    pairs = zip(counter_t_ns, counter_t_ns[1:], counter_j, counter_j[1:], strict=False)
    # consecutive steps one period apart: each increment is one period's energy
    step_w = [
        (b - a) / (period_ns / _NS)
        for ta, tb, a, b in pairs
        if 0.5 * period_ns <= tb - ta <= 1.5 * period_ns
    ]
    if len(step_w) < 2 or len(pw) < 4:
        return "", "too few whole counter steps or power readings in the burst"
    swing_c = max(step_w) - min(step_w)
    mean_c = sum(step_w) / len(step_w)
    if swing_c <= 0.1 * max(mean_c, 1e-9):
        return "", (
            f"the power was steady during the burst (counter steps {min(step_w):.4g}-"
            f"{max(step_w):.4g} W): nothing to tell an average from an instant reading"
        )
    ratio = (max(pw) - min(pw)) / swing_c
    detail = (
        f"the reading swung {max(pw) - min(pw):.4g} W while the counter's steps swung "
        f"{swing_c:.4g} W (ratio {ratio:.2f})"
    )
    if ratio >= 0.5:
        return "instant", detail
    if ratio <= 0.35:
        return "averaged", detail
    return "", detail
