"""Merging reports truthfully: :func:`merge_reports` (reports in memory) and :func:`merge_paths`
(files and directories, the core of ``bertwatt merge``).

Rules (docs/report-format.md has worked examples):

- **Copies of one run count once.** Reports sharing a ``run_id`` are copies of one meter window
  (checkpoints and the final report): the newest is kept. A report whose run another report
  includes (a resumed run's ``segments``, a merge output's ``merged_run_ids``) is dropped.
- **One channel of one node** (key: node identity, channel name) seen by several reports counts
  the energy over the union of the times they covered: overlap once, sequential parts added
  (:mod:`bertwatt.report.union`); coverage is recomputed over the merged window.
- **Different nodes add**; within a node the total follows the single-report rule (uncounted
  channels never add; a wall meter is compared apart, never added, and is the node's total only
  without component channels: :mod:`bertwatt.report.merge_wall`, which also recomputes
  ``report.wall`` from the merged channels).
- **Phases merge by name** with the same union rule, per channel.
- **Carbon is kept per part** (:mod:`bertwatt.report.merge_work`), and fine-tuning / inference
  work adds with its ratios recomputed.
- **One UTC wall clock**: every offset in the merged report counts from its ``started_at``.
- **Refused** (one :class:`~bertwatt.errors.ReportError` naming the files): different or future
  schema versions, impossible figures (NaN, infinite, negative), two copies of one run whose
  clocks disagree by more than the window. **Warned** (in ``warnings``): different sampling
  intervals, duplicates and older copies dropped, reports of different nodes that do not
  overlap in time, a wall clock that moved during a window.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bertwatt.errors import ReportError
from bertwatt.report.merge_parts import (
    Part,
    check_parts,
    clock_notes,
    drop_copies,
    make_parts,
    posix_s,
    utc,
)
from bertwatt.report.merge_wall import merged_wall, node_total
from bertwatt.report.union import Curve, Piece, Union, merge_intervals, union_energy

if TYPE_CHECKING:
    from bertwatt.report.models import ChannelReport, EnergyReport, PhaseReport

# Part and the checks of parts live in bertwatt.report.merge_parts; Part is re-exported here.
__all__ = [
    "MergeResult",
    "Part",
    "merge_paths",
    "merge_reports",
]

#: Stored points per merged channel timeline, and in the merged total timeline.
CHANNEL_POINTS = 500
TOTAL_POINTS = 1000
#: Phase intervals listed in a merged report (count and duration always cover all of them).
PHASE_INTERVALS = 10_000


# ------------------------------------------------------------------------------- channels
def channel_node(part: Part, ch: ChannelReport) -> str:
    """The node a channel belongs to: its own node_id, else its host, else the report's node."""
    return ch.node_id or ch.host or part.node


def per_process(ch: ChannelReport) -> bool:
    """True for a channel that measures one process, not a device: a CPU estimate attributed to
    "this process" (its utilisation). Two processes' copies add; they are not one sensor."""
    prov = ch.provenance
    if prov.kind != "estimated":
        return False
    model = prov.assumptions.get("power_model", "") + prov.assumptions.get("utilisation", "")
    return "this process" in model


def process_label(report: Any) -> str:
    """Which process a report measured: its rank in a distributed job, else its pid, else its
    run id (names a per-process channel in a merge: ``cpu:estimate@rank1``)."""
    rank = (report.extra.get("distributed") or {}).get("rank")
    if isinstance(rank, int) and not isinstance(rank, bool):
        return f"rank{rank}"
    if report.host.pid is not None:
        return f"pid{report.host.pid}"
    return report.run_id[:8]


def merged_name(part: Part, ch: ChannelReport) -> str:
    """The channel's name in the merged report (per-process channels carry their process)."""
    if not per_process(ch):
        return ch.name
    suffix = f"@{process_label(part.report)}"
    return ch.name if ch.name.endswith(suffix) else ch.name + suffix


