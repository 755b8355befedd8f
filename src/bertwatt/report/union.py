"""Energy over the union of the times several reports covered (the core of a truthful merge).

A *piece* is one channel of one report over some wall-clock intervals (the report's window, or
the intervals of one of its phases), with the exact energy the report gives for them and the
channel's cumulative-energy timeline. :func:`union_energy` adds pieces so that time covered by
several pieces counts once:

- a piece that shares no time with another adds its exact energy;
- where pieces overlap, time is cut at every piece boundary, and each slice takes the energy of
  the best piece covering it (highest coverage, then longest, then first given) from that piece's
  cumulative timeline. A piece chosen for all of its time telescopes back to its exact energy.

Times are POSIX seconds (UTC wall clock). Pure functions: nothing here reads a sensor.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

__all__ = ["Curve", "Piece", "Union", "merge_intervals", "union_energy"]


@dataclass
class Curve:
    """A channel's cumulative energy against absolute time, from its stored timeline.

    ``start`` is the report's start (POSIX s), ``duration_s`` its window, ``energy_j`` the
    channel's exact total; the curve runs from 0 J at ``start`` to ``energy_j`` at the end,
    monotone, interpolated linearly between stored points.
    """

    start: float
    duration_s: float
    energy_j: float
    points: Sequence[tuple[Any, ...]] = ()
    _xs: list[float] = field(default_factory=list, init=False, repr=False)
    _ys: list[float] = field(default_factory=list, init=False, repr=False)

    def _build(self) -> None:
        end, total = self.duration_s, self.energy_j
        inside = [p for p in self.points if 0.0 < p[0] < end]
        xs = [0.0, *(float(p[0]) for p in inside), max(end, 0.0)]
        ys = [0.0, *accumulate((float(p[1]) for p in inside), max), total]
        if len(ys) > 2 and ys[-2] > total:
            ys = [min(y, total) for y in ys]
        self._xs, self._ys = xs, ys

    def at(self, t: float) -> float:
        """Cumulative energy (J) from the report's start to absolute time ``t``."""
        if not self._xs:
            self._build()
        xs, ys = self._xs, self._ys
        x = t - self.start
        if x <= 0.0:
            return 0.0
        if x >= xs[-1]:
            return ys[-1]
        i = bisect_right(xs, x)
        x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
        return y0 if x1 <= x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)

    def points_between(self, a: float, b: float) -> tuple[list[float], list[float]]:
        """Stored points strictly inside ``(a, b)``: (absolute times, cumulative J)."""
        if not self._xs:
            self._build()
        lo = bisect_right(self._xs, a - self.start)
        hi = bisect_left(self._xs, b - self.start, lo)
        return [x + self.start for x in self._xs[lo:hi]], self._ys[lo:hi]


@dataclass
class Piece:
    """One channel of one report over ``intervals`` (absolute POSIX s), with its exact energy."""

    key: int
    intervals: list[tuple[float, float]]
    energy_j: float
    coverage: float
    curve: Curve

    @property
    def span_s(self) -> float:
        """Seconds covered by the intervals."""
        return sum(max(0.0, b - a) for a, b in self.intervals)


@dataclass
class Union:
    """What :func:`union_energy` found."""

    energy_j: float
    covered_s: float = 0.0
    measured_s: float = 0.0
    overlap_s: float = 0.0
    used_j: dict[int, float] = field(default_factory=dict)
    slices: list[tuple[float, float, int]] = field(default_factory=list)


def merge_intervals(intervals: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The union of ``intervals`` as sorted disjoint intervals (touching ones stay apart)."""
    out: list[tuple[float, float]] = []
    for a, b in sorted(intervals):
        if out and a < out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def _slices(pieces: Sequence[Piece]) -> list[tuple[float, float, tuple[int, ...]]]:
    """Elementary (a, b, active piece indexes) between consecutive interval boundaries."""
    events: list[tuple[float, int, int]] = []
    for i, p in enumerate(pieces):
        for a, b in p.intervals:
            if b > a:
                events.append((a, 1, i))
                events.append((b, -1, i))
    events.sort()
    active: dict[int, int] = {}
    out: list[tuple[float, float, tuple[int, ...]]] = []
    prev = None
    for t, kind, i in events:
        if prev is not None and t > prev and active:
            out.append((prev, t, tuple(active)))
        if kind > 0:
            active[i] = active.get(i, 0) + 1
        else:
            active[i] -= 1
            if not active[i]:
                del active[i]
        prev = t
    return out


def _rank(p: Piece, i: int) -> tuple[float, float, int]:
    return (p.coverage, p.span_s, -i)


def union_energy(pieces: Sequence[Piece]) -> Union:
    """Energy of ``pieces`` with time covered by several of them counted once."""
    slices = _slices(pieces)
    shared: set[int] = set()
    for _, _, act in slices:
        if len(act) > 1:
            shared.update(act)
    result = Union(energy_j=0.0)
    for i, p in enumerate(pieces):
        if i not in shared:
            result.energy_j += p.energy_j
            result.used_j[p.key] = result.used_j.get(p.key, 0.0) + p.energy_j
    for a, b, act in slices:
        length = b - a
        result.covered_s += length
        best = max(act, key=lambda j: _rank(pieces[j], j))
        result.measured_s += length * pieces[best].coverage
        result.slices.append((a, b, pieces[best].key))
        if len(act) > 1:
            result.overlap_s += length
        if best in shared:
            e = pieces[best].curve.at(b) - pieces[best].curve.at(a)
            result.energy_j += e
            key = pieces[best].key
            result.used_j[key] = result.used_j.get(key, 0.0) + e
    return result
