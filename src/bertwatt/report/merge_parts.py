"""The parts of a merge: naming them, refusing bad ones, counting copies of one run once, and
the wall-clock checks (see :mod:`bertwatt.report.merge` for the rules).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from bertwatt.errors import ReportError
from bertwatt.report.union import Curve

if TYPE_CHECKING:
    from bertwatt.report.models import EnergyReport

__all__ = [
    "Part",
    "check_copy_clocks",
    "check_parts",
    "clock_notes",
    "drop_copies",
    "drop_included",
    "make_parts",
    "newest_copies",
    "posix_s",
    "utc",
]

#: A wall clock that drifts from the monotonic window by more than this (and 1 %) is reported.
_CLOCK_SLACK_S = 1.0
_STATUS_ORDER = {"complete": 3, "interrupted": 2, "partial": 1, "running": 0}


# --------------------------------------------------------------------------------------- parts
@dataclass
class Part:
    """One report given to a merge, with its name (file) and its window on the UTC clock."""

    name: str
    report: EnergyReport
    index: int
    start: float = 0.0
    end: float = 0.0
    curves: dict[str, Curve] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.start = posix_s(self.report.started_at)
        self.end = self.start + float(self.report.duration_s)

    @property
    def node(self) -> str:
        """The report's node identity."""
        return self.report.node_id or self.report.host.hostname


def posix_s(t: datetime) -> float:
    """POSIX seconds of ``t`` (a naive datetime is taken as UTC, as reports store UTC)."""
    return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp()


def utc(seconds: float) -> datetime:
    """The UTC datetime of POSIX ``seconds``."""
    return datetime.fromtimestamp(seconds, timezone.utc)


def make_parts(reports: Sequence[EnergyReport], names: Sequence[str] | None = None) -> list[Part]:
    """Name the reports (``names`` or ``report N``); ReportError if there are none."""
    reps = list(reports)
    if not reps:
        raise ReportError("nothing to merge: no reports given")
    if names is not None and len(names) != len(reps):
        raise ReportError(f"{len(names)} names given for {len(reps)} reports")
    labels = list(names) if names is not None else [f"report {i + 1}" for i in range(len(reps))]
    return [Part(labels[i], r, i) for i, r in enumerate(reps)]


def check_parts(parts: Sequence[Part]) -> None:
    """Refuse impossible figures, future schema versions and mixed schema versions."""
    from bertwatt.report.figures import figure_problems
    from bertwatt.report.models import SCHEMA_VERSION

    for p in parts:
        problems = figure_problems(p.report, limit=2)
        if problems:
            raise ReportError(
                f"cannot merge {p.name}: impossible figure(s): {'; '.join(problems)}",
                fix="a NaN, infinite or negative energy is never a measurement; leave that "
                "report out",
            )
        if p.report.schema_version > SCHEMA_VERSION:
            raise ReportError(
                f"cannot merge {p.name}: schema version {p.report.schema_version} is newer "
                f"than this bertwatt reads ({SCHEMA_VERSION})",
                fix="upgrade bertwatt",
            )
    versions: dict[int, list[str]] = {}
    for p in parts:
        versions.setdefault(p.report.schema_version, []).append(p.name)
    if len(versions) > 1:
        listing = "; ".join(f"version {v}: {', '.join(n[:3])}" for v, n in sorted(versions.items()))
        raise ReportError(
            f"cannot merge reports of different schema versions ({listing})",
            fix="load every file with bertwatt.load_report (it upgrades older versions)",
        )


# ------------------------------------------------------------------------ copies of one run
def _contained_runs(r: EnergyReport) -> set[str]:
    """Run ids a report includes besides its own (resumed sessions, merged parts)."""
    runs = {s.run_id for s in r.segments}
    merged = r.extra.get("merged_run_ids") if isinstance(r.extra, dict) else None
    if isinstance(merged, list):
        runs.update(str(x) for x in merged)
    runs.discard(r.run_id)
    return runs


