"""Writing, loading and merging reports.

Writes are atomic: the JSON goes to a temporary file in the same directory, is flushed and fsynced,
then renamed over the target, so a reader (or a process killed mid-write) only ever sees a whole
report: the previous one or the new one.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from pydantic import ValidationError

from bertwatt.errors import ReportError

if TYPE_CHECKING:
    from bertwatt.report.models import EnergyReport

__all__ = [
    "load_report",
    "merge_reports",
    "write_report",
    "write_text_atomic",
    "write_timeline_csv",
]

R = TypeVar("R", bound="EnergyReport")


def _umask() -> int:
    """The process umask, read without changing it (os.umask would, racing other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file and rename (ReportError on failure)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise ReportError(
            f"cannot create the report directory or a temp file in it: {err.strerror}",
            where=str(path.parent),
        ) from err
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise ReportError(f"cannot write the report: {err.strerror}", where=str(path)) from err


def write_report(report: EnergyReport, path: Path | str) -> None:
    """Write ``report`` as JSON to ``path`` atomically."""
    write_text_atomic(Path(path), report.model_dump_json(indent=2))


def load_report(path: Path | str, cls: type[R] | None = None) -> R:
    """Read and validate a JSON report; errors name the file and the first problem."""
    from bertwatt.report.models import SCHEMA_VERSION, EnergyReport

    model = cls if cls is not None else EnergyReport
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise ReportError(f"cannot read report: {err.strerror}", where=str(p)) from err
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ReportError(
            f"not a JSON report (line {err.lineno}, column {err.colno}: {err.msg})", where=str(p)
        ) from err
    if not isinstance(data, dict) or "schema_version" not in data:
        raise ReportError("not a bertwatt report (no schema_version)", where=str(p))
    if data["schema_version"] != SCHEMA_VERSION:
        raise ReportError(
            f"report schema version {data['schema_version']!r} is not supported by this bertwatt "
            f"(it reads version {SCHEMA_VERSION})",
            where=str(p),
            fix="read it with the bertwatt version that wrote it",
        )
    try:
        return model.model_validate(data)  # type: ignore[return-value]
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise ReportError(f"invalid report: {loc}: {first['msg']}", where=str(p)) from err


def write_timeline_csv(report: EnergyReport, path: Path) -> None:
    """Write every channel's stored timeline as long-format CSV."""
    try:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["host", "channel", "offset_s", "energy_j", "power_w"])
            for ch in report.channels:
                for off, e, p in ch.timeline:
                    w.writerow(
                        [
                            ch.host,
                            ch.name,
                            f"{off:.6f}",
                            f"{e:.6f}",
                            "" if p is None else f"{p:.4f}",
                        ]
                    )
    except OSError as err:
        raise ReportError(f"cannot write timeline CSV: {err.strerror}", where=str(path)) from err


