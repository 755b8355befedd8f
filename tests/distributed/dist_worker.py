"""A torchrun worker for tests/distributed/test_dist_launch.py (not a test module).

Scenario from the environment:
  BW_OUT        output directory (rank files and job report)
  BW_SCENARIO   "basic" | "late_group" | "hang" | "kill" | "never" (the process group is
                created after the meter started and the last rank never stops its meter: it
                exits once rank 0 has written its summary)
  BW_TIMEOUT    gather_timeout_s
  BW_SECONDS    measured seconds (default 1.0)
Every node gets a fake NVML with 2 GPUs of different power (100 W and 250 W; UUIDs derived from
the node id). The meter auto-detects its backends with distributed=True: NVML on the rank's own
GPU, and the CPU figure of the node (RAPL where there is one, else the machine-wide estimate).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import torch
import torch.distributed as dist

from bertwatt.distributed import rank_info
from bertwatt.meter import EnergyMeter
from bertwatt.testing import FakeGPU, FakeNVML

GPU_W = (100.0, 250.0)


def main() -> int:
    out = os.environ["BW_OUT"]
    scenario = os.environ.get("BW_SCENARIO", "basic")
    timeout = float(os.environ.get("BW_TIMEOUT", "60"))
    seconds = float(os.environ.get("BW_SECONDS", "1.0"))
    late = scenario in ("late_group", "never")
    if not late:
        dist.init_process_group("gloo")
    info = rank_info()
    node = info.node_id
    fake = FakeNVML(
        [
            FakeGPU("NVIDIA A100", uuid=f"GPU-{node}-0", power_w=GPU_W[0]),
            FakeGPU("NVIDIA H100", uuid=f"GPU-{node}-1", power_w=GPU_W[1]),
        ]
    )
    with fake.install():
        # auto-detection on each rank: its own GPU (NVML on the fake), the node's CPU figure
        meter = EnergyMeter(
            interval_s=0.05,
            distributed=True,
            output_dir=out,
            gather_timeout_s=timeout,
            checkpoint_interval_s=3600.0,
        )
        meter.start()
        if late:
            dist.init_process_group("gloo")
        time.sleep(seconds)
        meter.checkpoint()
        if scenario == "kill" and info.rank == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        if scenario == "kill":
            time.sleep(20)  # torchrun tears this rank down when rank 1 dies
        if scenario == "hang" and info.rank == info.world_size - 1:
            time.sleep(timeout + 3.0)
        if scenario == "never" and info.rank == info.world_size - 1:
            return never_stop(out, meter)
        t0 = time.monotonic()
        report = meter.stop(warn=False)
        stop_s = time.monotonic() - t0
        job = meter.job_report
    collective_ok = None
    if scenario in ("basic", "late_group"):
        # the user's own collectives on the default group still match after the gather
        t = torch.tensor([float(info.rank + 1)])
        dist.all_reduce(t)
        collective_ok = t.item() == info.world_size * (info.world_size + 1) / 2
    summary = {
        "rank": info.rank,
        "energy_j": report.energy_j,
        "channels": [c.name for c in report.channels],
        "problems": meter._dist.session.problems,
        "job": job is not None,
        "collective_ok": collective_ok,
        "stop_s": stop_s,
    }
    with open(os.path.join(out, f"worker-{info.node_id}-{info.rank}.out"), "w") as fh:
        json.dump(summary, fh)
    dist.destroy_process_group()
    return 0


def never_stop(out: str, meter: EnergyMeter) -> int:
    """The rank that never stops its meter: wait (at most 120 s) for rank 0's summary, then
    leave without stop() and without a word to the process group."""
    deadline = time.monotonic() + 120.0
    while time.monotonic() < deadline and not any(
        name.startswith("worker-") and name.endswith("-0.out") for name in os.listdir(out)
    ):
        time.sleep(0.1)
    assert meter.running
    return 0


if __name__ == "__main__":
    sys.exit(main())
