"""Who this process is in a distributed job: rank, node, launcher, restart.

:func:`rank_info` reads, in this order, the first source that is there:

1. an initialised ``torch.distributed`` process group (rank and world size; only when torch is
   already imported: a process that never imported torch has no process group);
2. torchrun / ``accelerate launch`` (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
   ``LOCAL_WORLD_SIZE``, ``GROUP_RANK``, ``TORCHELASTIC_RESTART_COUNT``), or the DeepSpeed
   launcher, which sets ``RANK`` too and adds ``CROSS_RANK``, ``CROSS_SIZE``, ``LOCAL_SIZE``;
3. Slurm (``SLURM_PROCID``, ``SLURM_LOCALID``, ``SLURM_NODEID``, ``SLURM_NTASKS``,
   ``SLURMD_NODENAME``, ``SLURM_JOB_ID``);
4. Open MPI (``OMPI_COMM_WORLD_RANK``, ``..._SIZE``, ``..._LOCAL_RANK``, ``..._LOCAL_SIZE``;
   the node's index is ``rank // local size``);
5. otherwise this process is rank 0 of 1.

The node is identified by ``BERTWATT_NODE_ID`` when set, else by the kernel boot id
(``/proc/sys/kernel/random/boot_id``: every container on one host shares it, and so shares that
host's sensors), else by the hostname. Sensors of one node are counted once per node.

This module reads environment variables itself (not through :mod:`bertwatt.config`) because
every function takes the environment as an argument, so launcher environments can be tested as
plain dictionaries without launching anything.
"""

from __future__ import annotations

import math
import os
import re
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bertwatt.errors import ConfigError

__all__ = ["BOOT_ID_PATH", "NODE_ID_ENV", "RankInfo", "node_identity", "rank_info"]

#: Where Linux exposes a random id drawn at every boot, shared by every container of the host.
BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")

#: Environment variable that names the node explicitly (wins over the boot id and hostname).
NODE_ID_ENV = "BERTWATT_NODE_ID"


def _check_timeout(value: object) -> float:
    """``gather_timeout_s`` checked: seconds in (0, 86400] (here so a meter's construction
    checks it without importing the gather's modules)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(float(value)) or not 0 < float(value) <= 86400:  # type: ignore[arg-type]
        raise ConfigError(
            f"gather_timeout_s must be a number of seconds in (0, 86400], got {value!r}"
        )
    return float(value)  # type: ignore[arg-type]


# Node ids go into file names: letters, digits, dot, dash, underscore; at most 128 characters.
_NODE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# Slurm's compressed tasks-per-node list, e.g. "2(x3),1".
_SLURM_TASKS_RE = re.compile(r"(\d+)(?:\(x(\d+)\))?")


@dataclass(frozen=True, slots=True, kw_only=True)
class RankInfo:
    """This process's place in a job.

    Attributes:
        rank: global rank, 0 .. ``world_size - 1``.
        local_rank: rank among the processes of this node.
        world_size: number of processes in the job.
        local_world_size: number of processes on this node.
        node_rank: index of this node in the job (0 when unknown).
        node_id: identity of the machine whose sensors this process reads (see
            :func:`node_identity`); used in file names and to count node sensors once.
        node_name: human-readable node name (``SLURMD_NODENAME`` or the hostname).
        launcher: where the figures came from: ``"torch.distributed"``, ``"torchrun"``,
            ``"accelerate"``, ``"deepspeed"``, ``"slurm"``, ``"openmpi"`` or ``"none"``.
        job_id: the launcher's job or run id when it gives one (``SLURM_JOB_ID``,
            ``TORCHELASTIC_RUN_ID``), else ``None``.
        restart: elastic restart count (``TORCHELASTIC_RESTART_COUNT``,
            ``SLURM_RESTART_COUNT``); 0 for the first attempt.
    """

    rank: int
    local_rank: int
    world_size: int
    local_world_size: int
    node_rank: int
    node_id: str
    node_name: str
    launcher: str
    job_id: str | None
    restart: int

    @property
    def is_main(self) -> bool:
        """True on global rank 0 (the rank that writes the job report)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when the job has more than one process."""
        return self.world_size > 1

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (what reports store under ``distributed``)."""
        return {name: getattr(self, name) for name in self.__slots__}


