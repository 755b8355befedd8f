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
