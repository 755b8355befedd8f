"""EnergyCallback on one rank of a distributed job (in process, Slurm's variables, no process
group): the live ``energy/*`` log figures are the rank's own share, not the node's sensors whole.

The fake clock moves only inside forward calls (see hf_helpers). The rank reads its own GPU
(100 W) and the node's CPU package (40 W), which the other rank of the node reads too: its own
share is 100 W + 40 W / 2 = 120 W, where the sensors it reads draw 140 W together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hf_helpers import TRAIN_S

from bertwatt.distributed.job import rank_meta
from bertwatt.integrations.report import FinetuneReport
from bertwatt.integrations.transformers import EnergyCallback
from bertwatt.testing import FakeBackend, FakeChannel, FakeClock

GPU_W, CPU_W = 100.0, 40.0
SHARE_W = GPU_W + CPU_W / 2


def sensors(clock: FakeClock) -> FakeBackend:
    gpu = FakeChannel(
        "gpu:1", GPU_W, kind="counter", domain="gpu", scope="gpu-board", info={"uuid": "GPU-b"}
    )
    cpu = FakeChannel("cpu:package-0", CPU_W, kind="counter", domain="cpu", scope="cpu-package")
    return FakeBackend(channels=[gpu, cpu], clock=clock)


def slurm_rank(monkeypatch: pytest.MonkeyPatch, local_world_size: int) -> None:
    """The last rank of a one-node Slurm job (srun starts the ranks; transformers reads none of
    these variables, so the Trainer runs as a single process)."""
    env = {
        "SLURM_PROCID": str(local_world_size - 1),
        "SLURM_LOCALID": str(local_world_size - 1),
        "SLURM_NODEID": "0",
        "SLURM_NTASKS": str(local_world_size),
        "SLURM_NTASKS_PER_NODE": str(local_world_size),
        "BERTWATT_NODE_ID": "node-x",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)


def train(make_trainer: Any, clock: FakeClock, **options: Any) -> tuple[Any, EnergyCallback]:
    cb = EnergyCallback(backends=[sensors(clock)], clock=clock, **options)
    trainer = make_trainer(callbacks=[cb], clock=clock, logging_steps=2)
    trainer.train()
    return trainer, cb


def test_live_figures_are_the_ranks_own_share(
    make_trainer: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    slurm_rank(monkeypatch, 2)
    clock = FakeClock()
    caplog.set_level("INFO", logger="bertwatt.distributed.share")
    trainer, cb = train(make_trainer, clock, log_metrics="all")
    logged = [h for h in trainer.state.log_history if "energy/kwh" in h]
    assert logged
    first = logged[0]
    assert first["step"] == 2
    assert first["energy/mean_power_w"] == pytest.approx(SHARE_W, rel=1e-6)
    assert first["energy/kwh"] == pytest.approx(2 * TRAIN_S * SHARE_W / 3.6e6, rel=1e-6)
    assert first["energy/j_per_step"] == pytest.approx(TRAIN_S * SHARE_W, rel=1e-6)
    r: FinetuneReport = cb.report
    assert isinstance(r, FinetuneReport)
    # the rank's report counts what it read whole and states its share, by the same rule
    share = rank_meta(r)["own_share"]
    assert share["fraction"] == pytest.approx(SHARE_W / (GPU_W + CPU_W), rel=1e-6)
    assert r.mean_power_w == pytest.approx(GPU_W + CPU_W, rel=1e-6)
    last = logged[-1]
    # J per token: the rank's share of its training energy over its tokens
    assert last["energy/j_per_token_padded"] * r.tokens_padded == pytest.approx(
        r.steps * TRAIN_S * SHARE_W, rel=1e-6
    )
    assert 0.0 <= last["energy/padding_share"] < 1.0  # not energy: kept as it is
    # the share is stated once in the log, with its rule
    said = [m for m in caplog.messages if "own share" in m]
    assert len(said) == 1 and "1/2 of the node-level cpu:package-0" in said[0]
    # files of the rank: its report next to the Trainer's output, and its rank file
    out = Path(trainer.args.output_dir) / "bertwatt"
    assert (out / "node-node-x-rank1.json").exists()
    assert cb.job_report is None  # no process group: files only


def test_a_rank_alone_on_its_node_logs_what_it_reads(
    make_trainer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    slurm_rank(monkeypatch, 1)
    clock = FakeClock()
    trainer, _ = train(make_trainer, clock)
    first = next(h for h in trainer.state.log_history if "energy/kwh" in h)
    assert first["energy/mean_power_w"] == pytest.approx(GPU_W + CPU_W, rel=1e-6)
