"""A rank's own share of the energy it reads: one rule for the rank report and the live log.

Every rank of a node reads the node-level sensors (RAPL package and DRAM, a machine-wide CPU
estimate) whole, and the job report counts each of them once per node. A rank's **own share**
is therefore:

- its own channels in full: its GPU, and a CPU estimate attributed to its own process;
- a GPU that several ranks of the node measure (more ranks than GPUs) divided among them;
- 1/``local_world_size`` of each node-level channel.

The shares of a node's ranks add up to the node's energy in the job report when they read the
same node-level channels over the same window. The channels that enter a share are the ones
that enter a total (:func:`bertwatt.report.build.total_of`): counted channels, and a
whole-machine (wall) meter only when no component channel was measured.

- :func:`own_share` states the share of a finished report (``extra.distributed.own_share`` and a
  warning of every rank report of a job with several ranks per node);
- :func:`rank_share_figures` applies the same rule to the live ``energy/*`` figures
  :class:`~bertwatt.EnergyCallback` adds to the Trainer's log lines on each rank.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "SCALED_LOG_KEYS",
    "UNSCALED_LOG_KEYS",
    "Share",
    "gpu_sharers",
    "own_share",
    "rank_share_figures",
    "share_of",
]

logger = logging.getLogger(__name__)

#: Live log keys proportional to energy: on a rank of a job they become the rank's own share.
SCALED_LOG_KEYS = frozenset(
    {
        "energy/kwh",
        "energy/mean_power_w",
        "energy/j_per_step",
        "energy/j_per_example",
        "energy/j_per_token_padded",
        "energy/j_per_token_nonpadding",
        "energy/gco2e",
        "energy/predicted_kwh",
        "energy/predicted_gco2e",
    }
)
#: Live log keys that are not energy (left as they are).
UNSCALED_LOG_KEYS = frozenset({"energy/padding_share"})


def gpu_sharers(local_rank: int, local_world_size: int, gpus: Mapping[str, Any] | None) -> int:
    """How many ranks of the node measure this rank's GPU (1 unless GPUs are shared).

    ``gpus`` is the rank's :meth:`~bertwatt.distributed.GPUOwnership.as_dict`. Ranks share
    GPUs only when there are more ranks than visible GPUs, and then by ``local_rank % GPUs``
    (:func:`~bertwatt.distributed.gpu_ownership`), so the sharers are the local ranks with the
    same remainder.
    """
    if not isinstance(gpus, Mapping) or not gpus.get("shared"):
        return 1
    visible = list(gpus.get("visible") or ())
    if not visible:
        return 1
    n = len(visible)
    return max(1, sum(1 for lr in range(local_world_size) if lr % n == local_rank % n))


@dataclass(frozen=True, slots=True)
class Share:
    """A rank's own share of the energy it read (see the module docstring).

    Attributes:
        energy_j: the share: ``own_j + node_level_j / local_world_size``.
        own_j: this rank's own channels (its GPU, divided among its sharers; its process's
            estimate).
        node_level_j: the node-level channels, whole (every rank of the node reads them).
        total_j: what the rank read, counted whole (the figure the share replaces).
        node_channels: names of the node-level channels.
        local_world_size: ranks on this node.
        sharers: ranks measuring this rank's GPU.
    """

    energy_j: float
    own_j: float
    node_level_j: float
    total_j: float
    node_channels: tuple[str, ...]
    local_world_size: int
    sharers: int = 1

    @property
    def fraction(self) -> float | None:
        """``energy_j / total_j``: the factor that turns the rank's figures into its share."""
        return self.energy_j / self.total_j if self.total_j > 0 else None

    @property
    def basis(self) -> str:
        """The share in words (stored in the rank report's warnings)."""
        gpu = (
            f" (its GPU split among the {self.sharers} ranks sharing it)"
            if self.sharers > 1
            else ""
        )
        node = ""
        if self.node_channels:
            node = (
                f" plus 1/{self.local_world_size} of the node-level "
                f"{', '.join(self.node_channels)} ({self.node_level_j:.6g} J, read by each of the "
                f"{self.local_world_size} ranks of this node)"
            )
        return (
            f"this rank's own share is {self.energy_j:.6g} J: its own channels "
            f"{self.own_j:.6g} J{gpu}{node}; the rank's energy_j counts them whole, the job report "
            "counts them once per node"
        )

    def as_dict(self) -> dict[str, Any]:
        """What a rank report stores in ``extra.distributed.own_share``."""
        return {
            "energy_j": self.energy_j,
            "own_j": self.own_j,
            "node_level_j": self.node_level_j,
            "fraction": self.fraction,
            "basis": self.basis,
        }


