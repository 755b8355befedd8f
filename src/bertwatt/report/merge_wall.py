"""The software-vs-wall comparison of a merged report, and a node's total with a wall meter.

A merge never carries ``report.wall`` over from its parts unchanged: parts cover different times
and nodes, so :func:`merged_wall` recomputes it from the merged channels (the union rule has
already counted every channel of every node once). Only nodes with a wall meter take part: a
node's components are compared with its own wall meter, never with another node's, and the
figures name the nodes left out. :func:`node_total` is the single-report total rule applied to
one node of a merge (components when there are any, the wall meter alone otherwise).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bertwatt.report.wall import WallChannel, WallReport, compare_wall, wall_energy

__all__ = ["merged_wall", "node_total"]


def _wall_channel(
    ch: Any, prefix: str, energy_j: float | None, coverage: float | None
) -> WallChannel:
    """The comparison's facts about a merged channel; names get ``prefix`` (``node/``)."""
    return WallChannel(
        name=prefix + ch.name,
        scope=ch.provenance.scope,
        counted=ch.counted,
        kind=ch.kind,
        parent=None if ch.parent is None else prefix + ch.parent,
        energy_j=energy_j,
        resolution_j=ch.provenance.resolution_j,
        coverage=coverage,
        update_period_s=ch.provenance.update_period_s,
    )


def node_total(
    channels: Iterable[Any], duration_s: float | None = None
) -> tuple[float | None, str, list[Any]]:
    """A node's total without double counting: (J, basis sentence, channels added).

    Uncounted channels never add; whole-system (wall) channels are never added to components:
    they form the node's total only when the node has no component channel.
    """
    chs = list(channels)
    measured = [c for c in chs if c.energy_j is not None]
    components = [c for c in measured if c.counted and c.provenance.scope != "system"]
    walls = [c for c in measured if c.provenance.scope == "system"]
    if components:
        names = ", ".join(sorted(c.name for c in components))
        basis = f"sum of {names}"
        wall_names = sorted(c.name for c in walls if c.counted)
        if wall_names:
            basis += (
                f"; wall meter {', '.join(wall_names)} compared apart (report.wall), never added"
            )
        return sum(c.energy_j for c in components), basis, components
    if not any(c.counted for c in walls):
        return None, "no counted channel was measured", []
    total, how, used = wall_energy(
        [_wall_channel(c, "", c.energy_j, c.coverage) for c in walls], duration_s
    )
    added = [c for c in walls if c.name in used]
    return total, f"wall meter only (no component sensor): {how}", added


def merged_wall(
    channels: Mapping[tuple[str, str], Any],
    phases: Mapping[str, Any],
    phase_durations_s: Mapping[str, float],
    duration_s: float,
) -> WallReport | None:
    """``report.wall`` of a merged report, from its merged channels and phases.

    ``channels``: merged channel reports by (node, channel name); ``phases``: merged phase
    reports by name (their ``channels`` keyed ``node/name`` when several nodes merged, else by
    name). None when no node has a wall meter.
    """
    nodes = sorted({node for node, _ in channels})
    multi = len(nodes) > 1
    with_wall = {
        node for (node, _), ch in channels.items() if ch.provenance.scope == "system" and ch.counted
    }
    if not with_wall:
        return None
    left_out = [n for n in nodes if n not in with_wall]

    run: list[WallChannel] = []
    per_phase: dict[str, list[WallChannel]] = {name: [] for name in phases}
    for (node, name), ch in sorted(channels.items()):
        if node not in with_wall:
            continue
        prefix = f"{node}/" if multi else ""
        run.append(_wall_channel(ch, prefix, ch.energy_j, ch.coverage))
        for pname, ph in phases.items():
            if prefix + name in ph.channels:
                e = ph.channels[prefix + name]
                per_phase[pname].append(_wall_channel(ch, prefix, e, None))
    report = compare_wall(
        run,
        {n: chs for n, chs in per_phase.items() if chs},
        run_duration_s=duration_s,
        phase_durations_s=phase_durations_s,
    )
    if report is None:
        return None
    note = ["merged: " + _nodes_note(with_wall, left_out)] if multi else []
    figures: Sequence[Any] = [report.run, *report.phases.values()]
    for fig in figures:
        fig.notes = [*note, *fig.notes]
    return report


def _nodes_note(with_wall: set[str], left_out: list[str]) -> str:
    text = f"compared on the node(s) with a wall meter: {', '.join(sorted(with_wall))}"
    if left_out:
        text += f"; left out (no wall meter): {', '.join(left_out)}"
    return text
