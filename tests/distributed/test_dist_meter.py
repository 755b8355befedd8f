"""EnergyMeter(distributed=..., output_dir=..., gather_timeout_s=...) in one process, launcher
environments set with monkeypatch (no launching): GPU ownership, files, output, modes."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from bertwatt.errors import ConfigError
from bertwatt.meter import EnergyMeter
from bertwatt.report.models import EnergyReport
from bertwatt.testing import FakeBackend, FakeChannel, FakeClock, FakeGPU, FakeNVML

UUIDS = ("GPU-aaaa0000", "GPU-bbbb1111")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def rank1(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rank 1 of 2 on one node under torchrun, no process group."""
    for k, v in {
        "RANK": "1",
        "LOCAL_RANK": "1",
        "WORLD_SIZE": "2",
        "LOCAL_WORLD_SIZE": "2",
        "GROUP_RANK": "0",
        "BERTWATT_NODE_ID": "node-x",
    }.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


@pytest.fixture
def nvml(clock: FakeClock) -> Iterator[FakeNVML]:
    fake = FakeNVML(
        [FakeGPU(uuid=UUIDS[0], power_w=100.0), FakeGPU(uuid=UUIDS[1], power_w=250.0)], clock=clock
    )
    with fake.install():
        yield fake


def gpu_uuids(report: EnergyReport) -> list[str]:
    return [c.info["uuid"] for c in report.channels if c.domain == "gpu"]


def test_auto_rank_measures_only_its_gpu_and_writes_its_file(
    rank1: None, nvml: FakeNVML, clock: FakeClock, tmp_path: Path
) -> None:
    with EnergyMeter(clock=clock, output_dir=tmp_path) as meter:
        clock.advance(10.0)
    assert gpu_uuids(meter.report) == [UUIDS[1]]
    assert meter.report.channel("gpu:1").energy_j == pytest.approx(2500.0, abs=0.01)
    assert meter.job_report is None  # "auto" does not gather a plain meter
    path = tmp_path / "node-node-x-rank1.json"
    saved = json.loads(path.read_text())
    facts = saved["extra"]["distributed"]
    assert (facts["rank"], facts["world_size"], facts["node_id"]) == (1, 2, "node-x")
    assert facts["gpus"]["owned"] == [UUIDS[1]] and facts["gpus"]["visible"] == list(UUIDS)
    assert all(c["host"] == "node-x" for c in saved["channels"])


def test_distributed_false_measures_this_process_alone(
    rank1: None, nvml: FakeNVML, clock: FakeClock, tmp_path: Path
) -> None:
    with EnergyMeter(clock=clock, distributed=False, output_dir=tmp_path) as meter:
        clock.advance(10.0)
    assert gpu_uuids(meter.report) == list(UUIDS)
    assert "distributed" not in meter.report.extra
    assert list(tmp_path.iterdir()) == []
    assert meter.job_report is None


