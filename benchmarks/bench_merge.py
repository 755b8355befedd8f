"""Benchmark: merging 64 reports of 9 channels x 1 h, and loading one 72 h report (issue #8).

Method: real reports, measured by ``EnergyMeter(interval_s=0.1)`` on a FakeBackend (8 GPU energy
counters ``gpu:0..7`` with a step at 30 min, and a ``package-0`` power channel) driven by a
FakeClock, with one ``epoch`` phase every 10 simulated minutes:

- one 1 h report is measured, then copied into 64 files as a job of 8 nodes x 8 reports: on each
  node, two ranks (the second starting 10 min after the first, so their windows overlap) over 4
  consecutive hours. Each copy gets its own ``run_id``, node identity and start time, so the
  merge exercises every rule: channels of one node merged over the union of overlapping windows,
  sequential parts added, nodes added;
- one 72 h report is measured the same way (``--quick``: 2 h).

Figures, each in a fresh child process (so that memory is this work's alone):

- ``merge``: wall time (``time.perf_counter``) of ``merge_paths([dir])`` (load every file, merge,
  what ``bertwatt merge DIR`` does), of the merge alone (``merge_reports`` on the loaded
  reports), and the growth of the resident set's high-water mark (``ru_maxrss``) over the RSS
  before loading;
- ``load``: wall time of ``load_report`` on the 72 h file.

Each timing is repeated (``--repeats``, 5 by default; 2 with ``--quick``), median and spread
printed. Targets (issue #8): merge under 2 s and 300 MiB; loading a 72 h report under 1 s.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import _common as c

MERGE_TARGET_S = 2.0
MERGE_TARGET_MIB = 300.0
LOAD_TARGET_S = 1.0
NODES, RANKS, HOURS_PER_RANK = 8, 2, 4
MIB = 1024 * 1024


def measure(hours: float) -> Any:
    """A real report of ``hours`` simulated hours (9 channels at 10 Hz, epochs of 10 min)."""
    from bertwatt import EnergyMeter
    from bertwatt.testing import FakeBackend, FakeChannel, FakeClock

    clock = FakeClock()
    channels = [
        FakeChannel(f"gpu:{i}", [(0.0, 250.0 + 10 * i), (1800.0, 120.0)], kind="counter")
        for i in range(8)
    ]
    channels.append(FakeChannel("package-0", 60.0, kind="power", scope="cpu"))
    backend = FakeBackend(name="fake-node", channels=channels, clock=clock)
    meter = EnergyMeter(backends=[backend], clock=clock, interval_s=0.1)
    meter.start()
    for _ in range(round(hours * 6)):
        meter.begin("epoch")
        clock.advance(600.0)
        meter.end("epoch")
    return meter.stop()


def write_job(directory: Path) -> float:
    """Write the 64 reports of the job; returns their summed energy without overlap (J)."""
    from bertwatt.report.models import new_run_id

    base = measure(1.0)
    for node in range(NODES):
        for rank in range(RANKS):
            for hour in range(HOURS_PER_RANK):
                r = base.model_copy(deep=True)
                shift = timedelta(hours=hour, minutes=10 * rank)
                r.run_id = new_run_id()
                r.node_id = r.host.node_id = f"node-{node}"
                r.host.pid = 1000 + rank
                r.started_at += shift
                r.ended_at += shift
                for ch in r.channels:
                    ch.node_id = f"node-{node}"
                r.to_json(directory / f"node{node}-rank{rank}-h{hour}.json")
    return float(base.energy_j or 0.0)


def child_merge(directory: str, repeats: int) -> dict[str, Any]:
    from bertwatt.report import load_report, merge_reports
    from bertwatt.report.merge import merge_paths

    rss0 = c.rss_bytes()
    t0 = time.perf_counter()
    res = merge_paths([directory])
    first_s = time.perf_counter() - t0
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    paths = sorted(Path(directory).glob("*.json"))
    reports = [load_report(p) for p in paths]
    full, alone = [first_s], []
    for _ in range(repeats - 1):
        t0 = time.perf_counter()
        merge_paths([directory])
        full.append(time.perf_counter() - t0)
    for _ in range(repeats):
        t0 = time.perf_counter()
        merge_reports(reports)
        alone.append(time.perf_counter() - t0)
    return {
        "files": len(res.files),
        "energy_j": res.report.energy_j,
        "channels": len(res.report.channels),
        "bytes": sum(p.stat().st_size for p in paths),
        "full_s": full,
        "merge_only_s": alone,
        "maxrss_growth_mib": (maxrss - rss0) / MIB,
    }


def child_load(path: str, repeats: int) -> dict[str, Any]:
    from bertwatt.report import load_report

    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        report = load_report(path)
        times.append(time.perf_counter() - t0)
    return {"load_s": times, "bytes": Path(path).stat().st_size, "hours": report.duration_s / 3600}


def _child(argv: list[str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, sys.argv[0], *argv], check=True, stdout=subprocess.PIPE, text=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--child", choices=("merge", "load", "make72"), help=argparse.SUPPRESS)
    p.add_argument("--path", help=argparse.SUPPRESS)
    p.add_argument("--hours", type=float, default=None, help="hours of the long report (72)")
    args = p.parse_args()
    repeats = args.repeats or (2 if args.quick else 5)
    hours = args.hours or (2.0 if args.quick else 72.0)
    if args.child == "merge":
        print(json.dumps(child_merge(args.path, repeats)))
        return 0
    if args.child == "load":
        print(json.dumps(child_load(args.path, repeats)))
        return 0
    if args.child == "make72":
        measure(hours).to_json(args.path)
        print(json.dumps({"ok": True}))
        return 0
    c.header("merge 64 reports of 9 channels x 1 h; load one 72 h report")
    with tempfile.TemporaryDirectory(prefix="bertwatt-bench-merge-") as tmp:
        job = Path(tmp) / "job"
        job.mkdir()
        one_j = write_job(job)
        merge = _child(["--child", "merge", "--path", str(job), "--repeats", str(repeats)])
        long_path = Path(tmp) / "long.json"
        t0 = time.perf_counter()
        _child(["--child", "make72", "--path", str(long_path), "--hours", str(hours)])
        made_s = time.perf_counter() - t0
        load = _child(["--child", "load", "--path", str(long_path), "--repeats", str(repeats)])
    full, alone, load_s = (
        c.spread(merge["full_s"]),
        c.spread(merge["merge_only_s"]),
        c.spread(load["load_s"]),
    )
    # per node: 2 ranks, 4 h each, rank 1 shifted 10 min: 4 h 10 min covered -> 25/6 h of energy
    print(
        f"job: {merge['files']} files, {merge['bytes'] / MIB:.1f} MiB, "
        f"{merge['channels']} merged channels; merged energy {merge['energy_j']:.6g} J "
        f"(one 1 h report: {one_j:.6g} J)"
    )
    print(f"merge_paths (load + merge): {full.text('{:.3f}', ' s')}")
    print(f"merge_reports alone:        {alone.text('{:.3f}', ' s')}")
    print(f"RSS high-water growth:      {merge['maxrss_growth_mib']:.1f} MiB")
    print(
        f"load one {load['hours']:.0f} h report ({load['bytes'] / MIB:.2f} MiB, measured in "
        f"{made_s:.0f} s): {load_s.text('{:.3f}', ' s')}"
    )
    worst = max(
        full.median / MERGE_TARGET_S,
        merge["maxrss_growth_mib"] / MERGE_TARGET_MIB,
        load_s.median / LOAD_TARGET_S,
    )
    result = c.Result(
        name="merge",
        what="merge 64 reports of 9 channels x 1 h (load + merge); load one 72 h report",
        figure=full.median,
        unit="s",
        target=MERGE_TARGET_S,
        passed=worst <= 1.0,
        spread=(
            f"merge_paths {full.text('{:.3f}', ' s')}; merge alone {alone.text('{:.3f}', ' s')}; "
            f"RSS growth {merge['maxrss_growth_mib']:.1f} MiB (target {MERGE_TARGET_MIB:g}); "
            f"load {load['hours']:.0f} h report {load_s.text('{:.3f}', ' s')} "
            f"(target {LOAD_TARGET_S:g} s)"
        ),
        rule="median merge_paths time <= 2 s, RSS growth <= 300 MiB and median 72 h load <= 1 s",
        details={"merge": merge, "load": load, "one_report_j": one_j},
    )
    return c.finish(result, args)


if __name__ == "__main__":
    sys.exit(main())