def _int(env: Mapping[str, str], name: str, *, low: int = 0) -> int | None:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(
            f"environment variable {name}={raw!r} is not an integer",
            fix=f"unset {name} or correct the launcher configuration",
        ) from None
    if value < low:
        raise ConfigError(
            f"environment variable {name}={raw!r} must be >= {low}",
            fix=f"unset {name} or correct the launcher configuration",
        )
    return value


def node_identity(
    env: Mapping[str, str] | None = None, *, boot_id_path: str | os.PathLike[str] | None = None
) -> str:
    """The id of the node this process measures: ``BERTWATT_NODE_ID``, else boot id, else host.

    Args:
        env: environment to read (default ``os.environ``).
        boot_id_path: file holding the kernel boot id (default :data:`BOOT_ID_PATH`).

    Raises:
        ConfigError: ``BERTWATT_NODE_ID`` is set to something that cannot name a file.
    """
    env = os.environ if env is None else env
    explicit = env.get(NODE_ID_ENV)
    if explicit is not None and explicit.strip():
        value = explicit.strip()
        if _NODE_ID_RE.fullmatch(value) is None:
            raise ConfigError(
                f"{NODE_ID_ENV}={explicit!r} cannot name a node: use 1-128 letters, digits, '.', "
                "'-' or '_', starting with a letter or digit",
                fix=f"e.g. {NODE_ID_ENV}=node-a",
            )
        return value
    path = Path(BOOT_ID_PATH if boot_id_path is None else boot_id_path)
    try:
        boot = path.read_text(encoding="ascii", errors="replace").strip().lower()
    except OSError:
        boot = ""
    if boot and _NODE_ID_RE.fullmatch(boot):
        return boot
    host = socket.gethostname().strip()
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", host)[:128].lstrip("._-")
    return cleaned or "localhost"


def _slurm_local_size(env: Mapping[str, str], node: int) -> int | None:
    spec = env.get("SLURM_TASKS_PER_NODE") or env.get("SLURM_STEP_TASKS_PER_NODE")
    if spec:
        sizes: list[int] = []
        for part in spec.split(","):
            m = _SLURM_TASKS_RE.fullmatch(part.strip())
            if m is None:
                sizes = []
                break
            sizes.extend([int(m.group(1))] * int(m.group(2) or 1))
        if 0 <= node < len(sizes):
            return sizes[node]
    return _int(env, "SLURM_NTASKS_PER_NODE", low=1)