def _newest(copies: list[Part]) -> Part:
    return max(
        copies,
        key=lambda p: (
            p.end,
            _STATUS_ORDER.get(p.report.status, 0),
            p.report.energy_j or 0.0,
            -p.index,
        ),
    )


def _same(a: Part, b: Part) -> bool:
    ra, rb = a.report, b.report
    return ra.ended_at == rb.ended_at and ra.energy_j == rb.energy_j and ra.status == rb.status


def check_copy_clocks(copies: Sequence[Part]) -> None:
    """Copies of one run start at one instant; refuse them if their clocks disagree."""
    first = min(copies, key=lambda p: p.start)
    for p in copies:
        window = min(first.report.duration_s, p.report.duration_s)
        if abs(p.start - first.start) > max(window, _CLOCK_SLACK_S):
            raise ReportError(
                f"{first.name} and {p.name} are copies of run {p.report.run_id[:12]} but their "
                f"start times differ by {abs(p.start - first.start):.0f} s, more than the "
                f"window ({window:.0f} s): the clocks that wrote them disagree",
                fix="merge only one copy of a run (the newest)",
            )


def newest_copies(parts: Sequence[Part]) -> tuple[list[Part], list[str]]:
    """One report per ``run_id``: the newest copy; notes name the copies left out."""
    notes: list[str] = []
    by_run: dict[str, list[Part]] = {}
    for p in parts:
        by_run.setdefault(p.report.run_id, []).append(p)
    kept: list[Part] = []
    for copies in by_run.values():
        check_copy_clocks(copies)
        best = _newest(copies)
        kept.append(best)
        for c in copies:
            if c is not best:
                how = "a duplicate of" if _same(c, best) else "an older copy of the same run as"
                notes.append(f"{c.name} is {how} {best.name}: counted once")
    return sorted(kept, key=lambda q: q.index), notes


def drop_included(parts: Sequence[Part]) -> tuple[list[Part], list[str]]:
    """Drop runs that another report includes (resumed sessions, merged parts)."""
    included: dict[str, str] = {}
    for p in parts:
        for run in _contained_runs(p.report):
            included.setdefault(run, p.name)
    kept = [p for p in parts if p.report.run_id not in included]
    notes = [
        f"{p.name} is included in {included[p.report.run_id]}: counted once"
        for p in parts
        if p.report.run_id in included
    ]
    return kept, notes


def drop_copies(parts: Sequence[Part]) -> tuple[list[Part], list[str]]:
    """Keep one report per run (the newest copy); drop runs that another report includes."""
    kept, notes = newest_copies(parts)
    kept, more = drop_included(kept)
    return kept, notes + more


def clock_notes(parts: Sequence[Part]) -> list[str]:
    """Warnings about wall clocks: moved during a window; nodes whose windows never meet."""
    notes = []
    for p in parts:
        wall = (posix_s(p.report.ended_at) - p.start) if p.report.ended_at else p.report.duration_s
        drift = abs(wall - p.report.duration_s)
        if drift > max(_CLOCK_SLACK_S, 0.01 * p.report.duration_s):
            notes.append(
                f"{p.name}: the wall clock moved {drift:.1f} s against the measured window; "
                "its place on the merged timeline is uncertain by that much"
            )
    nodes: dict[str, tuple[float, float, str]] = {}
    for p in parts:
        a, b, name = nodes.get(p.node, (p.start, p.end, p.name))
        nodes[p.node] = (min(a, p.start), max(b, p.end), name)
    spans = sorted(nodes.items(), key=lambda kv: kv[1][0])
    for (na, (_, ea, fa)), (nb, (sb, _, fb)) in itertools.pairwise(spans):
        if sb - ea > 0:
            notes.append(
                f"{fa} (node {na}) and {fb} (node {nb}) do not overlap in time ({sb - ea:.0f} s "
                "apart): if they ran together, their clocks disagree by more than the window"
            )
    return notes
