"""Benchmark: gathering 64 simulated ranks x 8 GPUs and building the job report (rank 0's work).

Method: one real rank report is measured with ``EnergyMeter`` over a ``FakeBackend`` on a
``FakeClock``: 1 simulated hour at 0.5 s, 8 GPU energy counters ``gpu:0..7`` plus the node's
``cpu:package-0/1`` and ``dram:0/1`` (12 channels, timelines up to ``timeline_points`` = 8192),
and 4 phases. It is copied into 64 rank reports on 8 nodes of 8 ranks (``BERTWATT_NODE_ID``-style
node ids ``node-0`` .. ``node-7``), each annotated with its rank facts and GPU ownership. This is
the heavy case: every rank carries all 8 GPUs of its node, as when each rank reads every GPU.

Timed, in a fresh child process:

- ``encode``: what every rank does before sending (thin timelines to 64 points, JSON), for all
  64 ranks one after the other (on a real job they run in parallel, one per rank);
- ``rank 0``: decoding the 63 payloads, merging them with its own report into the job report
  (``build_job_report``: nodes, ranks, GPUs counted once) and serialising it to JSON, as
  ``RankSession.finish`` does after the gather. The figure is this part; the network transfer of
  ~64 x the payload size over gloo is not simulated (see docs/distributed.md for measured
  launches).

Memory: the child's RSS growth from before the 64 reports exist to after the job report is
serialised, including the kernel high-water mark (``ru_maxrss``).

Target (issue #9): < 5 s and < 512 MiB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Any

import _common as c

RANKS = 64
RANKS_PER_NODE = 8
GPUS = 8
TARGET_S = 5.0
TARGET_MIB = 512.0
MIB = 1024 * 1024


def _base_report(hours: float) -> Any:
    from bertwatt import EnergyMeter
    from bertwatt.testing import FakeBackend, FakeChannel, FakeClock

    clock = FakeClock()
    channels = [
        FakeChannel(
            f"gpu:{i}",
            [(0.0, 250.0 + 10 * i), (hours * 1800.0, 120.0)],
            kind="counter",
            domain="gpu",
            scope="gpu-board",
            info={"uuid": f"GPU-{i:08d}"},
        )
        for i in range(GPUS)
    ]
    for s in range(2):
        channels.append(
            FakeChannel(f"cpu:package-{s}", 90.0, kind="counter", domain="cpu", scope="cpu-package")
        )
        channels.append(FakeChannel(f"dram:{s}", 12.0, kind="counter", domain="dram", scope="dram"))
    backend = FakeBackend(channels=channels, clock=clock)
    meter = EnergyMeter(backends=[backend], clock=clock, interval_s=0.5)
    meter.start()
    step = hours * 3600.0 / 4
    for phase in ("warmup", "train", "eval", "save"):
        with meter.phase(phase):
            clock.advance(step)
    return meter.stop(warn=False)


def _child(hours: float) -> dict[str, Any]:
    from bertwatt.distributed import RankInfo, build_job_report
    from bertwatt.distributed.job import Part, annotate
    from bertwatt.distributed.session import decode_report, encode_report

    base = _base_report(hours)
    rss0 = c.rss_bytes()
    reports = []
    for r in range(RANKS):
        node = r // RANKS_PER_NODE
        info = RankInfo(
            rank=r,
            local_rank=r % RANKS_PER_NODE,
            world_size=RANKS,
            local_world_size=RANKS_PER_NODE,
            node_rank=node,
            node_id=f"node-{node}",
            node_name=f"node-{node}",
            launcher="torchrun",
            job_id="bench",
            restart=0,
        )
        uuids = [f"GPU-{node:02d}{i:06d}" for i in range(GPUS)]
        channels = [
            ch.model_copy(update={"info": {**ch.info, "uuid": uuids[int(ch.name[4:])]}})
            if ch.domain == "gpu"
            else ch
            for ch in base.channels
        ]
        gpus = {"owned": [uuids[r % RANKS_PER_NODE]], "visible": uuids, "how": "bench"}
        rep = base.model_copy(update={"channels": channels})
        reports.append(annotate(rep, info.as_dict() | {"gpus": gpus}))
    t0 = time.perf_counter()
    payloads = [encode_report(rep) for rep in reports]
    encode_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    parts = [Part(0, reports[0], "self")]
    parts += [Part(r, decode_report(payloads[r]), "gathered") for r in range(1, RANKS)]
    job = build_job_report(parts, world_size=RANKS, job={"job_id": "bench"})
    text = job.model_dump_json(indent=2)
    rank0_s = time.perf_counter() - t1
    rss_end = c.rss_bytes()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "encode_s_all_ranks": encode_s,
        "rank0_s": rank0_s,
        "payload_bytes_per_rank": len(payloads[1]),
        "full_report_bytes": len(reports[1].model_dump_json()),
        "job_report_bytes": len(text),
        "rss_growth_mib": (max(rss_end, peak) - rss0) / MIB,
        "nodes": len(job.nodes),
        "channels": len(job.channels),
        "energy_j": job.energy_j,
        "timeline_points": max(len(ch.timeline) for ch in base.channels),
    }


def main() -> int:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--hours", type=float, default=1.0, help="simulated hours per rank report")
    p.add_argument("--repeat", type=int, default=5, help="fresh child processes")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(_child(args.hours)))
        return 0
    repeat = 2 if args.quick else args.repeat
    c.header(f"gather of {RANKS} simulated ranks x {GPUS} GPUs and the job report")
    runs = []
    for i in range(repeat):
        proc = subprocess.run(
            [sys.executable, __file__, "--child", "--hours", str(args.hours)],
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        r = runs[-1]
        print(
            f"run {i + 1}: rank 0 {r['rank0_s']:.3f} s, encode (64 ranks, serial) "
            f"{r['encode_s_all_ranks']:.3f} s, RSS growth {r['rss_growth_mib']:.1f} MiB, "
            f"payload {r['payload_bytes_per_rank'] / 1024:.0f} KiB/rank "
            f"(full report {r['full_report_bytes'] / 1024:.0f} KiB), "
            f"job report {r['job_report_bytes'] / 1024:.0f} KiB"
        )
    times = c.spread([r["rank0_s"] for r in runs])
    mem = max(r["rss_growth_mib"] for r in runs)
    result = c.Result(
        name="gather",
        what=f"gathering {RANKS} simulated ranks x {GPUS} GPUs and building the job report",
        figure=times.max,
        unit="s",
        target=TARGET_S,
        passed=times.max < TARGET_S and mem < TARGET_MIB,
        spread=f"rank 0 {times.text(unit=' s')}; worst RSS growth {mem:.1f} MiB",
        rule=f"worst rank-0 time < {TARGET_S:g} s and worst RSS growth < {TARGET_MIB:g} MiB",
        details={"runs": runs, "hours": args.hours},
    )
    return c.finish(result, args)


if __name__ == "__main__":
    sys.exit(main())