def channel_groups(parts: Sequence[Part]) -> dict[tuple[str, str], list[tuple[Part, Any]]]:
    """(node, merged channel name) -> [(part, channel)], in the order given."""
    groups: dict[tuple[str, str], list[tuple[Part, Any]]] = {}
    for p in parts:
        for ch in p.report.channels:
            groups.setdefault((channel_node(p, ch), merged_name(p, ch)), []).append((p, ch))
    return groups


def channel_curve(part: Part, ch: ChannelReport) -> Curve:
    """The channel's cumulative energy on the UTC clock (one per channel, reused by phases)."""
    cached = part.curves.get(ch.name)
    if cached is None:
        energy = float(ch.energy_j or 0.0)
        cached = Curve(part.start, float(part.report.duration_s), energy, ch.timeline)
        part.curves[ch.name] = cached
    return cached


def channel_piece(part: Part, ch: ChannelReport) -> Piece | None:
    """A channel over its report's window (None when it measured nothing)."""
    if ch.energy_j is None:
        return None
    curve = channel_curve(part, ch)
    return Piece(part.index, [(part.start, part.end)], float(ch.energy_j), ch.coverage, curve)


def union_timeline(
    u: Union, curves: dict[int, Curve], origin: float
) -> list[tuple[float, float, float | None]]:
    """(offset from ``origin``, cumulative J, None) along the slices a union chose."""
    times: list[float] = []
    values: list[float] = []
    total = 0.0
    for a, b, key in u.slices:
        c = curves[key]
        base = c.at(a)
        xs, ys = c.points_between(a, b)
        times.append(a)
        values.append(total)
        times += xs
        shift = total - base
        values += [y + shift for y in ys]
        total += c.at(b) - base
        times.append(b)
        values.append(total)
    if not times:
        return []
    scale = u.energy_j / total if total > 0 else 1.0
    n = len(times)
    keep = range(n) if n <= CHANNEL_POINTS else _thin_index(n, CHANNEL_POINTS)
    return [(times[i] - origin, values[i] * scale, None) for i in keep]


def _thin_index(n: int, k: int) -> list[int]:
    step = (n - 1) / (k - 1)
    return [round(j * step) for j in range(k)]


def _widths(
    figures: Iterable[tuple[float | None, tuple[float, float] | None]],
) -> tuple[float, float] | None:
    """Summed (below, above) widths of intervals around their figures; None if one lacks one."""
    down = up = 0.0
    for energy, iv in figures:
        if energy is None:
            continue
        if iv is None:
            return None
        down += max(0.0, energy - iv[0])
        up += max(0.0, iv[1] - energy)
    return down, up


def _around(energy: float | None, widths: tuple[float, float] | None) -> Any:
    if energy is None or widths is None:
        return None
    return (max(0.0, energy - widths[0]), energy + widths[1])


_NO_INTERVAL = "no interval: a merged report was written before intervals existed"


def channel_interval(
    members: list[tuple[Part, Any]], u: Union | None
) -> tuple[tuple[float, float] | None, str | None]:
    """A merged channel's interval: the widths of the reports it used, added.

    A report only partly used (time shared with another) still adds its whole width: sound, and
    conservative.
    """
    if u is None or u.energy_j is None:
        return None, None
    by_index = {p.index: ch for p, ch in members}
    used = [by_index[k] for k in u.used_j if k in by_index]
    widths = _widths((ch.energy_j, ch.energy_interval_j) for ch in used)
    if widths is None:
        return None, _NO_INTERVAL
    return _around(u.energy_j, widths), (
        f"merged from {len(used)} report(s): their intervals' widths added (a report partly "
        "used adds its whole width)"
    )