def _job_id(env: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = env.get(name, "").strip()
        if value and value.lower() != "none":
            return value
    return None


def _initialised_group() -> tuple[int, int] | None:
    torch: Any = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            return int(dist.get_rank()), int(dist.get_world_size())
    except Exception:  # a broken torch install must not stop measuring
        return None
    return None


def _from_env(env: Mapping[str, str]) -> dict[str, Any] | None:
    """Rank facts from the first launcher whose variables are set, or None."""
    rank = _int(env, "RANK")
    if rank is not None:
        deepspeed = any(k in env for k in ("CROSS_RANK", "CROSS_SIZE", "LOCAL_SIZE"))
        accelerate = any(k.startswith("ACCELERATE_") for k in env)
        launcher = "deepspeed" if deepspeed else "accelerate" if accelerate else "torchrun"
        world = _int(env, "WORLD_SIZE", low=1)
        local = _int(env, "LOCAL_RANK")
        local_size = _int(env, "LOCAL_WORLD_SIZE", low=1) or _int(env, "LOCAL_SIZE", low=1)
        if local_size is None and _int(env, "OMPI_COMM_WORLD_RANK") == rank:
            # RANK exported from Open MPI's numbering (DeepSpeed's MPI discovery under mpirun
            # sets RANK, WORLD_SIZE, LOCAL_RANK only): the ranks per node are Open MPI's
            local_size = _int(env, "OMPI_COMM_WORLD_LOCAL_SIZE", low=1)
            if local_size is not None and not deepspeed and not accelerate:
                launcher = "openmpi"
        node_rank = _int(env, "GROUP_RANK")
        if node_rank is None:
            node_rank = _int(env, "CROSS_RANK")
        if node_rank is None:
            node_rank = _int(env, "NODE_RANK")
        return {
            "rank": rank,
            "world_size": world,
            "local_rank": local,
            "local_world_size": local_size,
            "node_rank": node_rank,
            "launcher": launcher,
            "rank_var": "RANK",
            "world_var": "WORLD_SIZE",
            "job_id": _job_id(env, "TORCHELASTIC_RUN_ID", "SLURM_JOB_ID"),
            "restart": _int(env, "TORCHELASTIC_RESTART_COUNT") or 0,
        }
    rank = _int(env, "SLURM_PROCID")
    if rank is not None:
        node = _int(env, "SLURM_NODEID")
        return {
            "rank": rank,
            "world_size": _int(env, "SLURM_NTASKS", low=1),
            "local_rank": _int(env, "SLURM_LOCALID"),
            "local_world_size": _slurm_local_size(env, node or 0),
            "node_rank": node,
            "launcher": "slurm",
            "rank_var": "SLURM_PROCID",
            "world_var": "SLURM_NTASKS",
            "job_id": _job_id(env, "SLURM_JOB_ID", "SLURM_JOBID"),
            "restart": _int(env, "SLURM_RESTART_COUNT") or 0,
        }
    rank = _int(env, "OMPI_COMM_WORLD_RANK")
    if rank is not None:
        return {
            "rank": rank,
            "world_size": _int(env, "OMPI_COMM_WORLD_SIZE", low=1),
            "local_rank": _int(env, "OMPI_COMM_WORLD_LOCAL_RANK"),
            "local_world_size": _int(env, "OMPI_COMM_WORLD_LOCAL_SIZE", low=1),
            # not OMPI_COMM_WORLD_NODE_RANK: Open MPI documents it as this process's rank on
            # its node across all jobs, not the node's index (which is rank // local size)
            "node_rank": None,
            "launcher": "openmpi",
            "rank_var": "OMPI_COMM_WORLD_RANK",
            "world_var": "OMPI_COMM_WORLD_SIZE",
            "job_id": _job_id(env, "SLURM_JOB_ID"),
            "restart": 0,
        }
    return None


def rank_info(
    env: Mapping[str, str] | None = None,
    *,
    boot_id_path: str | os.PathLike[str] | None = None,
    use_process_group: bool = True,
) -> RankInfo:
    """This process's rank, node and launcher (see the module docstring for the sources).

    Args:
        env: environment to read (default ``os.environ``); tests pass a dict.
        boot_id_path: the kernel boot id file (default :data:`BOOT_ID_PATH`).
        use_process_group: consult an initialised ``torch.distributed`` process group first.

    Raises:
        ConfigError: a launcher variable is not an integer, or the rank is not below the world
            size; the message names the variable.
    """
    env = os.environ if env is None else env
    node_id = node_identity(env, boot_id_path=boot_id_path)
    host = socket.gethostname()
    node_name = env.get("SLURMD_NODENAME", "").strip() or host
    facts = _from_env(env)
    group = _initialised_group() if use_process_group else None
    if group is not None:
        if facts is None:
            facts = {
                "local_rank": None,
                "local_world_size": None,
                "node_rank": None,
                "launcher": "torch.distributed",
                "job_id": _job_id(env, "SLURM_JOB_ID"),
                "restart": 0,
            }
        facts.update(rank=group[0], world_size=group[1])
        facts["rank_var"] = "torch.distributed.get_rank()"
        facts["world_var"] = "torch.distributed.get_world_size()"
    if facts is None:
        return RankInfo(
            rank=0,
            local_rank=0,
            world_size=1,
            local_world_size=1,
            node_rank=0,
            node_id=node_id,
            node_name=node_name,
            launcher="none",
            job_id=_job_id(env, "SLURM_JOB_ID"),
            restart=0,
        )
    rank: int = facts["rank"]
    world: int = facts["world_size"] if facts["world_size"] is not None else rank + 1
    if rank >= world:
        raise ConfigError(
            f"rank {rank} ({facts['rank_var']}) is not below the world size {world} "
            f"({facts['world_var']})",
            fix="check the launcher's environment variables",
        )
    local = facts["local_rank"]
    local_size = facts["local_world_size"]
    if local is None:
        local = rank % local_size if local_size else rank
    if local_size is None:
        local_size = max(local + 1, 1) if facts["node_rank"] is not None else world
    node_rank = facts["node_rank"]
    if node_rank is None:
        node_rank = rank // local_size if local_size else 0
    return RankInfo(
        rank=rank,
        local_rank=local,
        world_size=world,
        local_world_size=max(local_size, local + 1),
        node_rank=node_rank,
        node_id=node_id,
        node_name=node_name,
        launcher=facts["launcher"],
        job_id=facts["job_id"],
        restart=facts["restart"],
    )
