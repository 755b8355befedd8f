"""A torchrun worker for tests/distributed/test_dist_launch.py (not a test module).

Scenario from the environment:
  BW_OUT        output directory (rank files and job report)
  BW_SCENARIO   "basic" | "late_group" | "hang" | "kill"
  BW_TIMEOUT    gather_timeout_s
  BW_SECONDS    measured seconds (default 1.0)
Every node gets a fake NVML with 2 GPUs of different power (100 W and 250 W; UUIDs derived from
the node id) and a fake node-level CPU package counter (30 W) that every rank reads.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import torch.distributed as dist

from bertwatt.backends.nvml import NVMLBackend
from bertwatt.distributed import RankSession, gpu_ownership, rank_info
from bertwatt.meter import EnergyMeter
from bertwatt.testing import FakeBackend, FakeChannel, FakeGPU, FakeNVML

GPU_W = (100.0, 250.0)
CPU_W = 30.0


def main() -> int:
    out = os.environ["BW_OUT"]
    scenario = os.environ.get("BW_SCENARIO", "basic")
    timeout = float(os.environ.get("BW_TIMEOUT", "60"))
    seconds = float(os.environ.get("BW_SECONDS", "1.0"))
    late = scenario == "late_group"
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
        gpus = gpu_ownership(info)
        cpu = FakeChannel("cpu:package-0", CPU_W, kind="counter", domain="cpu", scope="cpu-package")
        backends = [NVMLBackend(devices=list(gpus.owned)), FakeBackend(channels=[cpu])]
        meter = EnergyMeter(backends=backends, interval_s=0.05)
        session = RankSession(out, gather_timeout_s=timeout, info=info, gpus=gpus)
        meter.start()
        session.start()
        if late:
            dist.init_process_group("gloo")
        time.sleep(seconds)
        session.write(meter.partial_report())
        if scenario == "kill" and info.rank == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        if scenario == "kill":
            time.sleep(20)  # torchrun tears this rank down when rank 1 dies
        if scenario == "hang" and info.rank == info.world_size - 1:
            time.sleep(timeout + 3.0)
        report = meter.stop(warn=False)
        job = session.finish(report)
    summary = {
        "rank": info.rank,
        "energy_j": report.energy_j,
        "channels": [c.name for c in report.channels],
        "problems": session.problems,
        "job": job is not None,
    }
    with open(os.path.join(out, f"worker-{info.node_id}-{info.rank}.out"), "w") as fh:
        json.dump(summary, fh)
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