def merge_channel(
    node: str, members: list[tuple[Part, Any]], start: float, duration_s: float
) -> tuple[Any, Union | None]:
    """One merged channel of one node from every report that measured it."""
    first = members[0][1]
    name = merged_name(members[0][0], first)
    pieces = [pc for pc in (channel_piece(p, ch) for p, ch in members) if pc is not None]
    u = union_energy(pieces) if pieces else None
    energy = u.energy_j if u is not None else None
    used = set(u.used_j) if u is not None else set()
    used_chs = [ch for p, ch in members if p.index in used] or [first]
    estimated = any(ch.provenance.kind == "estimated" for ch in used_chs)
    prov = first.provenance.model_copy(update={"kind": "estimated" if estimated else "measured"})
    events = [e for _, ch in members for e in ch.events][:50]
    if u is not None and u.overlap_s > 0:
        events.append(
            f"merged: {len(pieces)} reports; {u.overlap_s:.1f} s covered by more than one, "
            "counted once"
        )
    peaks = [ch.peak_power_w for _, ch in members if ch.peak_power_w is not None]
    measured_s = u.measured_s if u is not None else 0.0
    curves = {pc.key: pc.curve for pc in pieces}
    interval, interval_basis = channel_interval(members, u)
    return (
        first.model_copy(
            update={
                "name": name,
                "node_id": node,
                "host": first.host or node,
                "energy_j": energy,
                "energy_kwh": None if energy is None else energy / 3.6e6,
                "energy_interval_j": interval,
                "interval_basis": interval_basis,
                "mean_power_w": energy / measured_s if energy is not None and measured_s else None,
                "peak_power_w": max(peaks) if peaks else None,
                "samples": sum(ch.samples for ch in used_chs),
                "rejected": sum(ch.rejected for ch in used_chs),
                "failed_reads": sum(ch.failed_reads for ch in used_chs),
                "wraps": sum(ch.wraps for ch in used_chs),
                "coverage": min(1.0, measured_s / duration_s) if duration_s > 0 else 0.0,
                "provenance": prov,
                "events": events,
                "timeline": union_timeline(u, curves, start) if u is not None else [],
            }
        ),
        u,
    )


# --------------------------------------------------------------------------------- phases
def phase_channel_energy(ph: PhaseReport, node: str, name: str, multi: bool) -> float | None:
    """A phase's energy on one channel, from its per-channel figures."""
    for key in (f"{node}/{name}", name) if multi else (name, f"{node}/{name}"):
        if key in ph.channels:
            return ph.channels[key]
    return None


def phase_pieces(phase: str, members: list[tuple[Part, Any]], multi: bool) -> list[Piece]:
    """One channel's pieces for ``phase``: each report's phase intervals on the UTC clock."""
    out = []
    for p, ch in members:
        ph = p.report.phases.get(phase)
        if ph is None or ch.energy_j is None:
            continue
        e = phase_channel_energy(ph, channel_node(p, ch), ch.name, multi)
        if e is None:
            continue
        intervals = [(p.start + a, p.start + b) for a, b in ph.intervals]
        out.append(Piece(p.index, intervals, float(e), ch.coverage, channel_curve(p, ch)))
    return out


def merge_phase(
    phase: str,
    parts: Sequence[Part],
    groups: dict[tuple[str, str], list[tuple[Part, Any]]],
    merged_channels: dict[tuple[str, str], Any],
    origin: float,
    notes: list[str] | None = None,
) -> Any:
    """One merged phase: per channel the union rule, per node the total rule, nodes added."""
    from bertwatt.report.models import PhaseReport

    multi = len({node for node, _ in groups}) > 1
    per_node: dict[str, list[Any]] = {}
    channels: dict[str, float] = {}
    for (node, name), members in groups.items():
        pieces = phase_pieces(phase, members, multi)
        if not pieces:
            continue
        e = union_energy(pieces).energy_j
        ch = merged_channels[(node, name)].model_copy(update={"energy_j": e})
        per_node.setdefault(node, []).append(ch)
        channels[f"{node}/{name}" if multi else name] = e
    duration_s = sum(p.report.phases[phase].duration_s for p in parts if phase in p.report.phases)
    totals = [node_total(chs, duration_s)[0] for chs in per_node.values()]
    known = [t for t in totals if t is not None]
    energy = sum(known) if known else None
    reps = [p.report.phases[phase] for p in parts if phase in p.report.phases]
    intervals, count, duration = phase_extent(phase, parts, origin, notes)
    widths = _widths((ph.energy_j, ph.energy_interval_j) for ph in reps)
    return PhaseReport(
        name=phase,
        intervals=intervals,
        count=count,
        duration_s=duration,
        energy_j=energy,
        energy_kwh=None if energy is None else energy / 3.6e6,
        energy_interval_j=_around(energy, widths),
        interval_basis=None
        if energy is None
        else (
            _NO_INTERVAL
            if widths is None
            else f"merged from {len(reps)} report(s): the phase's interval widths added"
        ),
        mean_power_w=energy / duration if energy is not None and duration > 0 else None,
        coverage=min(ph.coverage for ph in reps),
        channels=channels,
    )


