"""The job report from the rank files alone (``bertwatt merge DIR`` after a job without gather).

When no process group existed, the gather was off, or rank 0 died, every rank still left its
``node-<id>-rank<R>[-r<restart>][-a<n>].json`` in the output directory. :func:`job_from_directory`
builds the same job report rank 0 would have built from them: the latest attempt of each rank of
the latest restart, every sensor counted once per node, ``nodes``, ``ranks`` (``source="file"``)
and, for ranks without a file, ``missing_ranks`` and ``status="partial"``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bertwatt.distributed.files import rank_files
from bertwatt.distributed.job import Part, build_job_report, rank_meta
from bertwatt.errors import ReportError

__all__ = ["job_for_merge", "job_from_directory"]


def job_from_directory(directory: str | os.PathLike[str]) -> tuple[Any, list[Path]] | None:
    """The job report of the rank files in ``directory`` and the files it used, or None when the
    directory holds no rank file of a job (or files that contradict each other: two files of
    one rank on different nodes, a file whose content names another rank).

    Raises:
        ReportError: a rank file cannot be read (naming it).
    """
    from bertwatt.distributed.session import _load_any
    from bertwatt.report.models import EnergyReport

    found = rank_files(directory)
    if not found:
        return None
    restart = max(key[2] for key in found)
    chosen = sorted(
        ((key, path) for key, path in found.items() if key[2] == restart), key=lambda kp: kp[0][1]
    )
    ranks = [key[1] for key, _ in chosen]
    if len(set(ranks)) != len(ranks):
        return None  # the same rank on two nodes: files of different jobs
    parts: list[Part] = []
    facts: list[dict[str, Any]] = []
    for (node, rank, _), path in chosen:
        try:
            report = _load_any(path, EnergyReport)
        except ReportError:
            raise
        except (OSError, ValueError) as err:
            raise ReportError(f"cannot read the rank file: {err}", where=str(path)) from None
        meta = rank_meta(report)
        if meta is None or meta.get("rank") != rank or str(meta.get("node_id")) != node:
            return None
        parts.append(Part(rank, report, "file", path.name))
        facts.append(meta)
    world = max(int(m.get("world_size") or 1) for m in facts)
    world = max(world, max(ranks) + 1)
    missing = {
        r: f"no rank file of restart {restart} in {Path(directory)}"
        for r in range(world)
        if r not in ranks
    }
    first = facts[0]
    job = build_job_report(
        parts,
        world_size=world,
        missing=missing,
        job={"job_id": first.get("job_id"), "launcher": first.get("launcher"), "restart": restart},
    )
    return job, [path for _, path in chosen]


def job_for_merge(paths: Sequence[str | os.PathLike[str]], merged: Any) -> Any:
    """For ``bertwatt merge DIR``: the job report when ``paths`` is one directory whose merge
    (``merged``) used only the rank files of one job (or copies of them), else None.

    The job report has the merge's energy and adds ``nodes``, ``ranks`` and ``missing_ranks``.
    """
    if len(paths) != 1 or not Path(paths[0]).is_dir():
        return None
    found = job_from_directory(paths[0])
    if found is None:
        return None
    job = found[0]
    used = merged.extra.get("merged_run_ids") if isinstance(merged.extra, dict) else None
    mine = job.extra.get("merged_run_ids") if isinstance(job.extra, dict) else None
    if not isinstance(used, list) or not isinstance(mine, list) or not set(used) <= set(mine):
        return None  # the directory holds other reports too: the plain merge stands
    return job
