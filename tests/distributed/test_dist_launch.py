"""Real torchrun launches on 127.0.0.1 (gloo, CPU, fake NVML): each costs several seconds."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bertwatt.distributed.models import job_report_class
from bertwatt.report.models import EnergyReport

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("dist_worker.py")
SRC = Path(__file__).resolve().parents[2] / "src"
GPU_W = (100.0, 250.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def torchrun(
    out: Path,
    nproc: int,
    *,
    scenario: str = "basic",
    nnodes: int = 1,
    node_rank: int = 0,
    port: int,
    timeout: float = 60.0,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    full = dict(os.environ)
    full.update(
        {
            "BW_OUT": str(out),
            "BW_SCENARIO": scenario,
            "BW_TIMEOUT": str(timeout),
            "PYTHONPATH": os.pathsep.join([str(SRC), full.get("PYTHONPATH", "")]),
            "OMP_NUM_THREADS": "1",
        }
    )
    full.pop("CUDA_VISIBLE_DEVICES", None)
    full.update(env or {})
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nnodes={nnodes}",
        f"--node-rank={node_rank}",
        f"--nproc-per-node={nproc}",
        "--master-addr=127.0.0.1",
        f"--master-port={port}",
        str(WORKER),
    ]
    return subprocess.Popen(
        cmd, env=full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=out
    )


def wait(procs: list[subprocess.Popen[str]], *, ok: bool = True) -> list[str]:
    logs = []
    for p in procs:
        text, _ = p.communicate(timeout=180)
        logs.append(text)
        if ok:
            assert p.returncode == 0, text[-4000:]
    return logs


def job(out: Path) -> Any:
    return job_report_class(EnergyReport).model_validate_json((out / "job.json").read_text())


def rank_reports(out: Path) -> dict[int, EnergyReport]:
    found = {}
    for path in out.glob("node-*-rank*.json"):
        rep = EnergyReport.load(path)
        found[rep.extra["distributed"]["rank"]] = rep
    return found


def _per_process(c: Any) -> bool:
    """A CPU estimate attributed to this process (summed over ranks), not machine-wide."""
    model = c.provenance.assumptions.get("power_model", "") + c.provenance.assumptions.get(
        "utilisation", ""
    )
    return c.provenance.kind == "estimated" and "this process" in model


def check_counted_once(j: Any, ranks: dict[int, EnergyReport]) -> None:
    """The job adds each node's channels once: GPUs by owner, node-level channels (a sensor every
    rank of the node reads, a machine-wide estimate) once, per-process estimates summed."""
    for node in j.nodes:
        mine = {r: ranks[r] for r in node.ranks}
        gpus: dict[str, float] = {}
        shared: dict[str, float] = {}
        own: dict[str, float] = {}
        names: set[str] = set()
        for r, rep in mine.items():
            for c in rep.channels:
                name = f"{c.name}@rank{r}" if _per_process(c) else c.name
                names.add(name)
                if c.energy_j is None or not c.counted:
                    continue
                if c.domain == "gpu":  # a GPU shared by ranks: the merge keeps one copy
                    gpus[c.info["uuid"]] = max(gpus.get(c.info["uuid"], 0.0), c.energy_j)
                elif _per_process(c):
                    own[name] = c.energy_j
                else:
                    shared[name] = max(shared.get(name, 0.0), c.energy_j)
        assert shared or own, "no CPU or node-level channel"
        expected = sum(gpus.values()) + sum(shared.values()) + sum(own.values())
        assert node.energy_j == pytest.approx(expected, rel=0.02)
        assert node.energy_j <= sum(rep.energy_j for rep in mine.values()) * (1 + 1e-9)
        assert sorted(node.channels) == sorted(names)
    assert j.energy_j == pytest.approx(sum(n.energy_j for n in j.nodes), rel=1e-9)


def test_one_node_two_ranks_group_created_after_meter_start(tmp_path: Path) -> None:
    wait([torchrun(tmp_path, 2, scenario="late_group", port=free_port())])
    j = job(tmp_path)
    ranks = rank_reports(tmp_path)
    assert j.status == "complete" and j.missing_ranks == [] and j.extra["job"]["world_size"] == 2
    assert [(r.rank, r.source) for r in j.ranks] == [(0, "self"), (1, "gathered")]
    (node,) = j.nodes
    assert node.ranks == [0, 1]
    # each rank's own report shows only its GPU; the job shows both
    for r, rep in ranks.items():
        gpus = [c for c in rep.channels if c.domain == "gpu"]
        assert [c.info["uuid"] for c in gpus] == [f"GPU-{node.node_id}-{r}"]
        assert gpus[0].mean_power_w == pytest.approx(GPU_W[r], rel=0.05)
    assert sorted(g.uuid for g in node.gpus if g.counted) == [
        f"GPU-{node.node_id}-0",
        f"GPU-{node.node_id}-1",
    ]
    check_counted_once(j, ranks)
    outs = [json.loads(p.read_text()) for p in tmp_path.glob("worker-*.out")]
    assert [o["collective_ok"] for o in outs] == [True, True]
    # `bertwatt merge DIR` skips job.json (a merge output) and agrees with the job report
    done = subprocess.run(
        [sys.executable, "-m", "bertwatt", "merge", str(tmp_path), "-o", str(tmp_path / "m.out")],
        env=dict(os.environ, PYTHONPATH=str(SRC)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert EnergyReport.load(tmp_path / "m.out").energy_j == pytest.approx(j.energy_j, rel=1e-6)
    assert EnergyReport.load(tmp_path / "job.json").nodes == j.nodes  # any loader reads it


def test_two_nodes_two_ranks_on_one_host(tmp_path: Path) -> None:
    port = free_port()
    procs = [
        torchrun(
            tmp_path, 2, nnodes=2, node_rank=i, port=port, env={"BERTWATT_NODE_ID": f"node-{i}"}
        )
        for i in range(2)
    ]
    wait(procs)
    j = job(tmp_path)
    assert sorted(p.name for p in tmp_path.glob("node-*.json")) == [
        "node-node-0-rank0.json",
        "node-node-0-rank1.json",
        "node-node-1-rank2.json",
        "node-node-1-rank3.json",
    ]
    assert [(n.node_id, n.ranks) for n in j.nodes] == [("node-0", [0, 1]), ("node-1", [2, 3])]
    assert j.status == "complete" and j.extra["job"]["world_size"] == 4
    check_counted_once(j, rank_reports(tmp_path))


def test_uneven_three_plus_one(tmp_path: Path) -> None:
    port = free_port()
    procs = [
        torchrun(tmp_path, n, nnodes=2, node_rank=i, port=port, env={"BERTWATT_NODE_ID": f"n{i}"})
        for i, n in enumerate((3, 1))
    ]
    wait(procs)
    j = job(tmp_path)
    a, b = j.nodes
    assert (a.node_id, a.ranks, b.node_id, b.ranks) == ("n0", [0, 1, 2], "n1", [3])
    shared = next(g for g in a.gpus if g.uuid == "GPU-n0-0")
    assert shared.ranks == [0, 2] and shared.counted
    unused = next(g for g in b.gpus if g.uuid == "GPU-n1-1")
    assert unused.ranks == [] and not unused.counted
    check_counted_once(j, rank_reports(tmp_path))


def test_rank_hanging_past_timeout_gives_partial_job(tmp_path: Path) -> None:
    wait([torchrun(tmp_path, 2, scenario="hang", port=free_port(), timeout=3.0)])
    j = job(tmp_path)
    assert j.status == "partial"
    assert j.missing_ranks == [1]
    entry = j.ranks[1]
    assert entry.source == "file" and "3 s" in (entry.problem or "")
    assert any("rank 1" in w for w in j.warnings)
    # rank 0 did not wait much longer than the timeout for rank 1
    out0 = json.loads(next(tmp_path.glob("worker-*-0.out")).read_text())
    assert out0["job"] is True


def test_rank_that_never_stops_its_meter_costs_rank_0_the_timeout_only(tmp_path: Path) -> None:
    """distributed=True, the process group created after the meters started (so the gloo side
    group is created at stop), and rank 1 never stops its meter: rank 0 cannot create the side
    group, gives up at gather_timeout_s, and writes a partial job from the files present."""
    timeout = 3.0
    wait([torchrun(tmp_path, 2, scenario="never", port=free_port(), timeout=timeout)])
    j = job(tmp_path)
    assert j.status == "partial" and j.missing_ranks == [1]
    entry = j.ranks[1]
    assert entry.source == "file"  # its last checkpoint file
    assert entry.file == next(tmp_path.glob("node-*-rank1.json")).name
    assert "side group" in (entry.problem or "") and "gather_timeout_s=3" in entry.problem
    assert any("rank 1" in w for w in j.warnings)
    out0 = json.loads(next(tmp_path.glob("worker-*-0.out")).read_text())
    assert out0["job"] is True
    # bounded: the timeout, plus building and writing the job (generous for a loaded machine)
    assert timeout <= out0["stop_s"] < timeout + 20.0
    assert not list(tmp_path.glob("worker-*-1.out"))  # rank 1 never got past its meter


def test_killed_rank_leaves_files_that_merge_into_the_job(tmp_path: Path) -> None:
    wait([torchrun(tmp_path, 2, scenario="kill", port=free_port())], ok=False)
    files = sorted(tmp_path.glob("node-*-rank*.json"))
    assert [f.name.rsplit("-", 1)[1] for f in files] == ["rank0.json", "rank1.json"]
    assert not (tmp_path / "job.json").exists()
    merged = tmp_path / "merged.json"
    env = dict(os.environ, PYTHONPATH=str(SRC))
    done = subprocess.run(
        [sys.executable, "-m", "bertwatt", "merge", str(tmp_path), "-o", str(merged)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    rep = EnergyReport.load(merged)
    ranks = [EnergyReport.load(f) for f in files]
    assert sorted(c.name for c in rep.channels if c.domain == "gpu") == ["gpu:0", "gpu:1"]

    # a node-level channel once (which rank's copy is kept is the merge's choice); a per-process
    # CPU estimate once per rank, named after it
    def merged(r: EnergyReport, c: Any) -> str:
        return f"{c.name}@rank{r.extra['distributed']['rank']}" if _per_process(c) else c.name

    others = {merged(r, c) for r in ranks for c in r.channels if c.domain != "gpu"}
    assert sorted(c.name for c in rep.channels if c.domain != "gpu") == sorted(others)
    gpu = sum(c.energy_j for r in ranks for c in r.channels if c.domain == "gpu")
    node = sum(
        max(c.energy_j for r in ranks for c in r.channels if merged(r, c) == name)
        for name in others
    )
    assert rep.energy_j == pytest.approx(gpu + node, rel=0.01)
    assert rep.energy_j <= sum(r.energy_j for r in ranks) * (1 + 1e-9)
    # the merge of a job's rank files is its job report: nodes and ranks, from the files
    assert [n.ranks for n in rep.nodes] == [[0, 1]] and rep.missing_ranks == []
    assert [(r.rank, r.source) for r in rep.ranks] == [(0, "file"), (1, "file")]
    assert rep.nodes[0].energy_j == pytest.approx(rep.energy_j)


def test_accelerate_launch(tmp_path: Path) -> None:
    env = dict(os.environ, BW_OUT=str(tmp_path), BW_TIMEOUT="60", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    env.pop("CUDA_VISIBLE_DEVICES", None)
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes=2",
        "--num_machines=1",
        "--main_process_ip=127.0.0.1",
        f"--main_process_port={free_port()}",
        "--mixed_precision=no",
        "--dynamo_backend=no",
        str(WORKER),
    ]
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    j = job(tmp_path)
    assert j.extra["job"]["launcher"] == "accelerate" and j.status == "complete"
    assert [n.ranks for n in j.nodes] == [[0, 1]]
    check_counted_once(j, rank_reports(tmp_path))


def test_trainer_callback_tiny_bert_on_two_ranks(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from bertwatt.integrations.report import FinetuneReport

    out = tmp_path / "run"
    env = dict(os.environ, BW_OUT=str(out), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    env.pop("CUDA_VISIBLE_DEVICES", None)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node=2",
        "--master-addr=127.0.0.1",
        f"--master-port={free_port()}",
        str(WORKER.with_name("dist_trainer_worker.py")),
    ]
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    d = out / "bertwatt"
    j = job_report_class(FinetuneReport).model_validate_json((d / "job.json").read_text())
    ranks = {
        FinetuneReport.load(p).extra["distributed"]["rank"]: FinetuneReport.load(p)
        for p in d.glob("node-*-rank*.json")
    }
    assert sorted(ranks) == [0, 1]
    # every rank's own files are kept
    assert {p.name for p in d.glob("report-rank*.json")} == {
        "report-rank0.json",
        "report-rank1.json",
    }
    # job work = sum of the ranks' work (64 training examples split over 2 ranks)
    assert j.examples == sum(r.examples for r in ranks.values()) == 64
    assert j.tokens_padded == sum(r.tokens_padded for r in ranks.values()) > 0
    assert j.tokens_nonpadding == sum(r.tokens_nonpadding for r in ranks.values())
    assert [e.tokens for e in j.ranks] == [ranks[0].tokens_padded, ranks[1].tokens_padded]
    # energy counted once: each rank's GPU, the node's CPU figure once
    check_counted_once(j, ranks)  # type: ignore[arg-type]
    own_gpu = [
        [c.info["uuid"] for c in r.channels if c.domain == "gpu"] for _, r in sorted(ranks.items())
    ]
    node = j.nodes[0].node_id
    assert own_gpu == [[f"GPU-{node}-0"], [f"GPU-{node}-1"]]
    # rank 0 logged job-level figures at the end of training
    logs = json.loads((out / "rank0-logs.json").read_text())
    assert logs["job"] is True
    last = logs["log_history"][-1]
    assert last["energy/job_kwh"] == pytest.approx(j.energy_j / 3.6e6)
    assert last["energy/job_j_per_token"] == pytest.approx(j.energy_j / j.tokens_padded)
    assert last["energy/job_missing_ranks"] == 0