def phase_extent(
    phase: str, parts: Sequence[Part], origin: float, notes: list[str] | None = None
) -> tuple[list[tuple[float, float]], int, float]:
    """(intervals from ``origin``, count, duration) of a phase over every part.

    Parts whose windows never overlap add their counts and durations (a report lists at most
    its first intervals of a frequent phase, and its count and duration cover all of them).
    Where windows overlap, the listed intervals are united, plus what the parts did not list.
    """
    having = [p for p in parts if phase in p.report.phases]
    spans = [(p.start, p.end) for p in having]
    disjoint = sum(b - a for a, b in merge_intervals(spans)) >= sum(b - a for a, b in spans) - 1e-9
    listed = [
        (p.start + a - origin, p.start + b - origin)
        for p in having
        for a, b in p.report.phases[phase].intervals
    ]
    phs = [p.report.phases[phase] for p in having]
    truncated = [ph for ph in phs if ph.count > len(ph.intervals)]
    if disjoint:
        intervals = sorted(listed)
        count, duration = sum(ph.count for ph in phs), sum(ph.duration_s for ph in phs)
    else:
        intervals = merge_intervals(listed)
        count = len(intervals) + sum(ph.count - len(ph.intervals) for ph in truncated)
        duration = sum(b - a for a, b in intervals) + sum(
            max(0.0, ph.duration_s - sum(b - a for a, b in ph.intervals)) for ph in truncated
        )
        if truncated and notes is not None:
            notes.append(
                f"phase {phase!r}: parts that overlap in time listed only their first intervals; "
                "its merged energy and duration use the listed ones where they overlap"
            )
    return intervals[:PHASE_INTERVALS], count, duration


# ---------------------------------------------------------------------------- the whole job
def total_timeline(
    added: Sequence[Any], duration_s: float, energy: float | None
) -> list[tuple[float, float]]:
    """(offset from the merged start, cumulative counted J) from the added channels."""
    if energy is None or duration_s <= 0 or not added:
        return []
    n = TOTAL_POINTS
    times = [duration_s * k / n for k in range(n + 1)]
    sums = [0.0] * (n + 1)
    for ch in added:
        pts = ch.timeline or [(0.0, 0.0, None), (duration_s, ch.energy_j, None)]
        curve = Curve(0.0, duration_s, float(ch.energy_j), pts)
        for k, t in enumerate(times):
            sums[k] += curve.at(t)
    sums[-1] = energy
    return list(zip(times, sums, strict=True))


def merged_status(parts: Sequence[Part]) -> str:
    """``complete`` if every part is; ``partial`` if one is still running or partial."""
    states = {p.report.status for p in parts}
    if states & {"running", "partial"}:
        return "partial"
    if "interrupted" in states:
        return "interrupted"
    return "complete"


def merged_run_id(parts: Sequence[Part]) -> str:
    """A stable run id for a merge: a digest of its parts' run ids."""
    key = "|".join(sorted(p.report.run_id for p in parts))
    return hashlib.sha256(f"merge|{key}".encode()).hexdigest()[:32]


def _hosts(parts: Sequence[Part]) -> list[Any]:
    hosts, seen = [], set()
    for p in parts:
        for h in p.report.hosts or [p.report.host]:
            k = (h.node_id or h.hostname, h.pid)
            if k not in seen:
                seen.add(k)
                hosts.append(h)
    return hosts


def _unavailable(parts: Sequence[Part]) -> list[Any]:
    out, seen = [], set()
    for p in parts:
        for u in p.report.unavailable:
            k = (u.node_id or u.host or p.node, u.what, u.reason)
            if k not in seen:
                seen.add(k)
                out.append(u)
    return out


