"""A fake GPU's power trace and its exact energy integral, on integer ns and in mJ.

:class:`~bertwatt.testing.nvml.FakeGPU` keeps its own trace rather than
:class:`bertwatt.testing.traces.PowerTrace`, because its counter must behave like NVML's, an
integer of millijoules: the fake returns the integral floored to whole mJ, and tests compare that
with an exact rational result. ``PowerTrace`` integrates in float seconds and joules, so an
integral that is a whole number of mJ can come out a hair below it and floor to one mJ less.
Here constant and step traces are integrated with :class:`fractions.Fraction` on the fake clock's
integer nanoseconds, so the floor is exact. The rules differ on purpose too: steps start at
``t = 0.0`` (``PowerTrace`` extends its first value backwards); a callable's values are checked
(``ConfigError`` for negative or non-finite watts); and a callable is integrated with Simpson's
rule in steps of at most 10 ms (exact for polynomials up to degree 3, a tenth of the calls of
``PowerTrace``'s 1 ms midpoint steps), under a lock, because the sampler thread and a test may
read the counter at the same time.
"""

from __future__ import annotations

import bisect
import math
import numbers
import threading
from collections.abc import Callable, Sequence
from fractions import Fraction

from bertwatt.errors import ConfigError

__all__ = ["ExactTrace", "PowerTrace", "check_watts"]

_NS_PER_S = 1_000_000_000
_NS_PER_MS = 1_000_000  # W x ns / 1e6 = mJ
_SIMPSON_STEP_NS = 10_000_000  # 10 ms

#: What ``FakeGPU(power_w=...)`` accepts: watts, a callable ``t_s -> watts``, or
#: ``[(t_s, watts), ...]`` steps (a type alias, not the class in ``bertwatt.testing.traces``).
PowerTrace = float | Callable[[float], float] | Sequence[tuple[float, float]]


