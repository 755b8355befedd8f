"""Distributed runs on ``torch.distributed``: each sensor counted once, one job report.

- :func:`rank_info` / :class:`RankInfo`: this process's rank, node and launcher;
- :func:`node_identity`: ``BERTWATT_NODE_ID``, else the kernel boot id, else the hostname;
- :func:`gpu_ownership`: the GPU this rank measures; :func:`node_gpus`: a node's GPUs counted once;
- :class:`RankSession`: per-rank files ``node-<id>-rank<R>[-r<restart>].json``, the gather to
  rank 0 over a gloo side group, and the job report (:func:`build_job_report`).

torch is imported only when a process group is used; ``import bertwatt.distributed`` imports
neither torch nor pydantic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bertwatt._lazy import lazy_names

if TYPE_CHECKING:
    from bertwatt.distributed.files import claim_rank_path, rank_file_name, rank_files
    from bertwatt.distributed.gpus import GPUOwnership, gpu_ownership, node_gpus
    from bertwatt.distributed.job import build_job_report
    from bertwatt.distributed.ranks import RankInfo, node_identity, rank_info
    from bertwatt.distributed.session import RankSession

__all__ = [
    "GPUOwnership",
    "RankInfo",
    "RankSession",
    "build_job_report",
    "claim_rank_path",
    "gpu_ownership",
    "node_gpus",
    "node_identity",
    "rank_file_name",
    "rank_files",
    "rank_info",
]

_LAZY = {
    "GPUOwnership": "bertwatt.distributed.gpus",
    "gpu_ownership": "bertwatt.distributed.gpus",
    "node_gpus": "bertwatt.distributed.gpus",
    "RankInfo": "bertwatt.distributed.ranks",
    "rank_info": "bertwatt.distributed.ranks",
    "node_identity": "bertwatt.distributed.ranks",
    "RankSession": "bertwatt.distributed.session",
    "build_job_report": "bertwatt.distributed.job",
    "claim_rank_path": "bertwatt.distributed.files",
    "rank_file_name": "bertwatt.distributed.files",
    "rank_files": "bertwatt.distributed.files",
}

__getattr__, __dir__ = lazy_names(__name__, globals(), _LAZY)