def _segments(parts: Sequence[Part]) -> list[Any]:
    segs = sorted((s for p in parts for s in p.report.segments), key=lambda s: s.started_at)
    return [s.model_copy(update={"index": i}) for i, s in enumerate(segs)]


def merge_energy(
    parts: Sequence[Part], notes: list[str]
) -> tuple[dict[str, Any], dict[int, float]]:
    """The energy fields of the merged report, and the J each part contributed to the total."""
    start = min(p.start for p in parts)
    end = max(max(p.end, posix_s(p.report.ended_at)) for p in parts)
    duration = max(0.0, end - start)
    groups = channel_groups(parts)
    merged: dict[tuple[str, str], Any] = {}
    unions: dict[tuple[str, str], Union | None] = {}
    for key, members in groups.items():
        merged[key], unions[key] = merge_channel(key[0], members, start, duration)
        u = unions[key]
        if u is not None and u.overlap_s > 0:
            notes.append(
                f"{key[1]} on node {key[0]}: {u.overlap_s:.3g} s measured by more than one "
                "report, counted once"
            )
    nodes = sorted({node for node, _ in merged})
    used: dict[int, float] = {}
    totals, bases, added_all = [], [], []
    for node in nodes:
        chs = [c for (n, _), c in merged.items() if n == node]
        total, basis, added = node_total(chs, duration)
        totals.append(total)
        bases.append(f"{node}: {basis}" if len(nodes) > 1 else basis)
        added_all += added
        for c in added:
            u = unions[(node, c.name)]
            for k, v in (u.used_j if u else {}).items():
                used[k] = used.get(k, 0.0) + v
    known = [t for t in totals if t is not None]
    energy = sum(known) if known else None
    widths = _widths((c.energy_j, c.energy_interval_j) for c in added_all)
    names = sorted({n for p in parts for n in p.report.phases})
    phases = {n: merge_phase(n, parts, groups, merged, start, notes) for n in names}
    intervals = {p.report.interval_s for p in parts}
    if len(intervals) > 1:
        notes.append(f"merged reports used different sampling intervals {sorted(intervals)} s")
    return (
        {
            "started_at": utc(start),
            "ended_at": utc(end),
            "duration_s": duration,
            "interval_s": max(intervals),
            "energy_j": energy,
            "energy_kwh": None if energy is None else energy / 3.6e6,
            "energy_interval_j": _around(energy, widths),
            "interval_basis": None
            if energy is None
            else (
                _NO_INTERVAL
                if widths is None
                else "lows and highs of the merged channels' intervals added"
            ),
            "mean_power_w": energy / duration if energy is not None and duration else None,
            "total_basis": "; ".join(bases) or "nothing was measured",
            "channels": list(merged.values()),
            "phases": phases,
            "timeline": total_timeline(added_all, duration, energy),
            "wall": merged_wall(
                merged, phases, {n: ph.duration_s for n, ph in phases.items()}, duration
            ),
        },
        used,
    )


def carry_interval(fields: dict[str, Any], channels_j: float | None) -> None:
    """Move the total's interval with energy added after the channels (earlier segments)."""
    iv, e = fields.get("energy_interval_j"), fields.get("energy_j")
    if iv is None or e is None or channels_j is None or e == channels_j:
        if e is None:
            fields["energy_interval_j"] = None
        return
    shift = e - channels_j
    fields["energy_interval_j"] = (iv[0] + shift, iv[1] + shift)
    fields["interval_basis"] = (
        f"{fields.get('interval_basis') or ''}; shifted by the {shift:,.3f} J of earlier "
        "segments, carried as a point figure (their own interval is not kept)"
    )


