"""rank_info and node identity: every launcher's environment as a unit matrix, no launching."""

from __future__ import annotations

from pathlib import Path

import pytest

from bertwatt.distributed import RankInfo, node_identity, rank_info
from bertwatt.errors import ConfigError

BOOT = "0f2d6f1e-3b7a-4c55-9d3e-1a2b3c4d5e6f"


@pytest.fixture
def boot(tmp_path: Path) -> Path:
    path = tmp_path / "boot_id"
    path.write_text(BOOT + "\n")
    return path


# (environment, expected rank, local_rank, world, local_world, node_rank, launcher, job, restart)
MATRIX = [
    pytest.param({}, (0, 0, 1, 1, 0, "none", None, 0), id="single-process"),
    pytest.param(
        {
            "RANK": "5",
            "LOCAL_RANK": "1",
            "WORLD_SIZE": "8",
            "LOCAL_WORLD_SIZE": "4",
            "GROUP_RANK": "1",
            "TORCHELASTIC_RESTART_COUNT": "2",
            "TORCHELASTIC_RUN_ID": "job-42",
        },
        (5, 1, 8, 4, 1, "torchrun", "job-42", 2),
        id="torchrun",
    ),
    pytest.param(
        {
            "RANK": "3",
            "LOCAL_RANK": "1",
            "WORLD_SIZE": "4",
            "LOCAL_WORLD_SIZE": "2",
            "GROUP_RANK": "1",
            "TORCHELASTIC_RUN_ID": "none",
            "ACCELERATE_MIXED_PRECISION": "no",
        },
        (3, 1, 4, 2, 1, "accelerate", None, 0),
        id="accelerate",
    ),
    pytest.param(
        {
            "RANK": "6",
            "LOCAL_RANK": "2",
            "WORLD_SIZE": "8",
            "CROSS_RANK": "1",
            "CROSS_SIZE": "2",
            "LOCAL_SIZE": "4",
        },
        (6, 2, 8, 4, 1, "deepspeed", None, 0),
        id="deepspeed",
    ),
    pytest.param(
        {
            "SLURM_PROCID": "5",
            "SLURM_LOCALID": "1",
            "SLURM_NODEID": "2",
            "SLURM_NTASKS": "6",
            "SLURM_TASKS_PER_NODE": "2(x3)",
            "SLURMD_NODENAME": "gpu-node-07",
            "SLURM_JOB_ID": "123456",
        },
        (5, 1, 6, 2, 2, "slurm", "123456", 0),
        id="slurm",
    ),
    pytest.param(
        {
            "SLURM_PROCID": "3",
            "SLURM_LOCALID": "0",
            "SLURM_NODEID": "1",
            "SLURM_NTASKS": "4",
            "SLURM_TASKS_PER_NODE": "3,1",
            "SLURM_JOB_ID": "77",
            "SLURM_RESTART_COUNT": "1",
        },
        (3, 0, 4, 1, 1, "slurm", "77", 1),
        id="slurm-uneven",
    ),
    pytest.param(
        {
            "RANK": "1",
            "LOCAL_RANK": "1",
            "WORLD_SIZE": "4",
            "LOCAL_WORLD_SIZE": "2",
            "GROUP_RANK": "0",
            "SLURM_PROCID": "0",
            "SLURM_NTASKS": "2",
            "SLURM_JOB_ID": "999",
            "TORCHELASTIC_RUN_ID": "none",
        },
        (1, 1, 4, 2, 0, "torchrun", "999", 0),
        id="srun-then-torchrun",
    ),
    pytest.param(
        {
            "OMPI_COMM_WORLD_RANK": "7",
            "OMPI_COMM_WORLD_SIZE": "8",
            "OMPI_COMM_WORLD_LOCAL_RANK": "3",
            "OMPI_COMM_WORLD_LOCAL_SIZE": "4",
            "OMPI_COMM_WORLD_NODE_RANK": "1",
        },
        (7, 3, 8, 4, 1, "openmpi", None, 0),
        id="openmpi",
    ),
    pytest.param(
        {  # NODE_RANK is the process's rank on its node across all jobs, not the node's index
            "OMPI_COMM_WORLD_RANK": "5",
            "OMPI_COMM_WORLD_SIZE": "6",
            "OMPI_COMM_WORLD_LOCAL_RANK": "1",
            "OMPI_COMM_WORLD_LOCAL_SIZE": "2",
            "OMPI_COMM_WORLD_NODE_RANK": "1",
        },
        (5, 1, 6, 2, 2, "openmpi", None, 0),
        id="openmpi-third-node",
    ),
    pytest.param(
        {  # mpirun inside a Slurm allocation: Open MPI's variables, the Slurm job id kept
            "OMPI_COMM_WORLD_RANK": "2",
            "OMPI_COMM_WORLD_SIZE": "4",
            "OMPI_COMM_WORLD_LOCAL_RANK": "0",
            "OMPI_COMM_WORLD_LOCAL_SIZE": "2",
            "SLURM_JOB_ID": "4242",
        },
        (2, 0, 4, 2, 1, "openmpi", "4242", 0),
        id="openmpi-in-slurm-allocation",
    ),
    pytest.param(
        {  # DeepSpeed on one node: CROSS_RANK 0 of 1, every GPU of the node visible
            "RANK": "3",
            "LOCAL_RANK": "3",
            "WORLD_SIZE": "4",
            "CROSS_RANK": "0",
            "CROSS_SIZE": "1",
            "LOCAL_SIZE": "4",
            "MASTER_ADDR": "127.0.0.1",
        },
        (3, 3, 4, 4, 0, "deepspeed", None, 0),
        id="deepspeed-one-node",
    ),
    pytest.param(
        {  # mpirun, then DeepSpeed's MPI discovery exports RANK, WORLD_SIZE, LOCAL_RANK (and
            # MASTER_*) from Open MPI's numbering: the ranks per node are Open MPI's
            "RANK": "5",
            "LOCAL_RANK": "1",
            "WORLD_SIZE": "8",
            "MASTER_ADDR": "10.0.0.1",
            "MASTER_PORT": "29500",
            "OMPI_COMM_WORLD_RANK": "5",
            "OMPI_COMM_WORLD_SIZE": "8",
            "OMPI_COMM_WORLD_LOCAL_RANK": "1",
            "OMPI_COMM_WORLD_LOCAL_SIZE": "4",
        },
        (5, 1, 8, 4, 1, "openmpi", None, 0),
        id="deepspeed-mpi-discovery-under-mpirun",
    ),
    pytest.param(
        {  # a torchrun elastic restart on the second node
            "RANK": "2",
            "LOCAL_RANK": "0",
            "WORLD_SIZE": "4",
            "LOCAL_WORLD_SIZE": "2",
            "GROUP_RANK": "1",
            "TORCHELASTIC_RESTART_COUNT": "3",
        },
        (2, 0, 4, 2, 1, "torchrun", None, 3),
        id="torchrun-restart",
    ),
    pytest.param(
        {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2"},
        (3, 1, 4, 2, 1, "torchrun", None, 0),
        id="torchrun-no-local-rank",
    ),
]


@pytest.mark.parametrize(("env", "want"), MATRIX)
def test_launcher_matrix(env: dict[str, str], want: tuple[object, ...], boot: Path) -> None:
    info = rank_info(env, boot_id_path=boot, use_process_group=False)
    got = (
        info.rank,
        info.local_rank,
        info.world_size,
        info.local_world_size,
        info.node_rank,
        info.launcher,
        info.job_id,
        info.restart,
    )
    assert got == want
    assert info.node_id == BOOT
    assert isinstance(info, RankInfo)
    assert info.is_main == (info.rank == 0)
    assert info.distributed == (info.world_size > 1)


def test_slurm_node_name(boot: Path) -> None:
    env = {"SLURM_PROCID": "0", "SLURM_NTASKS": "1", "SLURMD_NODENAME": "gpu-node-07"}
    assert rank_info(env, boot_id_path=boot, use_process_group=False).node_name == "gpu-node-07"


def test_torchrun_wins_over_slurm_and_mpi(boot: Path) -> None:
    env = {"RANK": "2", "WORLD_SIZE": "3", "SLURM_PROCID": "0", "OMPI_COMM_WORLD_RANK": "0"}
    info = rank_info(env, boot_id_path=boot, use_process_group=False)
    assert (info.rank, info.launcher) == (2, "torchrun")


def test_slurm_wins_over_mpi(boot: Path) -> None:
    env = {"SLURM_PROCID": "1", "SLURM_NTASKS": "2", "OMPI_COMM_WORLD_RANK": "0"}
    assert rank_info(env, boot_id_path=boot, use_process_group=False).launcher == "slurm"


def test_as_dict_round_trips(boot: Path) -> None:
    info = rank_info({"RANK": "1", "WORLD_SIZE": "2"}, boot_id_path=boot, use_process_group=False)
    assert RankInfo(**info.as_dict()) == info


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"RANK": "one", "WORLD_SIZE": "2"}, "RANK='one' is not an integer"),
        ({"RANK": "-1", "WORLD_SIZE": "2"}, "RANK='-1' must be >= 0"),
        ({"RANK": "2", "WORLD_SIZE": "2"}, "rank 2 (RANK) is not below the world size 2"),
        ({"RANK": "0", "WORLD_SIZE": "0"}, "WORLD_SIZE='0' must be >= 1"),
        ({"SLURM_PROCID": "4", "SLURM_NTASKS": "4"}, "(SLURM_PROCID) is not below"),
        ({"OMPI_COMM_WORLD_RANK": "x"}, "OMPI_COMM_WORLD_RANK='x'"),
    ],
)
def test_bad_launcher_values_name_the_variable(
    env: dict[str, str], needle: str, boot: Path
) -> None:
    with pytest.raises(ConfigError, match=None) as err:
        rank_info(env, boot_id_path=boot, use_process_group=False)
    assert needle in str(err.value)


