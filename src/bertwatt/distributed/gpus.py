"""Which GPU a rank measures, and how the GPUs of a node are counted once.

A GPU belongs to the rank that uses it:

- when CUDA is initialised in this process, the rank's current CUDA device, matched to NVML by
  UUID (so a Ray worker placed on ``cuda:2`` measures that GPU whatever its local rank);
- otherwise the ``LOCAL_RANK``-th GPU visible to the process (``CUDA_VISIBLE_DEVICES`` order):
  right under torchrun and under DeepSpeed, where every rank sees the node's whole list; when a
  launcher gives each process a single visible GPU, that GPU.

When there are more ranks than GPUs, ranks share them (``local_rank % visible``). At node level
(:func:`node_gpus`) a GPU claimed by several ranks (shared, MIG) is counted once and lists its
ranks; GPUs visible to some rank but used by none are listed and not counted.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bertwatt.distributed.ranks import RankInfo

__all__ = ["GPUOwnership", "NodeGPU", "cuda_current_uuid", "gpu_ownership", "node_gpus"]


@dataclass(frozen=True, slots=True, kw_only=True)
class GPUOwnership:
    """The GPUs one rank measures and the GPUs it can see.

    Attributes:
        owned: UUIDs of the GPUs this rank measures (usually one; empty without GPUs).
        visible: UUIDs of every GPU visible to this process, in CUDA order.
        how: how the owned GPU was chosen, in words.
        shared: True when the choice had to share a GPU with other ranks (more ranks than GPUs).
    """

    owned: tuple[str, ...]
    visible: tuple[str, ...]
    how: str
    shared: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Plain data for a report: owned, visible, how, shared."""
        return {
            "owned": list(self.owned),
            "visible": list(self.visible),
            "how": self.how,
            "shared": self.shared,
        }


@dataclass(slots=True)
class NodeGPU:
    """One GPU of a node as the job report counts it.

    Attributes:
        uuid: the GPU's UUID (channels are keyed by it).
        ranks: the ranks that measure it (several when shared or MIG).
        counted: True when some rank measures it; a GPU only visible is listed, not counted.
    """

    uuid: str
    ranks: list[int] = field(default_factory=list)
    counted: bool = True


def cuda_current_uuid() -> str | None:
    """UUID of this process's current CUDA device, or None when CUDA is not initialised.

    Never initialises CUDA and never imports torch: a process that has not imported torch, or
    has not touched CUDA yet, gets None.
    """
    torch: Any = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        if not torch.cuda.is_initialized():
            return None
        device = torch.cuda.current_device()
        uuid = str(torch.cuda.get_device_properties(device).uuid)
    except Exception:  # a CUDA error must not stop measuring
        return None
    if not uuid:
        return None
    return uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"


def _visible_gpus() -> tuple[list[tuple[str, tuple[str, ...]]], str]:
    """(uuid, MIG uuids) of the GPUs CUDA lets this process see, through the NVML backend."""
    from bertwatt.backends.nvml import NVMLBackend

    backend = NVMLBackend()
    try:
        availability = backend.probe()
    finally:
        backend.close()
    gpus = []
    for channel in availability.channels:
        uuid = channel.info.get("uuid", "")
        mig = tuple(m for m in channel.info.get("mig_devices", "").split(",") if m)
        if uuid:
            gpus.append((uuid, mig))
    reason = "; ".join(u.reason for u in availability.unavailable)
    return gpus, reason


_AUTO: Any = object()


def gpu_ownership(
    info: RankInfo,
    *,
    cuda_uuid: str | None = _AUTO,
    visible: Sequence[tuple[str, Sequence[str]] | str] | None = None,
) -> GPUOwnership:
    """Choose the GPU this rank measures.

    Args:
        info: this process's :class:`~bertwatt.distributed.RankInfo`.
        cuda_uuid: UUID of the current CUDA device; default: asked from torch when CUDA is
            already initialised (see :func:`cuda_current_uuid`), else None.
        visible: the visible GPUs (UUIDs, or ``(uuid, mig_uuids)`` pairs) in CUDA order;
            default: those the NVML backend finds for ``CUDA_VISIBLE_DEVICES``.

    Never raises because NVML or a GPU is missing: the result then owns nothing and ``how``
    says why.
    """
    if cuda_uuid is _AUTO:
        cuda_uuid = cuda_current_uuid()
    reason = ""
    if visible is None:
        try:
            found, reason = _visible_gpus()
        except Exception as err:  # NVML trouble must not stop measuring
            found, reason = [], f"listing GPUs through NVML failed: {err}"
    else:
        found = [(v, ()) if isinstance(v, str) else (v[0], tuple(v[1])) for v in visible]
    uuids = tuple(u for u, _ in found)
    if cuda_uuid is not None:
        for uuid, mig in found:
            if cuda_uuid == uuid or cuda_uuid in mig:
                return GPUOwnership(
                    owned=(uuid,),
                    visible=uuids,
                    how=f"current CUDA device ({cuda_uuid}) matched to NVML by UUID",
                )
        if cuda_uuid.startswith("GPU-"):
            return GPUOwnership(
                owned=(cuda_uuid,),
                visible=uuids,
                how=f"current CUDA device {cuda_uuid}, not among the visible GPUs NVML listed",
            )
    if not found:
        why = f": {reason}" if reason else ""
        return GPUOwnership(owned=(), visible=(), how=f"no GPU visible to this process{why}")
    if len(found) == 1:
        return GPUOwnership(
            owned=(uuids[0],), visible=uuids, how="the only GPU visible to this process"
        )
    local = info.local_rank
    if local < len(found):
        return GPUOwnership(
            owned=(uuids[local],),
            visible=uuids,
            how=f"visible GPU number LOCAL_RANK={local} (CUDA is not initialised in this process)",
        )
    pick = local % len(found)
    return GPUOwnership(
        owned=(uuids[pick],),
        visible=uuids,
        how=(
            f"LOCAL_RANK={local} but only {len(found)} GPUs are visible: ranks share GPUs, this "
            f"rank measures visible GPU {pick}"
        ),
        shared=True,
    )


def node_gpus(claims: Iterable[tuple[int, Mapping[str, Any]]]) -> dict[str, NodeGPU]:
    """The GPUs of one node: who measures each, and which are visible but unused.

    Args:
        claims: ``(rank, ownership)`` for each rank of the node, the ownership as
            :meth:`GPUOwnership.as_dict` gives it.

    Returns:
        UUID -> :class:`NodeGPU`, owned GPUs first (by first rank), then GPUs only visible
        (``counted=False``).
    """
    table: dict[str, NodeGPU] = {}
    seen_visible: list[str] = []
    for rank, own in sorted(claims, key=lambda c: c[0]):
        for uuid in own.get("owned", ()):
            entry = table.setdefault(uuid, NodeGPU(uuid))
            if rank not in entry.ranks:
                entry.ranks.append(rank)
        seen_visible.extend(u for u in own.get("visible", ()) if u not in seen_visible)
    for uuid in seen_visible:
        if uuid not in table:
            table[uuid] = NodeGPU(uuid, [], counted=False)
    return table
