"""Software sensors against the wall: what the component channels see of what the machine draws.

A wall meter (``wall:<device>`` channels, scope ``system``) sees the whole machine: PSU losses,
fans, memory, disks, NICs, the motherboard, and the GPUs and CPUs the software sensors measure.
The component channels (NVML, RAPL, estimates) see only their parts. For the run and for every
phase, :func:`compare_wall` gives:

- ``component_j``: the component total (counted channels that are not whole-system), as in
  ``report.energy_j``;
- ``wall_j``: the wall meters' energy (several meters, e.g. one per PSU, are summed);
- ``ratio``: ``wall_j / component_j`` (1.3 means the wall drew 30 % more than the sensors saw);
- ``unseen_j``: ``wall_j - component_j``, the energy no software sensor accounts for.

Which wall figure: a meter's energy counter is preferred; when it moved fewer than
:data:`MIN_COUNTER_STEPS` steps of its resolution over the window (Tasmota counts whole Wh by
default, so 3.6 kJ steps), refreshed fewer than :data:`MIN_COUNTER_UPDATES` times in it (a counter
read between refreshes lags by up to one refresh at each edge), or covered less of the window than
the meter's power readings did (a device reboot resets its counter), the integrated power channel
beside it (``wall:<device>:power``) is used instead. ``wall_basis`` says which, and why.

Pure: plain inputs in, a pydantic model out; no sensor, sampler or meter is imported here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "MIN_COUNTER_STEPS",
    "MIN_COUNTER_UPDATES",
    "WallChannel",
    "WallFigures",
    "WallReport",
    "compare_wall",
    "component_energy",
    "wall_energy",
]

#: A counter difference of fewer steps than this has a quantisation error above 1/20 = 5 %.
MIN_COUNTER_STEPS = 20

#: A counter read between refreshes lags by up to one refresh period at each window edge, so a
#: window shorter than this many refresh periods could be off by more than 2 / 100 = 2 %.
MIN_COUNTER_UPDATES = 100

#: A counter that covered this much less of the window than the power beside it lost readings.
_COVERAGE_SLACK = 0.02


@dataclass(frozen=True, slots=True)
class WallChannel:
    """One channel's energy over a window, with the facts the comparison needs.

    Attributes:
        name: channel name (``wall:plug``, ``gpu:0``, ...).
        scope: the channel's scope; ``"system"`` marks a wall meter.
        counted: whether the channel adds into totals.
        kind: ``"counter"`` or ``"power"``.
        parent: the channel this one is a part or a fallback of.
        energy_j: energy over the window, None when the channel gave no reading.
        resolution_j: a counter's step in J, when known.
        coverage: share of the window the channel covered (0..1), when known.
        update_period_s: how often the device refreshes the value, when known.
    """

    name: str
    scope: str
    counted: bool
    kind: str
    parent: str | None = None
    energy_j: float | None = None
    resolution_j: float | None = None
    coverage: float | None = None
    update_period_s: float | None = None

    @property
    def is_wall(self) -> bool:
        """True for whole-machine (wall) channels."""
        return self.scope == "system"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WallFigures(_Model):
    """Component and wall energy over one window (the run, or one phase)."""

    component_j: float | None = Field(description="component total; None without components")
    wall_j: float | None = Field(description="wall meter energy; None when it gave no reading")
    ratio: float | None = Field(description="wall_j / component_j")
    unseen_j: float | None = Field(description="wall_j - component_j: not seen by any sensor")
    wall_basis: str = Field(description="which wall reading was used, and why")
    wall_channels: list[str] = Field(default_factory=list)
    component_channels: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class WallReport(_Model):
    """The software-vs-wall comparison of a report: the run and each phase."""

    run: WallFigures
    phases: dict[str, WallFigures] = Field(default_factory=dict)


def component_energy(channels: Sequence[WallChannel]) -> tuple[float | None, list[str]]:
    """Sum of counted, non-wall channels that have a reading; (None, []) when there are none."""
    used = [c for c in channels if c.counted and not c.is_wall and c.energy_j is not None]
    if not used:
        return None, []
    return sum(c.energy_j for c in used if c.energy_j is not None), sorted(c.name for c in used)


def wall_energy(
    channels: Sequence[WallChannel], duration_s: float | None = None
) -> tuple[float | None, str, list[str]]:
    """The wall meters' energy, the sentence saying how it was formed, and the channels used.

    ``duration_s`` (the window's length) lets a counter that refreshes too rarely for the window
    (fewer than :data:`MIN_COUNTER_UPDATES` refreshes) give way to the power readings.
    """
    walls = [c for c in channels if c.is_wall]
    primaries = [c for c in walls if c.counted]
    if not primaries:
        return None, "no wall meter", []
    fallbacks = {c.parent: c for c in walls if not c.counted and c.parent and c.kind == "power"}
    total = 0.0
    parts: list[str] = []
    used: list[str] = []
    for p in sorted(primaries, key=lambda c: c.name):
        fb = fallbacks.get(p.name)
        choice, why = p, ""
        if p.kind == "counter" and fb is not None and fb.energy_j is not None:
            if p.energy_j is None:
                choice, why = fb, f"{p.name} gave no counter reading"
            elif p.resolution_j and p.energy_j < MIN_COUNTER_STEPS * p.resolution_j:
                steps = p.energy_j / p.resolution_j
                choice = fb
                why = (
                    f"{p.name}'s counter moved {steps:.3g} step(s) of {p.resolution_j:g} J, fewer "
                    f"than {MIN_COUNTER_STEPS}: too coarse for this window"
                )
            elif (
                duration_s is not None
                and p.update_period_s
                and duration_s < MIN_COUNTER_UPDATES * p.update_period_s
            ):
                choice = fb
                why = (
                    f"{p.name}'s counter refreshes every {p.update_period_s:g} s, too rarely for "
                    f"a {duration_s:.3g} s window (fewer than {MIN_COUNTER_UPDATES} updates)"
                )
            elif (
                p.coverage is not None
                and fb.coverage is not None
                and p.coverage < fb.coverage - _COVERAGE_SLACK
            ):
                choice = fb
                why = (
                    f"{p.name}'s counter covered {p.coverage:.0%} of the window against "
                    f"{fb.coverage:.0%} for its power readings (a counter reset or lost readings)"
                )
        if choice.energy_j is None:
            parts.append(f"{p.name} gave no reading")
            continue
        total += choice.energy_j
        used.append(choice.name)
        if choice is fb:
            parts.append(f"integrated power {fb.name} ({why})")
        elif p.kind == "counter":
            parts.append(f"energy counter {p.name}")
        else:
            parts.append(f"integrated power {p.name}")
    if not used:
        return None, "; ".join(parts), []
    return total, "; ".join(parts), used


def _figures(channels: Sequence[WallChannel], duration_s: float | None) -> WallFigures:
    comp, comp_names = component_energy(channels)
    wall, basis, wall_names = wall_energy(channels, duration_s)
    ratio = unseen = None
    notes: list[str] = []
    if comp is not None and wall is not None:
        unseen = wall - comp
        ratio = wall / comp if comp > 0 else None
        if unseen < 0:
            notes.append(
                "the wall meter saw less than the component sensors: a component figure is too "
                "high (an estimate?) or the meter does not power this machine alone"
            )
    elif comp is None:
        notes.append("no component sensor was measured: nothing to compare the wall with")
    return WallFigures(
        component_j=comp,
        wall_j=wall,
        ratio=ratio,
        unseen_j=unseen,
        wall_basis=basis,
        wall_channels=wall_names,
        component_channels=comp_names,
        notes=notes,
    )


def compare_wall(
    run: Sequence[WallChannel],
    phases: Mapping[str, Sequence[WallChannel]] | None = None,
    *,
    run_duration_s: float | None = None,
    phase_durations_s: Mapping[str, float] | None = None,
) -> WallReport | None:
    """The comparison for the run and each phase; None when no wall meter is among the channels.

    Durations (s) are optional; with them, a counter refreshed too rarely for a window gives way
    to the power readings in that window.
    """
    if not any(c.is_wall and c.counted for c in run):
        return None
    durations = phase_durations_s or {}
    return WallReport(
        run=_figures(run, run_duration_s),
        phases={name: _figures(chs, durations.get(name)) for name, chs in (phases or {}).items()},
    )