def test_true_without_process_group_writes_files_only(
    rank1: None, clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    backend = FakeBackend(channels=[FakeChannel("gpu:0", 50.0, kind="counter")], clock=clock)
    caplog.set_level(logging.WARNING, logger="bertwatt")
    with EnergyMeter([backend], clock=clock, distributed=True, output_dir=tmp_path) as meter:
        clock.advance(4.0)
    assert meter.job_report is None
    assert [p.name for p in tmp_path.iterdir()] == ["node-node-x-rank1.json"]
    assert "bertwatt merge" in caplog.text


def test_single_process_true_needs_no_gather(
    clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k in ("RANK", "WORLD_SIZE", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("BERTWATT_NODE_ID", "solo")
    backend = FakeBackend(channels=[FakeChannel("gpu:0", 50.0, kind="counter")], clock=clock)
    with EnergyMeter([backend], clock=clock, distributed=True, output_dir=tmp_path) as meter:
        clock.advance(2.0)
    assert [p.name for p in tmp_path.iterdir()] == ["node-solo-rank0.json"]
    assert meter.report.energy_j == pytest.approx(100.0)


def test_shared_output_is_written_by_rank_0_only(
    rank1: None, clock: FakeClock, tmp_path: Path
) -> None:
    out = tmp_path / "report.json"
    backend = FakeBackend(channels=[FakeChannel("gpu:0", 50.0, kind="counter")], clock=clock)
    with EnergyMeter([backend], clock=clock, output=out) as meter:
        clock.advance(2.0)
    assert not out.exists()  # rank 1 must not overwrite rank 0's file
    assert (tmp_path / "node-node-x-rank1.json").exists()
    assert meter.report.energy_j == pytest.approx(100.0)


def test_checkpoint_writes_the_rank_file(rank1: None, clock: FakeClock, tmp_path: Path) -> None:
    backend = FakeBackend(channels=[FakeChannel("gpu:0", 50.0, kind="counter")], clock=clock)
    meter = EnergyMeter([backend], clock=clock, output_dir=tmp_path)
    meter.start()
    clock.advance(2.0)
    meter.checkpoint()
    path = tmp_path / "node-node-x-rank1.json"
    first = EnergyReport.load(path)
    assert first.status == "running" and first.extra["distributed"]["rank"] == 1
    clock.advance(2.0)
    meter.stop()
    assert EnergyReport.load(path).energy_j == pytest.approx(200.0)


def test_network_meters_polled_by_local_rank_0_only(rank1: None, clock: FakeClock) -> None:
    gpu = FakeBackend(channels=[FakeChannel("gpu:1", 50.0, kind="counter")], clock=clock)
    plug = FakeBackend(
        name="plug",
        channels=[FakeChannel("wall:plug", 300.0, scope="system", domain="system")],
        clock=clock,
        blocking=True,
    )
    with EnergyMeter([gpu, plug], clock=clock) as meter:
        clock.advance(2.0)
    assert [c.name for c in meter.report.channels] == ["gpu:1"]


def test_elastic_restart_keeps_the_earlier_attempt(
    rank1: None, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run() -> None:
        backend = FakeBackend(channels=[FakeChannel("gpu:0", 50.0, kind="counter")], clock=clock)
        with EnergyMeter([backend], clock=clock, output_dir=tmp_path):
            clock.advance(1.0)

    run()
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    run()
    run()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "node-node-x-rank1-r1-a2.json",
        "node-node-x-rank1-r1.json",
        "node-node-x-rank1.json",
    ]


def test_auto_survives_a_malformed_launcher_variable(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("RANK", "not-a-number")
    backend = FakeBackend(channels=[FakeChannel("gpu:0", 50.0, kind="counter")], clock=clock)
    caplog.set_level(logging.WARNING, logger="bertwatt")
    with EnergyMeter([backend], clock=clock) as meter:
        clock.advance(1.0)
    assert meter.report.energy_j == pytest.approx(50.0)
    assert "RANK='not-a-number'" in caplog.text
    with pytest.raises(ConfigError, match="RANK"):
        EnergyMeter([backend], clock=clock, distributed=True).start()


@pytest.mark.parametrize("bad", ["yes", 1, None, "True"])
def test_bad_distributed_value(bad: object) -> None:
    with pytest.raises(ConfigError, match="distributed must be"):
        EnergyMeter(distributed=bad)  # type: ignore[arg-type]


def test_bad_gather_timeout_and_output_dir() -> None:
    with pytest.raises(ConfigError, match="gather_timeout_s"):
        EnergyMeter(gather_timeout_s=0)
    with pytest.raises(ConfigError, match="output_dir"):
        EnergyMeter(output_dir="")
    with pytest.raises(ConfigError, match="NUL"):
        EnergyMeter(output_dir="a\0b")


def test_ray_worker_on_cuda_2_measures_that_gpu(
    clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Ray Train worker: rank 0 of 2 on its node (Ray sets torchrun-style variables), every
    GPU of the node visible, its current CUDA device cuda:2. It measures GPU 2 (matched by UUID
    from torch.cuda's device properties), not the LOCAL_RANK-th GPU."""
    torch = pytest.importorskip("torch")
    uuids = ["GPU-a0", "GPU-b1", "GPU-c2", "GPU-d3"]
    watts = [100.0, 150.0, 275.0, 300.0]
    for k, v in {
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "2",
        "LOCAL_WORLD_SIZE": "2",
    }.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("BERTWATT_NODE_ID", "ray-node")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)

    class Props:  # what torch.cuda.get_device_properties(2) gives: a UUID without "GPU-"
        uuid = "c2"

    # the CUDA runtime seen through torch, at its boundary (this machine has no GPU)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda d: Props() if d == 2 else None)
    fake = FakeNVML(
        [FakeGPU(uuid=u, power_w=w) for u, w in zip(uuids, watts, strict=True)], clock=clock
    )
    with fake.install(), EnergyMeter(clock=clock, output_dir=tmp_path) as meter:
        clock.advance(10.0)
    assert gpu_uuids(meter.report) == ["GPU-c2"]
    gpu = next(c for c in meter.report.channels if c.domain == "gpu")
    assert gpu.energy_j == pytest.approx(2750.0, abs=0.01)
    facts = json.loads((tmp_path / "node-ray-node-rank0.json").read_text())["extra"]["distributed"]
    assert facts["gpus"]["owned"] == ["GPU-c2"] and facts["gpus"]["visible"] == uuids
    assert "current CUDA device" in facts["gpus"]["how"]
