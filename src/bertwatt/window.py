"""One measurement window's state, and how channel energies add up without double counting.

Kept apart from :mod:`bertwatt.meter` so that report building reads a window without importing
the meter (imports run one way: meter -> window <- report).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from bertwatt.backends.base import Channel, Unavailable
from bertwatt.clock import Clock
from bertwatt.config import MeterConfig
from bertwatt.sampler import BackendGroup, Sampler
from bertwatt.timeline import ChannelTimeline

__all__ = ["Phase", "Window", "WindowEnergy", "total_of"]


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
    intervals: list[tuple[int, int]] = field(default_factory=list)
    open_mark: int | None = None


@dataclass
class Window:
    """Everything one start()/stop() cycle measured; read by report building."""

    config: MeterConfig
    clock: Clock
    groups: tuple[BackendGroup, ...]
    timelines: tuple[ChannelTimeline, ...]
    unavailable: list[Unavailable]
    sampler: Sampler
    start_wall_ns: int
    marks: list[int] = field(default_factory=list)
    phases: dict[str, Phase] = field(default_factory=dict)
    start_mark: int = 0
    end_mark: int | None = None
    baseline_marks: tuple[int, int] | None = None
    warnings: list[str] = field(default_factory=list)
    stopped: bool = False

    def frozen(self) -> Window:
        """A copy whose marks, phases and warnings no longer change (timelines are shared)."""
        return replace(
            self,
            marks=list(self.marks),
            phases={k: Phase(list(v.intervals), v.open_mark) for k, v in self.phases.items()},
            warnings=list(self.warnings),
        )


def total_of(values: dict[Channel, float]) -> tuple[float | None, str]:
    """Sum channel energies without double counting; returns (total, basis sentence).

    Channels marked ``counted=False`` (RAPL sub-zones, psys) never add. If a counted channel covers
    the whole ``system`` (a wall plug), it is the total and component channels are shown beside it.
    """
    counted = {c: v for c, v in values.items() if c.counted}
    if not counted:
        return None, "no counted channel was measured"
    system = {c: v for c, v in counted.items() if c.provenance.scope == "system"}
    if system:
        names = ", ".join(sorted(c.name for c in system))
        return sum(system.values()), f"whole-system channel(s) {names}; components shown apart"
    names = ", ".join(sorted(c.name for c in counted))
    return sum(counted.values()), f"sum of {names}"
