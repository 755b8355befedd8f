"""Per-rank file names: restarts and earlier runs are never overwritten."""

from __future__ import annotations

from pathlib import Path

from bertwatt.distributed import RankInfo, claim_rank_path, rank_file_name, rank_files
from bertwatt.distributed.files import RANK_FILE_RE, job_file_name


def info(rank: int = 1, restart: int = 0, node: str = "node-a") -> RankInfo:
    return RankInfo(
        rank=rank,
        local_rank=rank,
        world_size=4,
        local_world_size=4,
        node_rank=0,
        node_id=node,
        node_name="host",
        launcher="torchrun",
        job_id=None,
        restart=restart,
    )


def test_names() -> None:
    assert rank_file_name(info(1)) == "node-node-a-rank1.json"
    assert rank_file_name(info(3, restart=2)) == "node-node-a-rank3-r2.json"
    assert job_file_name() == "job.json" and job_file_name(2) == "job-r2.json"
    assert job_file_name(0, 2) == "job-a2.json" and job_file_name(1, 3) == "job-r1-a3.json"


def test_name_pattern_parses_node_ids_with_dashes() -> None:
    m = RANK_FILE_RE.fullmatch("node-0f2d6f1e-3b7a-4c55-rank12-r3-a2.json")
    assert m is not None
    assert (m["node"], m["rank"], m["restart"], m["attempt"]) == (
        "0f2d6f1e-3b7a-4c55",
        "12",
        "3",
        "2",
    )


def test_claim_never_takes_an_existing_file(tmp_path: Path) -> None:
    first = claim_rank_path(tmp_path, info(1))
    assert first.name == "node-node-a-rank1.json"
    first.write_text("{}")
    second = claim_rank_path(tmp_path, info(1))
    assert second.name == "node-node-a-rank1-a2.json"
    second.write_text("{}")
    assert claim_rank_path(tmp_path, info(1)).name == "node-node-a-rank1-a3.json"
    assert first.read_text() == "{}"


def test_elastic_restart_gets_its_own_file(tmp_path: Path) -> None:
    claim_rank_path(tmp_path, info(0)).write_text("{}")
    assert claim_rank_path(tmp_path, info(0, restart=1)).name == "node-node-a-rank0-r1.json"


def test_rank_files_latest_attempt_per_rank(tmp_path: Path) -> None:
    for name in [
        "node-node-a-rank0.json",
        "node-node-a-rank0-a2.json",
        "node-node-a-rank1.json",
        "node-node-b-rank2-r1.json",
        "job.json",
        "notes.txt",
    ]:
        (tmp_path / name).write_text("{}")
    found = rank_files(tmp_path)
    assert {k: p.name for k, p in found.items()} == {
        ("node-a", 0, 0): "node-node-a-rank0-a2.json",
        ("node-a", 1, 0): "node-node-a-rank1.json",
        ("node-b", 2, 1): "node-node-b-rank2-r1.json",
    }
    assert rank_files(tmp_path / "missing") == {}
