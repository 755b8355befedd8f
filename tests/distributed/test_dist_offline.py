"""The job report from rank files alone: ``bertwatt merge DIR`` after a job without a gather."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_dist_job import CPU_W, GPU_W, SECONDS, measure, rank

from bertwatt.cli import main
from bertwatt.distributed import RankInfo, RankSession
from bertwatt.distributed.offline import job_from_directory
from bertwatt.meter import EnergyMeter
from bertwatt.report.models import EnergyReport
from bertwatt.testing import FakeBackend, FakeChannel, FakeClock

NODE_J = (GPU_W[0] + GPU_W[1] + CPU_W) * SECONDS


def files_of(out: Path, infos: list[RankInfo]) -> None:
    """Each rank measures and writes its file; no process group, so nothing is gathered."""
    for info in infos:
        session = RankSession(out, gather_timeout_s=5, info=info).start()
        assert session.finish(measure(FakeClock(), info)) is None


def four_ranks(restart: int = 0) -> list[RankInfo]:
    infos = [rank(0, "node-a", 0), rank(1, "node-a", 1), rank(2, "node-b", 0), rank(3, "node-b", 1)]
    return [RankInfo(**(i.as_dict() | {"restart": restart})) for i in infos]


def merge_cli(directory: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Any, str]:
    assert main(["merge", str(directory), "-o", str(out)]) == 0
    return json.loads(out.read_text()), capsys.readouterr().err


def test_merge_dir_of_rank_files_gives_the_job_with_nodes_and_missing_ranks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "ranks"
    files_of(d, four_ranks()[:3])  # rank 3 left no file (killed before its first checkpoint)
    data, err = merge_cli(d, tmp_path / "job.out", capsys)
    assert "rank files of a distributed job" in err
    assert [(n["node_id"], n["ranks"]) for n in data["nodes"]] == [
        ("node-a", [0, 1]),
        ("node-b", [2]),
    ]
    assert data["nodes"][0]["energy_j"] == pytest.approx(NODE_J)
    assert data["energy_j"] == pytest.approx(NODE_J + (GPU_W[0] + CPU_W) * SECONDS)
    assert data["missing_ranks"] == [3] and data["status"] == "partial"
    assert [r["source"] for r in data["ranks"]] == ["file", "file", "file", "missing"]
    assert "no rank file" in data["ranks"][3]["problem"]
    assert data["extra"]["merged_from"] == [
        "node-node-a-rank0.json",
        "node-node-a-rank1.json",
        "node-node-b-rank2.json",
    ]
    low, high = data["energy_interval_j"]
    assert low < data["energy_j"] < high
    # the same energy as the plain merge of the same files, and any loader reads it
    plain = EnergyReport.merge([EnergyReport.load(p) for p in sorted(d.glob("node-*.json"))])
    assert data["energy_j"] == pytest.approx(plain.energy_j)
    assert EnergyReport.load(tmp_path / "job.out").missing_ranks == [3]


def test_a_directory_with_other_reports_gets_the_plain_merge(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "mixed"
    files_of(d, four_ranks()[:2])
    clock = FakeClock()
    ch = FakeChannel("cpu:0", 10.0, kind="counter")
    with EnergyMeter([FakeBackend(channels=[ch], clock=clock)], clock=clock, output=d / "x.json"):
        clock.advance(1.0)
    data, err = merge_cli(d, tmp_path / "m.out", capsys)
    assert "distributed job" not in err
    assert data["nodes"] == [] and len(data["extra"]["merged_from"]) == 3


def test_the_latest_restart_of_each_rank_and_its_latest_attempt(tmp_path: Path) -> None:
    d = tmp_path / "elastic"
    files_of(d, four_ranks(0))
    files_of(d, four_ranks(1)[:2])  # the restarted attempt lost node-b
    files_of(d, four_ranks(1)[:1])  # rank 0 of restart 1 again: -a2, the latest attempt
    found = job_from_directory(d)
    assert found is not None
    job, used = found
    assert [p.name for p in used] == ["node-node-a-rank0-r1-a2.json", "node-node-a-rank1-r1.json"]
    assert job.missing_ranks == [2, 3] and job.extra["job"]["restart"] == 1


def test_no_rank_files_or_contradicting_files_give_no_job(tmp_path: Path) -> None:
    assert job_from_directory(tmp_path) is None
    files_of(tmp_path, [rank(0, "node-a", 0, world=2)])
    # another job's rank 0 on another node in the same directory: not one job
    files_of(tmp_path, [rank(0, "node-z", 0, world=2)])
    assert job_from_directory(tmp_path) is None