def check_watts(value: float, what: str) -> float:
    """``value`` as a float, finite and >= 0 (W, or J); else a ConfigError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{what} must be a number of watts, got {value!r}")
    watts = float(value)
    if not math.isfinite(watts) or watts < 0:
        raise ConfigError(f"{what} must be finite and >= 0 W, got {value!r}")
    return watts


class ExactTrace:
    """Power over the fake's elapsed time, and its integral since ``t = 0``.

    Args:
        power_w: a constant (W); a callable ``t_s -> watts``; or piecewise constant steps
            ``[(t_s, watts), ...]``, strictly increasing times, the first at 0.0.

    Raises:
        ConfigError: for a trace of another shape or with invalid watts or times.
    """

    def __init__(self, power_w: PowerTrace) -> None:
        self._lock = threading.Lock()
        self._constant_w: Fraction | None = None
        self._step_ns: list[int] = []
        self._step_w: list[Fraction] = []
        self._step_mj: list[Fraction] = []
        self._func: Callable[[float], float] | None = None
        self._func_last = (0, 0.0)  # (elapsed ns, mJ) of the last Simpson integration
        if callable(power_w):
            self._func = power_w
            return
        if isinstance(power_w, (int, float)) and not isinstance(power_w, bool):
            self._constant_w = Fraction(check_watts(power_w, "power_w"))
            return
        try:
            steps = [(float(t), w) for t, w in power_w]  # type: ignore[union-attr]
        except (TypeError, ValueError) as err:
            raise ConfigError(
                "power_w must be watts, a callable t_s -> watts, or [(t_s, watts), ...]; "
                f"got {power_w!r}"
            ) from err
        if not steps or steps[0][0] != 0.0:
            raise ConfigError("power_w steps must start at t_s = 0.0")
        cumulative = Fraction(0)
        for i, (t_s, watts) in enumerate(steps):
            if not math.isfinite(t_s) or (i and t_s <= steps[i - 1][0]):
                raise ConfigError(f"power_w step times must increase strictly, got {t_s!r}")
            t_ns = round(t_s * _NS_PER_S)
            w = Fraction(check_watts(watts, f"power_w step {i}"))
            if i:
                cumulative += self._step_w[-1] * (t_ns - self._step_ns[-1]) / _NS_PER_MS
            self._step_ns.append(t_ns)
            self._step_w.append(w)
            self._step_mj.append(cumulative)

    def power_w(self, elapsed_ns: int) -> float:
        """Watts at ``elapsed_ns`` (the first step's value before 0)."""
        if self._constant_w is not None:
            return float(self._constant_w)
        if self._func is not None:
            return self._call(elapsed_ns / _NS_PER_S)
        i = bisect.bisect_right(self._step_ns, elapsed_ns) - 1
        return float(self._step_w[max(i, 0)])

    def energy_mj(self, elapsed_ns: int) -> Fraction | float:
        """Energy from 0 to ``elapsed_ns`` (0 before it), mJ.

        Exact (a :class:`~fractions.Fraction`) for constant and step traces; a float from
        Simpson's rule for a callable, continued from the last query when time moved forward.
        """
        elapsed_ns = max(elapsed_ns, 0)
        if self._func is None:
            return self._static_mj(elapsed_ns)
        with self._lock:
            last_ns, last_mj = self._func_last
            if elapsed_ns < last_ns:
                last_ns, last_mj = 0, 0.0
            mj = last_mj + self._simpson_mj(last_ns, elapsed_ns)
            self._func_last = (elapsed_ns, mj)
        return mj

    def mean_w(self, a_ns: int, b_ns: int) -> float:
        """Mean power over ``[a_ns, b_ns]`` (W); before 0 the trace holds its value at 0.

        Used by the sensor models, whose windows lie in the past, so it keeps no state: exact for
        constant and step traces, Simpson's rule on the window itself for a callable.
        """
        if b_ns <= a_ns:
            return self.power_w(b_ns)
        before = max(0, min(b_ns, 0) - a_ns)
        head_mj = self.power_w(0) * before / _NS_PER_MS if before else 0.0
        lo, hi = max(a_ns, 0), max(b_ns, 0)
        if self._func is not None:
            body_mj = self._simpson_mj(lo, hi)
        else:
            body_mj = float(self._static_mj(hi) - self._static_mj(lo))
        return (head_mj + body_mj) * _NS_PER_MS / (b_ns - a_ns)

    def append_step(self, t_ns: int, watts: float) -> None:
        """Change a step trace's power to ``watts`` from ``t_ns`` on (at or after the last step).

        Lets a simulation drive the trace as it runs (a kernel starts, a kernel ends) while the
        integral stays exact. Readings already taken for times before ``t_ns`` stay valid.

        Raises:
            ConfigError: for a constant or callable trace, a time before the last step, or
                invalid watts.
        """
        if self._func is not None:
            raise ConfigError("append_step needs a step trace, not a callable power_w")
        w = Fraction(check_watts(watts, "watts"))
        with self._lock:
            if self._constant_w is not None:  # a constant is one step at 0
                self._step_ns, self._step_w, self._step_mj = [0], [self._constant_w], [Fraction(0)]
                self._constant_w = None
            last_ns = self._step_ns[-1]
            if t_ns < last_ns:
                raise ConfigError(
                    f"append_step at {t_ns / _NS_PER_S} s comes before the last step "
                    f"at {last_ns / _NS_PER_S} s"
                )
            cumulative = self._step_mj[-1] + self._step_w[-1] * (t_ns - last_ns) / _NS_PER_MS
            if t_ns == last_ns:
                self._step_w[-1] = w
            else:
                # _step_ns last: a reader without the lock bisects it, and then finds the rest.
                self._step_w.append(w)
                self._step_mj.append(cumulative)
                self._step_ns.append(t_ns)

    def _static_mj(self, elapsed_ns: int) -> Fraction:
        if self._constant_w is not None:
            return self._constant_w * elapsed_ns / _NS_PER_MS
        i = max(bisect.bisect_right(self._step_ns, elapsed_ns) - 1, 0)
        return self._step_mj[i] + self._step_w[i] * (elapsed_ns - self._step_ns[i]) / _NS_PER_MS

    def _call(self, t_s: float) -> float:
        assert self._func is not None
        return check_watts(self._func(t_s), f"power_w({t_s!r})")

    def _simpson_mj(self, a_ns: int, b_ns: int) -> float:
        if b_ns <= a_ns:
            return 0.0
        n = 2 * math.ceil((b_ns - a_ns) / (2 * _SIMPSON_STEP_NS))
        h_ns = (b_ns - a_ns) / n
        total = self._call(a_ns / _NS_PER_S) + self._call(b_ns / _NS_PER_S)
        for k in range(1, n):
            total += (4 if k % 2 else 2) * self._call((a_ns + k * h_ns) / _NS_PER_S)
        return total * h_ns / 3 / _NS_PER_MS