def test_node_id_env_wins(boot: Path) -> None:
    assert node_identity({"BERTWATT_NODE_ID": "node-a"}, boot_id_path=boot) == "node-a"


def test_node_id_from_boot_id(boot: Path) -> None:
    assert node_identity({}, boot_id_path=boot) == BOOT


def test_node_id_falls_back_to_hostname(tmp_path: Path) -> None:
    import socket

    got = node_identity({}, boot_id_path=tmp_path / "missing")
    assert got and got in socket.gethostname().replace(" ", "_")


def test_blank_node_id_env_is_ignored(boot: Path) -> None:
    assert node_identity({"BERTWATT_NODE_ID": "  "}, boot_id_path=boot) == BOOT


@pytest.mark.parametrize("bad", ["../etc", "a/b", "-x", "x" * 129, "two words"])
def test_bad_node_id_env(bad: str, boot: Path) -> None:
    with pytest.raises(ConfigError, match="BERTWATT_NODE_ID"):
        node_identity({"BERTWATT_NODE_ID": bad}, boot_id_path=boot)


def test_rank_info_reads_os_environ(monkeypatch: pytest.MonkeyPatch, boot: Path) -> None:
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("BERTWATT_NODE_ID", "n1")
    info = rank_info(boot_id_path=boot, use_process_group=False)
    assert (info.rank, info.world_size, info.node_id) == (1, 2, "n1")


