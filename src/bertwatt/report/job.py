"""The job report's distributed sections (pydantic; pure data, no torch, no sensors).

Written by rank 0 of a distributed run (:mod:`bertwatt.distributed`); readable with only
``bertwatt.report`` and pydantic.

A job report is the merged report of every rank (an :class:`~bertwatt.EnergyReport`, or a
fine-tuning / inference report when the ranks wrote those) with these fields added:

- ``nodes``: one :class:`NodeReport` per node: its ranks, channels, GPUs, energy and emissions;
- ``ranks``: one :class:`RankReport` per rank: where its report came from and its own figures;
- ``missing_ranks``: ranks whose report did not reach rank 0 (``status`` is then ``"partial"``);

and ``extra["job"]`` holds ``world_size``, ``job_id``, ``launcher`` and ``restart``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

__all__ = ["GPUEntry", "NodeReport", "RankReport", "job_report_class"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GPUEntry(_Model):
    """A GPU of a node: the ranks that measure it; ``counted`` False when only visible."""

    uuid: str
    channel: str | None = None
    ranks: list[int] = Field(default_factory=list)
    counted: bool = True


class NodeReport(_Model):
    """One node of the job: every sensor of it counted once.

    ``energy_j`` adds the node's counted channels (each once, whichever ranks read it; a wall
    meter only when the node has no component channel, as in any report's total), and
    ``energy_interval_j`` adds the widths of those channels' intervals around it;
    ``emissions_g`` is that energy times the node's carbon intensity and PUE (None when no
    intensity was configured).
    """

    node_id: str
    name: str
    ranks: list[int]
    channels: list[str]
    gpus: list[GPUEntry] = Field(default_factory=list)
    energy_j: float | None
    energy_interval_j: tuple[float, float] | None = Field(
        default=None,
        description="(low, high) J around energy_j: the widths of the node's counted channels' "
        "intervals added; None in files before it or when a channel has none",
    )
    interval_basis: str | None = Field(default=None, description="how the interval was formed")
    emissions_g: float | None = None


class RankReport(_Model):
    """One rank as the job report saw it.

    ``source`` is ``"self"`` (rank 0's own report), ``"gathered"`` (received over the side
    group), ``"file"`` (not received; read from its last file in ``output_dir``) or ``"missing"``.
    ``energy_j`` is the rank's own report: its GPU plus the node sensors it read, which other
    ranks of the node read too, so rank figures do not add up to the job's.
    """

    rank: int
    local_rank: int | None = None
    node_id: str | None = None
    node_rank: int | None = None
    restart: int = 0
    source: Literal["self", "gathered", "file", "missing"]
    file: str | None = None
    status: str | None = None
    energy_j: float | None = None
    examples: int | None = None
    tokens: int | None = None
    gpus: list[str] = Field(default_factory=list)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    problem: str | None = None


_STATUS = Literal["complete", "running", "interrupted", "partial"]


_CLASSES: dict[type[Any], type[Any]] = {}


def job_report_class(base: type[Any]) -> type[Any]:
    """The job report class for reports of class ``base`` (EnergyReport, FinetuneReport, ...):
    ``base`` itself when it already has the job fields, else a subclass adding them."""
    if "nodes" in base.model_fields:
        return base
    cls = _CLASSES.get(base)
    if cls is None:
        cls = _CLASSES[base] = _make(base)
    return cls


def _make(base: type[Any]) -> type[Any]:
    return create_model(
        f"Job{base.__name__}",
        __base__=base,
        __module__=__name__,
        status=(_STATUS, "complete"),
        nodes=(list[NodeReport], Field(default_factory=list)),
        ranks=(list[RankReport], Field(default_factory=list)),
        missing_ranks=(list[int], Field(default_factory=list)),
    )
