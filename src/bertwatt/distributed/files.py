"""Per-rank report files: ``<output_dir>/node-<id>-rank<R>[-r<restart>].json``.

Each rank writes its own file, atomically (temporary file, fsync, rename), at every checkpoint
and at the end, so a rank that dies leaves its last checkpoint behind. ``-r<restart>`` is added
for elastic restarts (``TORCHELASTIC_RESTART_COUNT`` > 0), so a restarted attempt never replaces
the file of an earlier one; if the name is still taken by an earlier run in the same directory,
``-a2``, ``-a3``, ... are added rather than overwrite it. Rank 0 writes the job report to
``job.json`` (``job-r<restart>.json`` after a restart), with the same ``-a<n>`` rule.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from bertwatt.distributed.ranks import RankInfo

__all__ = [
    "RANK_FILE_RE",
    "claim_job_path",
    "claim_rank_path",
    "job_file_name",
    "rank_file_name",
    "rank_files",
]

#: Matches a rank file name; groups ``node``, ``rank``, ``restart``, ``attempt``.
RANK_FILE_RE = re.compile(
    r"node-(?P<node>[A-Za-z0-9][A-Za-z0-9._-]*?)-rank(?P<rank>\d+)"
    r"(?:-r(?P<restart>\d+))?(?:-a(?P<attempt>\d+))?\.json"
)


def rank_file_name(info: RankInfo, attempt: int = 1) -> str:
    """``node-<id>-rank<R>[-r<restart>][-a<attempt>].json`` for this rank."""
    name = f"node-{info.node_id}-rank{info.rank}"
    if info.restart:
        name += f"-r{info.restart}"
    if attempt > 1:
        name += f"-a{attempt}"
    return name + ".json"


def job_file_name(restart: int = 0, attempt: int = 1) -> str:
    """``job.json``, ``job-r<restart>.json`` after an elastic restart, ``-a<attempt>`` added
    when an earlier run left a job report of that name."""
    name = f"job-r{restart}" if restart else "job"
    if attempt > 1:
        name += f"-a{attempt}"
    return name + ".json"


def claim_job_path(output_dir: str | os.PathLike[str], restart: int = 0) -> Path:
    """Where rank 0 writes the job report: :func:`job_file_name`, or its next free ``-a<n>``
    variant when an earlier run of the directory left one (never overwritten)."""
    base = Path(output_dir)
    attempt = 1
    while True:
        path = base / job_file_name(restart, attempt)
        if not path.exists():
            return path
        attempt += 1


def claim_rank_path(output_dir: str | os.PathLike[str], info: RankInfo) -> Path:
    """The path this rank writes for this window: its name, or the next free ``-a<n>`` variant
    when an earlier run left a file of the same name (never overwritten)."""
    base = Path(output_dir)
    attempt = 1
    while True:
        path = base / rank_file_name(info, attempt)
        if not path.exists():
            return path
        attempt += 1


def rank_files(output_dir: str | os.PathLike[str]) -> dict[tuple[str, int, int], Path]:
    """Rank files present in ``output_dir``: (node id, rank, restart) -> the latest attempt."""
    found: dict[tuple[str, int, int], tuple[int, Path]] = {}
    try:
        entries = list(Path(output_dir).iterdir())
    except OSError:
        return {}
    for path in entries:
        m = RANK_FILE_RE.fullmatch(path.name)
        if m is None or not path.is_file():
            continue
        key = (m["node"], int(m["rank"]), int(m["restart"] or 0))
        attempt = int(m["attempt"] or 1)
        if key not in found or attempt > found[key][0]:
            found[key] = (attempt, path)
    return {k: p for k, (_, p) in found.items()}