def _own(channel: Any) -> bool:
    from bertwatt.report.merge import per_process

    return channel.domain == "gpu" or per_process(channel)


def share_of(
    channels: Iterable[tuple[Any, float | None]],
    local_world_size: int,
    *,
    sharers: int = 1,
) -> Share | None:
    """The own share over ``(channel, joules)`` pairs (channel or channel report objects).

    None for a rank alone on its node, or when no channel was measured.
    """
    if local_world_size <= 1:
        return None
    measured = [(c, e) for c, e in channels if e is not None and c.counted]
    components = [(c, e) for c, e in measured if c.provenance.scope != "system"]
    used = components or measured
    if not used:
        return None
    own = node_level = 0.0
    names: list[str] = []
    for c, e in used:
        if _own(c):
            own += e / (sharers if c.domain == "gpu" else 1)
        else:
            node_level += e
            names.append(c.name)
    total = sum(e for _, e in used)
    if not names and sharers <= 1:
        return None
    return Share(
        energy_j=own + node_level / local_world_size,
        own_j=own,
        node_level_j=node_level,
        total_j=total,
        node_channels=tuple(names),
        local_world_size=local_world_size,
        sharers=sharers,
    )


def own_share(
    report: Any,
    local_world_size: int,
    *,
    local_rank: int = 0,
    gpus: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The own share of a rank ``report`` as stored in ``extra.distributed.own_share``, or None
    for a single rank on its node or nothing measured."""
    if report.energy_j is None:
        return None
    share = share_of(
        ((c, c.energy_j) for c in report.channels),
        local_world_size,
        sharers=gpu_sharers(local_rank, local_world_size, gpus),
    )
    return None if share is None else share.as_dict()


def _live_share(meter: Any) -> Share | None:
    """The own share of a running meter's window so far (None outside a job of several ranks
    per node)."""
    dist = getattr(meter, "_dist", None)
    if dist is None or not dist.active:
        return None
    info = dist.info
    if info is None or info.local_world_size <= 1:
        return None
    window = getattr(meter, "_window", None)
    if window is None:
        return None
    snap = meter.snapshot()
    by_name = {tl.channel.name: tl.channel for g in window.groups for tl in g.timelines}
    gpus = dist.gpus.as_dict() if dist.gpus is not None else None
    return share_of(
        ((by_name[n], e) for n, e in snap.channels.items() if n in by_name),
        info.local_world_size,
        sharers=gpu_sharers(info.local_rank, info.local_world_size, gpus),
    )


def rank_share_figures(meter: Any, figures: Mapping[str, float]) -> dict[str, float]:
    """The live ``energy/*`` figures of one rank turned into its own share.

    On a rank of a job with several ranks per node, every energy figure (``energy/kwh``, J per
    step/example/token, emissions, the prediction) is multiplied by the rank's share of the
    energy it has read so far (:class:`Share`: its GPU in full, 1/``local_world_size`` of the
    node-level channels); ratios that are not energy (``energy/padding_share``) are kept. A
    single process, or a rank alone on its node, gets ``figures`` unchanged. Never raises: on
    trouble the figures are returned unchanged and the reason is logged.
    """
    out = dict(figures)
    try:
        share = _live_share(meter)
    except Exception as err:  # the log line must not break training
        logger.debug("bertwatt: the rank's own share could not be computed: %s", err)
        return out
    if share is None or share.fraction is None:
        return out
    factor = share.fraction
    dist = meter._dist
    if not getattr(dist, "share_logged", False):
        dist.share_logged = True
        logger.info(
            "bertwatt: rank %d logs its own share of the energy (x%.4g of what it reads): %s",
            dist.info.rank,
            factor,
            share.basis,
        )
    for key in SCALED_LOG_KEYS.intersection(out):
        out[key] = out[key] * factor
    return out
