"""The read-only commands: ``sensors``, ``show``, ``zones``, ``merge``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bertwatt._echo import quote
from bertwatt.cli._out import EXIT_ERROR, err, note, out, out_json
from bertwatt.errors import ReportError

if TYPE_CHECKING:
    from bertwatt.report.models import EnergyReport

__all__ = ["cmd_merge", "cmd_sensors", "cmd_show", "cmd_zones", "load"]


def load(path: Path) -> EnergyReport:
    """Load a report of any kind; whatever goes wrong becomes one ReportError line."""
    from bertwatt.report import load_report

    try:
        return load_report(path)
    except ReportError:
        raise
    except (RecursionError, MemoryError, UnicodeError, ValueError, TypeError) as exc:
        # the loader bounds size, depth and time; this is the last net under it
        raise ReportError(
            f"cannot read report ({type(exc).__name__}: {str(exc)[:200]})", where=str(path)
        ) from None


def _row(backend: Any, ch: Any) -> dict[str, Any]:
    return {
        "channel": ch.name,
        "backend": backend.name,
        "kind": ch.kind,
        "provenance": ch.provenance.kind,
        "source": ch.provenance.source,
        "counted": ch.counted,
    }


def _probe(backend: Any, rows: list[dict[str, Any]], missing: list[dict[str, Any]]) -> bool:
    """Probe one backend into ``rows``/``missing``; True when it measures a counted CPU."""
    cpu_measured = False
    try:
        av = backend.probe()
    except Exception as exc:
        missing.append({"what": backend.name, "reason": f"probe() raised {exc}", "fix": None})
        return False
    try:
        for ch in av.channels:
            cpu_measured |= ch.domain == "cpu" and ch.counted
            rows.append(_row(backend, ch))
        missing.extend({"what": u.what, "reason": u.reason, "fix": u.fix} for u in av.unavailable)
    finally:
        backend.close()
    return cpu_measured


def cmd_sensors(args: argparse.Namespace) -> int:
    """Print what this machine can measure, and why/how to fix what it cannot."""
    from bertwatt.backends import create, default_backends

    if args.wallplug:
        return _check_wallplug(args.wallplug, as_json=args.json)
    backends = [create(n) for n in args.backend] if args.backend else default_backends()
    rows: list[dict[str, Any]] = []
    missing: list[dict[str, Any]] = []
    cpu_measured = False
    for b in backends:
        cpu_measured |= _probe(b, rows, missing)
    if not args.backend and not cpu_measured:
        _probe(create("estimate"), rows, missing)
    if args.json:
        out_json(json.dumps({"channels": rows, "unavailable": missing}, indent=2))
        return 0
    lines = ["measurable here:" if rows else "nothing measurable here"]
    for r in rows:
        tag = "measured " if r["provenance"] == "measured" else "ESTIMATED"
        extra = "" if r["counted"] else "  (inside/overlapping another channel, not added)"
        lines.append(f"  {r['channel']:<18} {tag}  {r['kind']:<7} {r['source']}{extra}")
    if missing:
        lines.append("not measurable:")
        for m in missing:
            lines.append(f"  {m['what']}: {m['reason']}")
            if m["fix"]:
                lines.append(f"      fix: {m['fix']}")
    out("\n".join(lines))
    return 0


def _check_wallplug(source: str, *, as_json: bool) -> int:
    """``sensors --wallplug``: probe the meter, take one reading, print it and the update rate."""
    import math

    from bertwatt.backends import WallPlugBackend

    backend = WallPlugBackend.from_source(source)
    try:
        av = backend.probe()
        if not av.ok:
            for u in av.unavailable:
                err(f"{u.what}: {u.reason}" + (f". Fix: {u.fix}" if u.fix else ""))
            return EXIT_ERROR
        values, errors = backend.read()
    finally:
        backend.close()
    info = backend.meter_info
    rows = []
    for i, ch in enumerate(av.channels):
        v = values[i] if i < len(values) else math.nan
        rows.append(
            {
                "channel": ch.name,
                "kind": ch.kind,
                "value": v if math.isfinite(v) else None,
                "unit": "J" if ch.kind == "counter" else "W",
                "error": (errors or {}).get(i),
                "counted": ch.counted,
                "source": ch.provenance.source,
            }
        )
    update = info.update_period_s if info is not None else None
    resolution = info.energy_resolution_j if info is not None else None
    if as_json:
        data = {
            "device": backend.device,
            "model": info.model if info else None,
            "update_period_s": update,
            "poll_interval_s": backend.poll_interval_s,
            "energy_resolution_j": resolution,
            "channels": rows,
        }
        out_json(json.dumps(data, indent=2))
    else:
        lines = [f"wall meter {backend.device}: {info.model if info else '?'}"]
        for r in rows:
            shown = "no reading" if r["value"] is None else f"{r['value']:,.3f} {r['unit']}"
            extra = "" if r["counted"] else "  (fallback, not added)"
            lines.append(f"  {r['channel']:<22} {r['kind']:<7} {shown}{extra}")
            if r["error"]:
                lines.append(f"      error: {r['error']}")
        every = f"every {update:g} s" if update else "unknown"
        lines.append(
            f"  update rate: {every} (polled every {backend.poll_interval_s:g} s)"
            + (f"; counter resolution {resolution:g} J" if resolution else "")
        )
        out("\n".join(lines))
    return EXIT_ERROR if any(r["value"] is None for r in rows) else 0


def cmd_show(args: argparse.Namespace) -> int:
    """Print the summary of a saved report of any kind (or its JSON, or its timeline as CSV)."""
    report = load(args.report)
    if args.csv is not None:
        report.to_csv(args.csv)
    if args.json:
        out_json(report.model_dump_json(indent=2))
    elif sys.stdout.isatty():  # a readable table on a terminal, the plain summary otherwise
        from bertwatt.viz.table import print_report

        print_report(report)
    else:
        out(report.summary())
    return 0


def cmd_zones(args: argparse.Namespace) -> int:
    """List or search the shipped carbon-intensity zones."""
    from bertwatt.carbon.zones import format_zones, search

    records = search(args.query)
    if not records:
        err(f"no zone matches {quote(args.query, 60)}; run `bertwatt zones` to list them all")
        return EXIT_ERROR
    out(format_zones(records))
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    """Merge reports (files, or every report in a directory) into one; print its summary.

    Copies of one run count once; a directory's earlier merge outputs (and the ``-o`` file) are
    skipped, each named on stderr.
    """
    from bertwatt.report.io import write_report
    from bertwatt.report.merge import merge_paths

    exclude = [args.output] if args.output is not None else []
    result = merge_paths(list(args.reports), exclude=exclude)
    for path, why in result.skipped:
        note(f"bertwatt: skipped {path}: {why}")
    report = result.report
    # the rank files of a distributed job: its job report (nodes, ranks, missing ranks)
    from bertwatt.distributed.offline import job_for_merge

    job = job_for_merge(list(args.reports), report)
    if job is not None:
        report = job
        note(f"bertwatt: the rank files of a distributed job: {len(job.ranks)} rank(s)")
    if args.output is not None:
        write_report(report, args.output)
    out(report.summary())
    if args.output is not None:
        note(f"bertwatt: merged {len(result.files)} report(s) into {args.output}")
    return 0
