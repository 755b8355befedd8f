"""A rank's own share (bertwatt.distributed.share): one rule for rank reports and live figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bertwatt.distributed.job import Part, annotate, build_job_report, rank_meta
from bertwatt.distributed.ranks import RankInfo
from bertwatt.distributed.share import (
    SCALED_LOG_KEYS,
    UNSCALED_LOG_KEYS,
    gpu_sharers,
    rank_share_figures,
    share_of,
)
from bertwatt.integrations.logkeys import ALL_LOG_KEYS
from bertwatt.meter import EnergyMeter
from bertwatt.testing import FakeBackend, FakeChannel, FakeClock

SECONDS = 10.0


def test_every_log_key_is_classified_energy_or_not() -> None:
    # a new energy/* key must say whether it is energy (a rank logs its share) or not
    assert set(ALL_LOG_KEYS) == SCALED_LOG_KEYS | UNSCALED_LOG_KEYS
    assert not SCALED_LOG_KEYS & UNSCALED_LOG_KEYS


@pytest.mark.parametrize(
    ("local_rank", "local_world_size", "visible", "shared", "want"),
    [
        (0, 4, 2, True, 2),  # ranks 0 and 2 on GPU 0
        (1, 3, 2, True, 1),  # ranks 0, 2 on GPU 0; rank 1 alone on GPU 1
        (2, 3, 2, True, 2),
        (0, 2, 2, False, 1),
        (3, 4, 0, True, 1),  # nothing visible: nothing to share
    ],
)
def test_gpu_sharers(
    local_rank: int, local_world_size: int, visible: int, shared: bool, want: int
) -> None:
    gpus = {"owned": ["GPU-0"], "visible": [f"GPU-{i}" for i in range(visible)], "shared": shared}
    assert gpu_sharers(local_rank, local_world_size, gpus) == want
    assert gpu_sharers(local_rank, local_world_size, None) == 1


def channels(*specs: tuple[str, float, str, str]) -> list[FakeChannel]:
    return [
        FakeChannel(name, watts, kind="counter", domain=domain, scope=scope)  # type: ignore[arg-type]
        for name, watts, domain, scope in specs
    ]


def measured(chs: list[FakeChannel]) -> Any:
    clock = FakeClock()
    with EnergyMeter(backends=[FakeBackend(channels=chs, clock=clock)], clock=clock) as meter:
        clock.advance(SECONDS)
    return meter.report


def test_share_counts_what_a_total_counts_not_a_wall_meter_beside_components() -> None:
    rep = measured(
        channels(
            ("gpu:0", 100.0, "gpu", "gpu-board"),
            ("cpu:package-0", 40.0, "cpu", "cpu-package"),
            ("plug", 400.0, "system", "system"),
        )
    )
    share = share_of(((c, c.energy_j) for c in rep.channels), 2)
    assert share is not None
    assert share.total_j == pytest.approx(rep.energy_j) == pytest.approx(140.0 * SECONDS)
    assert share.energy_j == pytest.approx(120.0 * SECONDS)
    assert share.node_channels == ("cpu:package-0",)
    assert share.fraction == pytest.approx(120.0 / 140.0)


def test_no_share_for_a_rank_alone_on_its_node() -> None:
    rep = measured(channels(("cpu:package-0", 40.0, "cpu", "cpu-package")))
    assert share_of(((c, c.energy_j) for c in rep.channels), 1) is None


def info(rank: int, local: int, local_size: int) -> RankInfo:
    return RankInfo(
        rank=rank,
        local_rank=local,
        world_size=local_size,
        local_world_size=local_size,
        node_rank=0,
        node_id="n0",
        node_name="n0",
        launcher="torchrun",
        job_id=None,
        restart=0,
    )


def test_shares_of_ranks_sharing_a_gpu_add_up_to_the_node() -> None:
    """3 ranks, 2 GPUs: ranks 0 and 2 measure GPU 0 (100 W), rank 1 GPU 1 (250 W), each reads
    the CPU package (30 W). The job counts 380 W once; the three shares add up to it."""
    watts = {0: 100.0, 1: 250.0}
    parts = []
    for r in range(3):
        g = r % 2
        chs = [
            FakeChannel(
                f"gpu:{g}",
                watts[g],
                kind="counter",
                domain="gpu",
                scope="gpu-board",
                info={"uuid": f"GPU-{g}"},
            ),
            FakeChannel("cpu:package-0", 30.0, kind="counter", domain="cpu", scope="cpu-package"),
        ]
        own = {"owned": [f"GPU-{g}"], "visible": ["GPU-0", "GPU-1"], "shared": True}
        facts = info(r, r, 3).as_dict() | {"gpus": own}
        parts.append(Part(r, annotate(measured(chs), facts), "self" if r == 0 else "gathered"))
    shares = [rank_meta(p.report)["own_share"]["energy_j"] for p in parts]
    assert shares == pytest.approx([(50 + 10) * SECONDS, (250 + 10) * SECONDS, 60 * SECONDS])
    job = build_job_report(parts, world_size=3)
    assert job.nodes[0].energy_j == pytest.approx(380.0 * SECONDS)
    assert sum(shares) == pytest.approx(job.nodes[0].energy_j)
    assert "split among the 2 ranks sharing it" in rank_meta(parts[0].report)["own_share"]["basis"]


def test_live_figures_of_a_plain_meter_are_unchanged_outside_a_job() -> None:
    clock = FakeClock()
    chs = channels(("cpu:package-0", 40.0, "cpu", "cpu-package"))
    meter = EnergyMeter(backends=[FakeBackend(channels=chs, clock=clock)], clock=clock)
    with meter:
        clock.advance(1.0)
        figures = {"energy/kwh": 1.0, "energy/padding_share": 0.5}
        assert rank_share_figures(meter, figures) == figures


def test_live_share_of_a_running_rank(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for k, v in {
        "RANK": "1",
        "LOCAL_RANK": "1",
        "WORLD_SIZE": "2",
        "LOCAL_WORLD_SIZE": "2",
    }.items():
        monkeypatch.setenv(k, v)
    clock = FakeClock()
    chs = channels(
        ("gpu:1", 250.0, "gpu", "gpu-board"), ("cpu:package-0", 30.0, "cpu", "cpu-package")
    )
    backends = [FakeBackend(channels=chs, clock=clock)]
    meter = EnergyMeter(backends=backends, clock=clock, output_dir=tmp_path)
    with meter:
        clock.advance(SECONDS)
        whole = meter.snapshot().energy_j
        figures = {"energy/kwh": whole / 3.6e6, "energy/padding_share": 0.25, "other": 7.0}
        got = rank_share_figures(meter, figures)
    assert got["energy/kwh"] * 3.6e6 == pytest.approx((250.0 + 15.0) * SECONDS, rel=1e-6)
    assert got["energy/padding_share"] == 0.25 and got["other"] == 7.0
    # the same rule as the rank's report
    assert rank_meta(meter.report)["own_share"]["energy_j"] == pytest.approx(
        got["energy/kwh"] * 3.6e6, rel=1e-6
    )
