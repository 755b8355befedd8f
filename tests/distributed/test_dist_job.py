"""The job report built from real rank reports (EnergyMeter over fakes), without launching."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bertwatt.distributed import RankInfo, RankSession, build_job_report
from bertwatt.distributed.gpus import GPUOwnership
from bertwatt.distributed.job import Part, annotate, rank_meta, thin_report
from bertwatt.distributed.session import decode_report, encode_report
from bertwatt.errors import ConfigError
from bertwatt.meter import EnergyMeter
from bertwatt.testing import FakeBackend, FakeChannel, FakeClock

GPU_W = {0: 100.0, 1: 250.0}
CPU_W = 30.0
SECONDS = 10.0


def rank(r: int, node: str, local: int, world: int = 4) -> RankInfo:
    return RankInfo(
        rank=r,
        local_rank=local,
        world_size=world,
        local_world_size=2,
        node_rank=0 if node == "node-a" else 1,
        node_id=node,
        node_name=node,
        launcher="torchrun",
        job_id="j1",
        restart=0,
    )


def measure(clock: FakeClock, info: RankInfo, *, process_cpu: bool = False, **kw: Any) -> Any:
    """One rank's report: its own GPU and the node's CPU package counter (read by every rank)."""
    uuid = f"GPU-{info.node_id}-{info.local_rank}"
    gpu = FakeChannel(
        f"gpu:{info.local_rank}",
        GPU_W[info.local_rank],
        kind="counter",
        domain="gpu",
        scope="gpu-board",
        info={"uuid": uuid},
    )
    channels = [
        gpu,
        FakeChannel("cpu:package-0", CPU_W, kind="counter", domain="cpu", scope="cpu-package"),
    ]
    backends: list[Any] = [FakeBackend(channels=channels, clock=clock)]
    with EnergyMeter(backends=backends, clock=clock, **kw) as meter:
        clock.advance(SECONDS)
    own = GPUOwnership(
        owned=(uuid,), visible=(f"GPU-{info.node_id}-0", f"GPU-{info.node_id}-1"), how="test"
    )
    facts = info.as_dict() | {"gpus": own.as_dict()}
    return annotate(meter.report, facts)


def two_by_two(clock: FakeClock, **kw: Any) -> list[Part]:
    infos = [rank(0, "node-a", 0), rank(1, "node-a", 1), rank(2, "node-b", 0), rank(3, "node-b", 1)]
    # the ranks measure the same window: reset the fake clock between them
    parts = []
    for i in infos:
        c = FakeClock()
        parts.append(Part(i.rank, measure(c, i, **kw), "self" if i.rank == 0 else "gathered"))
    return parts


def test_two_nodes_two_ranks_each_sensor_once() -> None:
    parts = two_by_two(FakeClock())
    job = build_job_report(parts, world_size=4, job={"job_id": "j1", "launcher": "torchrun"})
    per_node = (GPU_W[0] + GPU_W[1] + CPU_W) * SECONDS
    assert job.energy_j == pytest.approx(2 * per_node, rel=1e-6)
    assert job.status == "complete" and job.missing_ranks == []
    assert [n.node_id for n in job.nodes] == ["node-a", "node-b"]
    for node in job.nodes:
        assert node.energy_j == pytest.approx(per_node, rel=1e-6)
        assert sorted(node.channels) == ["cpu:package-0", "gpu:0", "gpu:1"]
        assert [(g.ranks, g.counted) for g in node.gpus] == [
            ([node.ranks[0]], True),
            ([node.ranks[1]], True),
        ]
    assert [r.rank for r in job.ranks] == [0, 1, 2, 3]
    assert job.ranks[1].energy_j == pytest.approx((GPU_W[1] + CPU_W) * SECONDS, rel=1e-6)
    assert job.extra["job"] == {
        "world_size": 4,
        "job_id": "j1",
        "launcher": "torchrun",
        "restart": 0,
    }


def test_nodes_sharing_a_hostname_stay_apart() -> None:
    parts = two_by_two(FakeClock())
    assert len({p.report.host.hostname for p in parts}) == 1
    job = build_job_report(parts, world_size=4)
    assert len(job.nodes) == 2
    assert len([c for c in job.channels if c.name == "cpu:package-0"]) == 2


def test_missing_rank_makes_a_partial_job() -> None:
    parts = two_by_two(FakeClock())[:3]
    job = build_job_report(parts, world_size=4, missing={3: "no report within 5 s"})
    assert job.status == "partial"
    assert job.missing_ranks == [3]
    assert job.ranks[3].source == "missing" and "5 s" in (job.ranks[3].problem or "")
    assert any("rank 3: no report within 5 s" in w for w in job.warnings)
    # rank 3's GPU is lost, node-b's CPU package still counted once through rank 2
    assert job.nodes[1].energy_j == pytest.approx((GPU_W[0] + CPU_W) * SECONDS, rel=1e-6)


def test_missing_rank_with_its_file_is_merged_and_still_named() -> None:
    parts = two_by_two(FakeClock())
    parts[3].source = "file"
    job = build_job_report(parts, world_size=4, missing={3: "timed out"})
    assert job.status == "partial" and job.missing_ranks == [3]
    assert job.ranks[3].source == "file"
    assert job.energy_j == pytest.approx(2 * (GPU_W[0] + GPU_W[1] + CPU_W) * SECONDS, rel=1e-6)


def test_uneven_three_plus_one() -> None:
    infos = [rank(0, "node-a", 0), rank(1, "node-a", 1), rank(2, "node-a", 0), rank(3, "node-b", 0)]
    parts = [Part(i.rank, measure(FakeClock(), i), "gathered") for i in infos]
    job = build_job_report(parts, world_size=4)
    a, b = job.nodes
    assert a.ranks == [0, 1, 2] and b.ranks == [3]
    # ranks 0 and 2 share GPU 0 of node-a: counted once, both listed
    shared = next(g for g in a.gpus if g.uuid == "GPU-node-a-0")
    assert shared.ranks == [0, 2] and shared.counted
    assert a.energy_j == pytest.approx((GPU_W[0] + GPU_W[1] + CPU_W) * SECONDS, rel=1e-6)
    assert b.energy_j == pytest.approx((GPU_W[0] + CPU_W) * SECONDS, rel=1e-6)
    unused = next(g for g in b.gpus if g.uuid == "GPU-node-b-1")
    assert not unused.counted and unused.ranks == []


def test_per_process_estimate_is_summed_machine_wide_counted_once() -> None:
    def report(r: int, mode: str) -> Part:
        ch = FakeChannel("cpu:estimate", 20.0, domain="cpu", scope="cpu-package", estimated=True)
        clock = FakeClock()
        with EnergyMeter(backends=[FakeBackend(channels=[ch], clock=clock)], clock=clock) as m:
            clock.advance(SECONDS)
        rep = m.report
        model = "P = capacity_w x u: this process's share" if mode == "process" else "linear"
        chans = [
            c.model_copy(
                update={
                    "provenance": c.provenance.model_copy(
                        update={"assumptions": {"power_model": model}}
                    )
                }
            )
            for c in rep.channels
        ]
        rep = rep.model_copy(update={"channels": chans})
        return Part(r, annotate(rep, rank(r, "node-a", r).as_dict()), "gathered")

    per_process = build_job_report([report(0, "process"), report(1, "process")], world_size=2)
    assert per_process.energy_j == pytest.approx(2 * 20.0 * SECONDS, rel=1e-6)
    assert sorted(per_process.nodes[0].channels) == ["cpu:estimate@rank0", "cpu:estimate@rank1"]
    machine = build_job_report([report(0, "system"), report(1, "system")], world_size=2)
    assert machine.energy_j == pytest.approx(20.0 * SECONDS, rel=1e-6)


def test_carbon_per_node() -> None:
    parts = two_by_two(FakeClock(), carbon="FR")
    job = build_job_report(parts, world_size=4)
    intensity = parts[0].report.carbon.intensity_g_per_kwh
    for node in job.nodes:
        assert node.emissions_g == pytest.approx(node.energy_j / 3.6e6 * intensity, rel=1e-6)
    assert job.emissions_g == pytest.approx(sum(n.emissions_g for n in job.nodes), rel=1e-9)
    assert job.carbon is not None and job.carbon.emissions_g == pytest.approx(job.emissions_g)


def test_thin_and_wire_round_trip() -> None:
    rep = measure(FakeClock(), rank(1, "node-a", 1), interval_s=0.01)
    # (counters are read about once a second between edges: a few points per second of window)
    assert max(len(c.timeline) for c in rep.channels) > 8
    thin = thin_report(rep, 4)
    assert max(len(c.timeline) for c in thin.channels) <= 4
    assert thin.channels[0].timeline[-1] == rep.channels[0].timeline[-1]
    back = decode_report(encode_report(rep, 16))
    assert type(back) is type(rep)
    assert back.energy_j == rep.energy_j and rank_meta(back)["rank"] == 1


def test_session_without_process_group_writes_files_only(tmp_path: Path) -> None:
    info = rank(1, "node-a", 1, world=2)
    session = RankSession(tmp_path / "out", gather_timeout_s=1, info=info).start()
    rep = measure(FakeClock(), info)
    assert session.finish(rep) is None
    assert session.path is not None and session.path.name == "node-node-a-rank1.json"
    from bertwatt.report.models import EnergyReport

    loaded = EnergyReport.load(session.path)
    assert rank_meta(loaded)["rank"] == 1 and loaded.energy_j == rep.energy_j
    assert any("bertwatt merge" in p for p in session.problems)


def test_session_single_process_needs_no_gather(tmp_path: Path) -> None:
    info = rank(0, "solo", 0, world=1)
    session = RankSession(tmp_path, info=info).start()
    assert session.finish(measure(FakeClock(), info)) is None
    assert session.problems == []
    assert [p.name for p in tmp_path.iterdir()] == ["node-solo-rank0.json"]


def test_session_write_failure_is_recorded_not_raised(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    info = rank(0, "solo", 0, world=1)
    session = RankSession(blocker / "sub", info=info).start()
    assert session.finish(measure(FakeClock(), info)) is None
    assert session.problems and "failed" in session.problems[0]


@pytest.mark.parametrize("bad", [0, -1, float("nan"), "5", True, 1e9])
def test_bad_gather_timeout(bad: object, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="gather_timeout_s"):
        RankSession(tmp_path, gather_timeout_s=bad)  # type: ignore[arg-type]


def test_bad_output_dir() -> None:
    with pytest.raises(ConfigError, match="output_dir"):
        RankSession("")


def test_rank_report_states_its_own_share_of_node_energy() -> None:
    parts = two_by_two(FakeClock())
    rep = parts[1].report  # rank 1 of node-a: gpu:1 (250 W) + the node's CPU package (30 W)
    share = rank_meta(rep)["own_share"]
    assert share["own_j"] == pytest.approx(GPU_W[1] * SECONDS, rel=1e-6)
    assert share["node_level_j"] == pytest.approx(CPU_W * SECONDS, rel=1e-6)
    assert share["energy_j"] == pytest.approx((GPU_W[1] + CPU_W / 2) * SECONDS, rel=1e-6)
    assert any(
        "own share" in w and "1/2 of the node-level cpu:package-0" in w for w in rep.warnings
    )
    # the shares of a node's ranks add up to the node's energy in the job report
    job = build_job_report(parts, world_size=4)
    shares = [rank_meta(p.report)["own_share"]["energy_j"] for p in parts[:2]]
    assert sum(shares) == pytest.approx(job.nodes[0].energy_j, rel=1e-6)


def test_job_report_drops_the_ranks_share_notes() -> None:
    job = build_job_report(two_by_two(FakeClock()), world_size=4)
    assert not any("own share" in w for w in job.warnings)


def _lows_highs(channels: list[Any]) -> tuple[float, float]:
    lows = sum(c.energy_interval_j[0] for c in channels)
    highs = sum(c.energy_interval_j[1] for c in channels)
    return lows, highs


def test_job_and_node_intervals_are_recomputed_from_the_channels_counted_once() -> None:
    parts = two_by_two(FakeClock())
    job = build_job_report(parts, world_size=4)
    for node, ranks in zip(job.nodes, (parts[:2], parts[2:]), strict=True):
        # the node's channels once: each rank's GPU, the CPU package of one rank
        gpus = [c for p in ranks for c in p.report.channels if c.domain == "gpu"]
        cpu = ranks[0].report.channel("cpu:package-0")
        assert node.energy_interval_j is not None
        assert node.energy_interval_j == pytest.approx(_lows_highs([*gpus, cpu]), rel=1e-9)
        low, high = node.energy_interval_j
        assert low < node.energy_j < high
        assert "intervals added" in (node.interval_basis or "")
    lows = sum(n.energy_interval_j[0] for n in job.nodes)
    highs = sum(n.energy_interval_j[1] for n in job.nodes)
    assert job.energy_interval_j == pytest.approx((lows, highs), rel=1e-9)
    assert "2 node(s)" in (job.interval_basis or "")
    # the rank reports' intervals are wider than a share: the job is not their sum
    rank_high = sum(p.report.energy_interval_j[1] for p in parts)
    assert job.energy_interval_j[1] < rank_high


def test_a_wall_meter_beside_components_is_compared_not_counted_in_node_or_job() -> None:
    """Local rank 0 polls a wall meter (issue #10); the node's energy stays its components, as in
    any report's total and in `bertwatt merge`, and the interval is around that energy."""
    parts = two_by_two(FakeClock())
    clock = FakeClock()
    plug = FakeChannel("plug", 900.0, kind="counter", domain="system", scope="system")
    with EnergyMeter(backends=[FakeBackend(channels=[plug], clock=clock)], clock=clock) as m:
        clock.advance(SECONDS)
    wall = m.report.channel("plug")
    rank0 = parts[0].report
    parts[0].report = rank0.model_copy(
        update={"channels": [*rank0.channels, wall.model_copy(update={"host": "node-a"})]}
    )
    job = build_job_report(parts, world_size=4)
    node_a = job.nodes[0]
    assert "plug" in node_a.channels
    assert node_a.energy_j == pytest.approx((GPU_W[0] + GPU_W[1] + CPU_W) * SECONDS, rel=1e-6)
    low, high = node_a.energy_interval_j
    assert low < node_a.energy_j < high
    assert job.energy_j == pytest.approx(2 * (GPU_W[0] + GPU_W[1] + CPU_W) * SECONDS, rel=1e-6)
    low, high = job.energy_interval_j
    assert low < job.energy_j < high


def test_a_channel_without_interval_leaves_its_node_and_the_job_without_one() -> None:
    parts = two_by_two(FakeClock())
    rank2 = parts[2].report
    parts[2].report = rank2.model_copy(
        update={
            "channels": [
                c.model_copy(update={"energy_interval_j": None}) if c.domain == "gpu" else c
                for c in rank2.channels
            ]
        }
    )
    job = build_job_report(parts, world_size=4)
    node_a, node_b = job.nodes
    assert node_a.energy_interval_j is not None
    assert node_b.energy_interval_j is None and "gpu:0" in (node_b.interval_basis or "")
    assert job.energy_interval_j is None and "node-b" in (job.interval_basis or "")


@pytest.fixture
def gloo_group(tmp_path: Path) -> Any:
    """A real gloo process group of one process (FileStore in tmp_path), destroyed after."""
    pytest.importorskip("torch")
    import torch.distributed as dist

    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        yield dist
    finally:
        dist.destroy_process_group()


def no_side_group(dist: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.distributed refuses the gloo side group (a torch built without gloo says this)."""

    def new_group(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("Distributed package doesn't have Gloo built in")

    monkeypatch.setattr(dist, "new_group", new_group)


def test_side_group_refused_rank_0_writes_the_job_from_the_files_present(
    gloo_group: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    no_side_group(gloo_group, monkeypatch)
    out = tmp_path / "out"
    info0, info1 = rank(0, "node-a", 0, world=2), rank(1, "node-a", 1, world=2)
    # rank 1 measured and wrote its file (it could not send it either)
    s1 = RankSession(out, gather_timeout_s=60, info=info1).start()
    s0 = RankSession(out, gather_timeout_s=60, info=info0).start()
    assert s1.finish(measure(FakeClock(), info1)) is None
    assert any("Gloo built in" in p and "its file only" in p for p in s1.problems)
    job = s0.finish(measure(FakeClock(), info0))  # returns at once: nothing to wait for
    assert job is not None and job.status == "partial" and job.missing_ranks == [1]
    entry = job.ranks[1]
    assert entry.source == "file" and entry.file == "node-node-a-rank1.json"
    assert "creating the gloo side group failed" in (entry.problem or "")
    assert any("Gloo built in" in w for w in job.warnings)
    assert job.nodes[0].energy_j == pytest.approx((GPU_W[0] + GPU_W[1] + CPU_W) * SECONDS)
    assert (out / "job.json").exists()
    assert any("side group failed" in p for p in s0.problems)


def test_side_group_refused_and_no_file_names_the_rank_missing(
    gloo_group: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    no_side_group(gloo_group, monkeypatch)
    session = RankSession(tmp_path, gather_timeout_s=60, info=rank(0, "n", 0, world=3)).start()
    job = session.finish(measure(FakeClock(), rank(0, "n", 0, world=3)))
    assert job.missing_ranks == [1, 2] and [r.source for r in job.ranks] == [
        "self",
        "missing",
        "missing",
    ]
    assert all("Gloo built in" in (r.problem or "") for r in job.ranks[1:])
    assert any("partial job report: 2 rank(s) missing" in w for w in job.warnings)


def test_a_rerun_or_elastic_restart_never_overwrites_an_earlier_job_or_rank_file(
    gloo_group: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    no_side_group(gloo_group, monkeypatch)  # rank 0 writes the job from the files present

    def run(restart: int) -> Any:
        infos = [
            RankInfo(**(rank(r, "n", r, world=2).as_dict() | {"restart": restart})) for r in (1, 0)
        ]
        sessions = [RankSession(tmp_path, gather_timeout_s=60, info=i).start() for i in infos]
        jobs = [s.finish(measure(FakeClock(), i)) for s, i in zip(sessions, infos, strict=True)]
        return sessions[1].job_path, jobs[1]

    first_path, first = run(0)
    before = {p.name: p.read_bytes() for p in tmp_path.glob("*.json")}
    second_path, second = run(0)  # the same job run again in the same directory
    third_path, third = run(1)  # an elastic restart
    assert (first_path.name, second_path.name, third_path.name) == (
        "job.json",
        "job-a2.json",
        "job-r1.json",
    )
    assert sorted(p.name for p in tmp_path.glob("node-*.json")) == [
        "node-n-rank0-a2.json",
        "node-n-rank0-r1.json",
        "node-n-rank0.json",
        "node-n-rank1-a2.json",
        "node-n-rank1-r1.json",
        "node-n-rank1.json",
    ]
    for name, data in before.items():  # every earlier file as it was
        assert (tmp_path / name).read_bytes() == data
    assert first.ranks[1].file == "node-n-rank1.json"
    assert second.ranks[1].file == "node-n-rank1-a2.json"  # the latest attempt of that rank
    # the restarted attempt merges its own attempt's files only
    assert third.ranks[1].file == "node-n-rank1-r1.json"
