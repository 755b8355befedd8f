"""Scripted power traces with exact energy integrals, shared by the fake sensors."""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import Union

from bertwatt.errors import ConfigError

__all__ = ["PowerTrace", "TraceLike"]

#: What fakes accept as a trace: constant watts, ``[(t_s, watts), ...]`` steps, or ``f(t_s)``.
TraceLike = Union[float, int, Sequence[tuple[float, float]], Callable[[float], float], "PowerTrace"]

_STEP_S = 1e-3


class PowerTrace:
    """Power as a function of time (seconds since the fake started), and its exact integral.

    - a number: constant power;
    - ``[(t_s, watts), ...]``: piecewise constant, each value holding from its time until the next
      (before the first time: the first value);
    - a callable ``f(t_s) -> watts``: integrated numerically (midpoint rule, 1 ms steps,
      incremental, so queries at increasing times cost O(new time)).
    """

    def __init__(self, trace: TraceLike) -> None:
        self._const: float | None = None
        self._steps: list[tuple[float, float]] | None = None
        self._times: list[float] = []
        self._cum: list[float] = []
        self._fn: Callable[[float], float] | None = None
        self._fn_t = 0.0
        self._fn_e = 0.0
        if isinstance(trace, PowerTrace):
            self.__dict__.update(trace.__dict__)
            return
        if isinstance(trace, bool):
            raise ConfigError(f"a power trace cannot be a bool: {trace!r}")
        if isinstance(trace, int | float):
            if not math.isfinite(trace) or trace < 0:
                raise ConfigError(f"constant power must be finite and >= 0 W, got {trace!r}")
            self._const = float(trace)
        elif callable(trace):
            self._fn = trace
        elif isinstance(trace, Sequence) and not isinstance(trace, str | bytes):
            steps: list[tuple[float, float]] = []
            for item in trace:
                try:
                    t, w = float(item[0]), float(item[1])
                except (TypeError, ValueError, IndexError) as err:
                    raise ConfigError(
                        f"trace steps must be (t_s, watts) pairs, got {item!r}"
                    ) from err
                if not (math.isfinite(t) and math.isfinite(w)) or w < 0:
                    raise ConfigError(f"trace step {item!r} must have finite t and watts >= 0")
                if not steps and t < 0:
                    raise ConfigError(f"trace step times start at 0 s or later, got {t!r}")
                if steps and t <= steps[-1][0]:
                    raise ConfigError("trace step times must be strictly increasing")
                steps.append((t, w))
            if not steps:
                raise ConfigError("a step trace needs at least one (t_s, watts) pair")
            self._steps = steps
            self._times = [t for t, _ in steps]
            cum = [0.0]
            for (t0, w0), (t1, _) in pairwise(steps):
                cum.append(cum[-1] + w0 * (t1 - t0))
            self._cum = cum
        else:
            raise ConfigError(f"cannot use {trace!r} as a power trace")

    def power_w(self, t_s: float) -> float:
        """Power at ``t_s`` seconds."""
        if self._const is not None:
            return self._const
        if self._steps is not None:
            i = bisect_right(self._times, t_s) - 1
            return self._steps[max(i, 0)][1]
        assert self._fn is not None
        return float(self._fn(t_s))

    def energy_j(self, t_s: float) -> float:
        """Energy from 0 to ``t_s`` seconds (exact for constant and step traces)."""
        if t_s <= 0:
            return 0.0
        if self._const is not None:
            return self._const * t_s
        if self._steps is not None:
            steps = self._steps
            if t_s <= steps[0][0]:
                return steps[0][1] * t_s
            i = bisect_right(self._times, t_s) - 1
            head = steps[0][1] * steps[0][0] if steps[0][0] > 0 else 0.0
            return head + self._cum[i] + steps[i][1] * (t_s - steps[i][0])
        assert self._fn is not None
        if t_s < self._fn_t:
            self._fn_t, self._fn_e = 0.0, 0.0
        fn, t, e = self._fn, self._fn_t, self._fn_e
        while t < t_s:
            h = min(_STEP_S, t_s - t)
            e += float(fn(t + h / 2)) * h
            t += h
        self._fn_t, self._fn_e = t, e
        return e