def merge_reports(
    reports: Sequence[EnergyReport], *, names: Sequence[str] | None = None
) -> EnergyReport:
    """Merge reports of several runs, processes or nodes into one truthful report.

    Args:
        reports: reports of any kind (all fine-tuning: a FinetuneReport; all inference: an
            InferenceReport; otherwise an EnergyReport, with fine-tuning work kept if present).
        names: names of the reports for messages (file names); default ``report N``.

    Raises:
        ReportError: no reports; an impossible figure (NaN, infinite, negative); different or
            future schema versions; copies of one run whose clocks disagree.
    """
    from bertwatt.report.merge_work import (
        add_earlier_segments,
        merge_carbon,
        merge_work,
        result_class,
    )

    parts = make_parts(reports, names)
    check_parts(parts)
    kept, notes = drop_copies(parts)
    notes += clock_notes(kept)
    fields, used = merge_energy(kept, notes)
    channels_j = fields["energy_j"]
    add_earlier_segments(kept, fields, used, notes)
    carry_interval(fields, channels_j)
    first = kept[0].report
    nodes = sorted({p.node for p in kept})
    fields.update(
        kind="energy",
        run_id=merged_run_id(kept),
        status=merged_status(kept),
        node_id=nodes[0] if len(nodes) == 1 else ",".join(nodes)[:200],
        host=first.host,
        hosts=_hosts(kept),
        unavailable=_unavailable(kept),
        segments=_segments(kept),
        run=first.run if all(p.report.run == first.run for p in kept) else None,
        extra={
            "merged_from": [p.name for p in kept],
            "merged_run_ids": [p.report.run_id for p in kept],
        },
    )
    fields.update(merge_carbon(kept, used, fields["energy_j"], fields["phases"]))
    kind = result_class(kept)
    fields.update(merge_work(kind, kept, fields, notes))
    warnings = [w for p in kept for w in p.report.warnings] + notes
    fields["warnings"] = list(dict.fromkeys(warnings))
    from bertwatt.report.io import report_class

    report = report_class(kind).model_validate(fields)
    if kind != "energy":
        from bertwatt.report.finetune import figures_basis

        report = report.model_copy(update={"figures": figures_basis(report)})
    return report


# ----------------------------------------------------------------------------- from files
@dataclass
class MergeResult:
    """What :func:`merge_paths` merged: the report, the files used and the ones skipped."""

    report: EnergyReport
    files: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def _dir_files(d: Path) -> list[Path]:
    try:
        entries = sorted(d.iterdir())
    except OSError as err:
        raise ReportError(f"cannot list the directory: {err.strerror}", where=str(d)) from err
    return [e for e in entries if e.suffix == ".json" and not e.name.startswith(".")]


def _is_merge_output(extra: Any) -> bool:
    return isinstance(extra, dict) and ("merged_run_ids" in extra or "merged_from" in extra)


def merge_paths(
    paths: Sequence[str | os.PathLike[str]], *, exclude: Sequence[str | os.PathLike[str]] = ()
) -> MergeResult:
    """Load and merge report files; a directory contributes every ``*.json`` report in it.

    From a directory, earlier merge outputs and JSON files that are not bertwatt reports are
    skipped (listed in :attr:`MergeResult.skipped`); a file named explicitly is always used.
    ``exclude`` lists paths to leave out (e.g. the merge's own output file). Copies of one run
    and runs included in others are counted once (see :func:`merge_reports`).

    Raises:
        ReportError: no report found, or any file that cannot be read or is invalid (naming
            it), or a merge error.
    """
    from bertwatt.report.io import load_report

    skip = {os.path.realpath(x) for x in exclude}
    result_files: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    reports: list[EnergyReport] = []
    for raw in paths:
        given = Path(raw)
        from_dir = given.is_dir()
        for f in _dir_files(given) if from_dir else [given]:
            if os.path.realpath(f) in skip:
                continue
            try:
                report: EnergyReport = load_report(f)
            except ReportError as err:
                if from_dir and err.message.startswith("not a bertwatt report"):
                    skipped.append((f, "not a bertwatt report"))
                    continue
                raise
            if from_dir and _is_merge_output(report.extra):
                skipped.append((f, "an earlier merge output"))
                continue
            reports.append(report)
            result_files.append(f)
    if not reports:
        where = ", ".join(str(p) for p in paths)[:200]
        raise ReportError(
            "no report to merge", where=where, fix="give report files or a directory holding them"
        )
    report = merge_reports(reports, names=[str(f) for f in result_files])
    return MergeResult(report, result_files, skipped)