def test_initialised_process_group_comes_first(tmp_path: Path, boot: Path) -> None:
    torch = pytest.importorskip("torch")
    import torch.distributed as dist

    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
        info = rank_info(env, boot_id_path=boot)
        assert (info.rank, info.world_size, info.launcher) == (0, 1, "torchrun")
        alone = rank_info({}, boot_id_path=boot)
        assert (alone.rank, alone.world_size, alone.launcher) == (0, 1, "torch.distributed")
    finally:
        dist.destroy_process_group()
    assert torch is not None


def test_docs_list_every_variable_read() -> None:
    import re

    root = Path(__file__).resolve().parents[2]
    source = (root / "src/bertwatt/distributed/ranks.py").read_text()
    docs = (root / "docs/distributed.md").read_text()
    read = set(re.findall(r'"((?:SLURM|SLURMD|OMPI_COMM_WORLD|TORCHELASTIC)_[A-Z_]+)"', source))
    read |= set(
        re.findall(
            r'"(RANK|LOCAL_RANK|WORLD_SIZE|LOCAL_WORLD_SIZE|GROUP_RANK|CROSS_[A-Z]+|LOCAL_SIZE)"',
            source,
        )
    )
    assert read, "the pattern found no variable"
    missing = [
        v for v in sorted(read) if v not in docs and v.replace("OMPI_COMM_WORLD", "") not in docs
    ]
    assert missing == [], f"docs/distributed.md does not mention {missing}"


def test_import_loads_no_torch_or_pydantic() -> None:
    import subprocess
    import sys

    code = (
        "import sys, bertwatt.distributed as d; d.rank_info; d.gpu_ownership; d.rank_file_name; "
        "print(sorted(m for m in ('torch', 'pydantic', 'pynvml', 'numpy') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
