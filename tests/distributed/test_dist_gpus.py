"""GPU ownership through the real NVML backend and the fake pynvml (2 GPUs of different power)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bertwatt.backends.nvml import NVMLBackend
from bertwatt.distributed import RankInfo, gpu_ownership, node_gpus
from bertwatt.meter import EnergyMeter
from bertwatt.testing import FakeClock, FakeGPU, FakeNVML

UUIDS = ["GPU-11111111-aaaa", "GPU-22222222-bbbb", "GPU-33333333-cccc", "GPU-44444444-dddd"]


def info(local_rank: int, local_world: int = 2, rank: int | None = None) -> RankInfo:
    return RankInfo(
        rank=local_rank if rank is None else rank,
        local_rank=local_rank,
        world_size=max(local_world, 1),
        local_world_size=local_world,
        node_rank=0,
        node_id="n0",
        node_name="host",
        launcher="torchrun",
        job_id=None,
        restart=0,
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def nvml(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNVML]:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    gpus = [
        FakeGPU("NVIDIA A100", uuid=UUIDS[0], power_w=100.0),
        FakeGPU("NVIDIA A100", uuid=UUIDS[1], power_w=250.0),
    ]
    fake = FakeNVML(gpus, clock=clock)
    with fake.install():
        yield fake


@pytest.mark.parametrize("local_rank", [0, 1])
def test_local_rank_th_visible_gpu(nvml: FakeNVML, local_rank: int) -> None:
    own = gpu_ownership(info(local_rank), cuda_uuid=None)
    assert own.owned == (UUIDS[local_rank],)
    assert own.visible == tuple(UUIDS[:2])
    assert "LOCAL_RANK" in own.how
    assert not own.shared


def test_each_rank_report_shows_only_its_gpu(nvml: FakeNVML, clock: FakeClock) -> None:
    energies = []
    for local_rank in (0, 1):
        own = gpu_ownership(info(local_rank), cuda_uuid=None)
        backend = NVMLBackend(devices=list(own.owned))
        with EnergyMeter(backends=[backend], clock=clock) as meter:
            clock.advance(10.0)
        report = meter.report
        assert [c.info["uuid"] for c in report.channels] == list(own.owned)
        energies.append(report.energy_j)
    assert energies == pytest.approx([1000.0, 2500.0], abs=0.01)


def test_single_visible_gpu_per_process(nvml: FakeNVML, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    own = gpu_ownership(info(1), cuda_uuid=None)
    assert own.owned == (UUIDS[1],)
    assert own.visible == (UUIDS[1],)
    assert "only GPU visible" in own.how


def test_deepspeed_whole_list_visible(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    # DeepSpeed's launcher leaves every GPU of the node visible to every rank.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    fake = FakeNVML([FakeGPU(uuid=u) for u in UUIDS], clock=clock)
    with fake.install():
        owned = [gpu_ownership(info(r, 4), cuda_uuid=None).owned for r in range(4)]
    assert owned == [(u,) for u in UUIDS]


def test_visible_order_follows_cuda_visible_devices(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,2")
    fake = FakeNVML([FakeGPU(uuid=u) for u in UUIDS], clock=clock)
    with fake.install():
        assert gpu_ownership(info(0), cuda_uuid=None).owned == (UUIDS[3],)
        assert gpu_ownership(info(1), cuda_uuid=None).owned == (UUIDS[2],)


def test_ray_worker_on_cuda_2(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    # A Ray worker with local rank 0 whose current CUDA device is cuda:2: matched by UUID.
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fake = FakeNVML([FakeGPU(uuid=u) for u in UUIDS], clock=clock)
    with fake.install():
        own = gpu_ownership(info(0, 1), cuda_uuid=UUIDS[2])
    assert own.owned == (UUIDS[2],)
    assert "matched to NVML by UUID" in own.how


def test_cuda_uuid_of_a_mig_instance_owns_its_parent(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    mig = "MIG-9f0e7d6c-0000-1111-2222-333344445555"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", mig)
    fake = FakeNVML([FakeGPU(uuid=UUIDS[0], mig_devices=[mig])], clock=clock)
    with fake.install():
        own = gpu_ownership(info(0, 1), cuda_uuid=mig)
    assert own.owned == (UUIDS[0],)


def test_more_ranks_than_gpus_share(nvml: FakeNVML) -> None:
    owned = [gpu_ownership(info(r, 4), cuda_uuid=None) for r in range(4)]
    assert [o.owned[0] for o in owned] == [UUIDS[0], UUIDS[1], UUIDS[0], UUIDS[1]]
    assert [o.shared for o in owned] == [False, False, True, True]


def test_no_nvml_owns_nothing_and_says_why(clock: FakeClock) -> None:
    fake = FakeNVML([FakeGPU()], clock=clock, init_error="driver_not_loaded")
    with fake.install():
        own = gpu_ownership(info(0), cuda_uuid=None)
    assert own.owned == ()
    assert "no GPU visible" in own.how and "nvmlInit failed" in own.how


def test_injected_visible_list() -> None:
    own = gpu_ownership(info(1), cuda_uuid=None, visible=UUIDS[:3])
    assert own.owned == (UUIDS[1],)


def test_node_gpus_counts_shared_gpu_once_and_lists_unused() -> None:
    claims = [
        (0, {"owned": [UUIDS[0]], "visible": UUIDS}),
        (2, {"owned": [UUIDS[0]], "visible": UUIDS}),
        (1, {"owned": [UUIDS[1]], "visible": UUIDS}),
    ]
    table = node_gpus(claims)
    assert table[UUIDS[0]].ranks == [0, 2] and table[UUIDS[0]].counted
    assert table[UUIDS[1]].ranks == [1] and table[UUIDS[1]].counted
    assert not table[UUIDS[2]].counted and table[UUIDS[2]].ranks == []
    assert not table[UUIDS[3]].counted
    assert list(table)[:2] == [UUIDS[0], UUIDS[1]]