def merge_reports(reports: Sequence[EnergyReport]) -> EnergyReport:
    """Merge reports of several processes or nodes into one job-wide report.

    Channels are keyed by (host, channel name). When several reports measured the same channel of
    the same host (ranks sharing a node), the copy with the highest coverage (then energy) is kept
    and the others are dropped, so shared sensors count once. The merged window runs from the
    earliest start to the latest end. Phases of the same name are merged per channel the same way.
    """
    from bertwatt.report.models import ChannelReport, EnergyReport, PhaseReport, kwh
    from bertwatt.window import total_of

    reps = list(reports)
    if not reps:
        raise ReportError("nothing to merge: no reports given")
    versions = {r.schema_version for r in reps}
    if len(versions) > 1:
        raise ReportError(f"cannot merge reports of different schema versions {sorted(versions)}")
    intervals = {r.interval_s for r in reps}
    warnings: list[str] = []
    if len(intervals) > 1:
        warnings.append(f"merged reports used different sampling intervals {sorted(intervals)}")
    best: dict[tuple[str, str], tuple[tuple[float, float], int, ChannelReport]] = {}
    for idx, r in enumerate(reps):
        for ch in r.channels:
            key = (ch.host or r.host.hostname, ch.name)
            cur = best.get(key)
            rank = (ch.coverage, ch.energy_j if ch.energy_j is not None else -1.0)
            if cur is None or rank > cur[0]:
                best[key] = (rank, idx, ch)
    dropped = sum(len(r.channels) for r in reps) - len(best)
    if dropped:
        warnings.append(f"{dropped} channel(s) measured by more than one process were counted once")

    from bertwatt.backends.base import Channel, Provenance

    def key_channel(host: str, ch: ChannelReport) -> Channel:
        return Channel(
            name=f"{host}/{ch.name}",
            domain=ch.domain,
            kind=ch.kind,
            counted=ch.counted,
            provenance=Provenance(
                kind=ch.provenance.kind,
                source="",
                scope=ch.provenance.scope,  # type: ignore[arg-type]
            ),
        )

    chosen = {k: (idx, ch) for k, (_, idx, ch) in best.items()}
    totals: dict[Channel, float] = {}
    for (host, _), (_, ch) in chosen.items():
        if ch.energy_j is not None:
            totals[key_channel(host, ch)] = ch.energy_j
    by_host: dict[str, dict[Channel, float]] = {}
    for c, v in totals.items():
        by_host.setdefault(c.name.split("/", 1)[0], {})[c] = v
    host_totals = [total_of(v) for v in by_host.values()]
    energy = None
    if any(t is not None for t, _ in host_totals):
        energy = sum(t for t, _ in host_totals if t is not None)
    basis = "; ".join(f"{h}: {b}" for h, (_, b) in zip(by_host, host_totals, strict=True))

    phases: dict[str, PhaseReport] = {}
    names = {n for r in reps for n in r.phases}
    for name in sorted(names):
        per_host: dict[str, dict[Channel, float]] = {}
        dur = 0.0
        count = 0
        cov = 1.0
        offs: list[tuple[float, float]] = []
        for (host, cname), (idx, ch) in chosen.items():
            ph = reps[idx].phases.get(name)
            if ph is None or cname not in ph.channels:
                continue
            per_host.setdefault(host, {})[key_channel(host, ch)] = ph.channels[cname]
        for r in reps:
            ph = r.phases.get(name)
            if ph is None:
                continue
            if ph.duration_s > dur:
                dur, count, offs = ph.duration_s, ph.count, ph.intervals
            cov = min(cov, ph.coverage)
        ptot = [total_of(v)[0] for v in per_host.values()]
        pe = sum(t for t in ptot if t is not None) if any(t is not None for t in ptot) else None
        phases[name] = PhaseReport(
            name=name,
            intervals=offs,
            count=count,
            duration_s=dur,
            energy_j=pe,
            energy_kwh=kwh(pe),
            mean_power_w=pe / dur if pe is not None and dur else None,
            coverage=cov,
            channels={
                f"{h}/{c.name.split('/', 1)[1]}": v
                for h, d in per_host.items()
                for c, v in d.items()
            },
        )

    start = min(r.started_at for r in reps)
    end = max(r.ended_at for r in reps)
    duration = (end - start).total_seconds()
    hosts = []
    seen_hosts: set[tuple[str, int | None]] = set()
    for r in reps:
        for h in r.hosts or [r.host]:
            if (h.hostname, h.pid) not in seen_hosts:
                seen_hosts.add((h.hostname, h.pid))
                hosts.append(h)
    unavailable = []
    seen_u: set[tuple[str, str, str]] = set()
    for r in reps:
        for u in r.unavailable:
            k = (u.host, u.what, u.reason)
            if k not in seen_u:
                seen_u.add(k)
                unavailable.append(u)
    return EnergyReport(
        status="complete" if all(r.status == "complete" for r in reps) else "running",
        started_at=start,
        ended_at=end,
        duration_s=duration,
        interval_s=max(intervals),
        host=reps[0].host,
        hosts=hosts,
        energy_j=energy,
        energy_kwh=kwh(energy),
        mean_power_w=energy / duration if energy is not None and duration else None,
        total_basis=basis or "nothing was measured",
        channels=[ch for (_, ch) in chosen.values()],
        phases=phases,
        unavailable=unavailable,
        warnings=list(dict.fromkeys([w for r in reps for w in r.warnings] + warnings)),
        extra={"merged_from": len(reps)},
    )
