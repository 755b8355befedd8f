"""Building the job report from the ranks' reports: every node sensor counted once per node.

Rules (docs/distributed.md explains why):

- a channel is identified by its node and name (GPU channels name one physical GPU, whose UUID
  is in ``info``); the same channel of the same node read by several ranks is merged by
  :meth:`EnergyReport.merge`, which counts it once;
- channels of different nodes add, even when the nodes share a hostname (``BERTWATT_NODE_ID``);
- an estimate attributed to one process (``EstimateBackend(utilisation="process")``) is that
  process's own and is summed over ranks; a machine-wide estimate is counted once per node;
- examples and tokens add over ranks; optimizer steps are the same steps on every rank of a
  data-parallel job, so the job's ``steps`` is the largest rank's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bertwatt.distributed.gpus import node_gpus
from bertwatt.distributed.share import own_share
from bertwatt.report.job import GPUEntry, NodeReport, RankReport, job_report_class
from bertwatt.report.merge import _around, _widths, merge_reports, per_process
from bertwatt.report.merge_wall import node_total

__all__ = [
    "DIST_KEY",
    "Part",
    "annotate",
    "build_job_report",
    "job_log_metrics",
    "own_share",
    "rank_meta",
    "thin_report",
]

#: Key of a rank report's ``extra`` holding its rank, node and GPU facts.
DIST_KEY = "distributed"

_J_PER_KWH = 3.6e6


@dataclass(slots=True)
class Part:
    """One rank's report as rank 0 has it, and where it came from."""

    rank: int
    report: Any
    source: str
    file: str | None = None


def annotate(report: Any, facts: Mapping[str, Any]) -> Any:
    """A copy of ``report`` with ``facts`` (rank, node, GPUs, file) in ``extra["distributed"]``
    and the node id on every channel and unavailable entry."""
    node = str(facts.get("node_id") or "")
    extra = dict(report.extra)
    extra[DIST_KEY] = dict(facts)
    update: dict[str, Any] = {"extra": extra}
    share = own_share(
        report,
        int(facts.get("local_world_size") or 1),
        local_rank=int(facts.get("local_rank") or 0),
        gpus=facts.get("gpus") if isinstance(facts.get("gpus"), Mapping) else None,
    )
    if share is not None:
        extra[DIST_KEY]["own_share"] = share
        note = share["basis"]
        if note not in report.warnings:
            update["warnings"] = [*report.warnings, note]
    if node:
        update["channels"] = [_on_node(c, node) for c in report.channels]
        update["unavailable"] = [_on_node(u, node) for u in report.unavailable]
        if "node_id" in type(report).model_fields:
            update["node_id"] = node
    return report.model_copy(update=update)


def _on_node(item: Any, node: str) -> Any:
    update: dict[str, Any] = {"host": node}
    if "node_id" in type(item).model_fields:
        update["node_id"] = node
    return item.model_copy(update=update)


def rank_meta(report: Any) -> dict[str, Any] | None:
    """The rank facts :func:`annotate` stored, or None for a report of a single process."""
    meta = report.extra.get(DIST_KEY) if isinstance(report.extra, dict) else None
    return meta if isinstance(meta, dict) and isinstance(meta.get("rank"), int) else None


def _thin_points(points: list[Any], limit: int) -> list[Any]:
    n = len(points)
    if n <= limit or limit < 2:
        return points
    step = (n - 1) / (limit - 1)
    return [points[round(i * step)] for i in range(limit)]


def thin_report(report: Any, max_points: int = 64) -> Any:
    """A copy with every timeline cut to at most ``max_points`` points (first and last kept),
    small enough to send to rank 0; totals, phases and provenance are untouched."""
    channels = [
        c.model_copy(update={"timeline": _thin_points(c.timeline, max_points)})
        for c in report.channels
    ]
    return report.model_copy(
        update={"channels": channels, "timeline": _thin_points(report.timeline, max_points)}
    )


def _rank_channels(report: Any, rank: int) -> Any:
    """Rename per-process estimate channels so that they add over ranks instead of merging."""
    if not any(per_process(c) for c in report.channels):
        return report
    renamed = {c.name: f"{c.name}@rank{rank}" for c in report.channels if per_process(c)}
    channels = [
        c.model_copy(update={"name": renamed[c.name]}) if c.name in renamed else c
        for c in report.channels
    ]
    phases = {
        name: ph.model_copy(
            update={"channels": {renamed.get(k, k): v for k, v in ph.channels.items()}}
        )
        for name, ph in report.phases.items()
    }
    return report.model_copy(update={"channels": channels, "phases": phases})


def _node_energy(
    channels: Sequence[Any], duration_s: float
) -> tuple[float | None, tuple[float, float] | None, str | None]:
    """A node's energy (the total rule of any report: counted components, a wall meter only
    without them), its interval (the widths of the channels added, added) and how."""
    energy, basis, added = node_total(channels, duration_s)
    if energy is None:
        return None, None, None
    widths = _widths((c.energy_j, c.energy_interval_j) for c in added)
    if widths is None:
        lacking = sorted(c.name for c in added if c.energy_interval_j is None)
        return energy, None, f"no interval: {', '.join(lacking)} carried none"
    return (
        energy,
        _around(energy, widths),
        f"{basis}: the lows and highs of these channels' intervals added",
    )


def _job_interval(nodes: Sequence[NodeReport], energy: float | None) -> tuple[Any, str | None]:
    """The job's interval: the nodes' interval widths added around the job's energy."""
    if energy is None:
        return None, None
    counted = [n for n in nodes if n.energy_j is not None]
    lacking = [n.node_id for n in counted if n.energy_interval_j is None]
    if lacking:
        return None, f"no interval: node(s) {', '.join(lacking)} have none"
    widths = _widths((n.energy_j, n.energy_interval_j) for n in counted)
    return _around(energy, widths), (
        f"the interval widths of the {len(counted)} node(s) added (each node: the lows and "
        "highs of its counted channels' intervals added)"
    )


def _work(report: Any) -> tuple[int | None, int | None]:
    examples = getattr(report, "examples", None)
    if examples is None:
        examples = getattr(report, "queries", None)
    tokens = getattr(report, "tokens_padded", None)
    return examples, tokens


def _rank_entry(part: Part, problem: str | None = None) -> RankReport:
    rep = part.report
    meta = rank_meta(rep) or {}
    examples, tokens = _work(rep)
    gpus = meta.get("gpus", {}).get("owned", []) if isinstance(meta.get("gpus"), dict) else []
    return RankReport(
        rank=part.rank,
        local_rank=meta.get("local_rank"),
        node_id=meta.get("node_id"),
        node_rank=meta.get("node_rank"),
        restart=int(meta.get("restart") or 0),
        source=part.source,  # type: ignore[arg-type]
        file=part.file,
        status=rep.status,
        energy_j=rep.energy_j,
        examples=examples,
        tokens=tokens,
        gpus=list(gpus),
        started_at=rep.started_at,
        ended_at=rep.ended_at,
        problem=problem,
    )


def _carbon_of(parts: Sequence[Part]) -> tuple[float, float, Any] | None:
    for p in parts:
        c = p.report.carbon
        if c is not None:
            return c.intensity_g_per_kwh, c.pue, c
    return None


def _nodes(merged: Any, parts: Sequence[Part]) -> list[NodeReport]:
    by_node: dict[str, list[Part]] = {}
    for p in parts:
        meta = rank_meta(p.report) or {}
        by_node.setdefault(str(meta.get("node_id") or p.report.host.hostname), []).append(p)
    nodes = []
    for node_id, node_parts in by_node.items():
        channels = [c for c in merged.channels if c.host == node_id]
        energy, interval, interval_basis = _node_energy(channels, merged.duration_s)
        carbon = _carbon_of(node_parts)
        emissions = None
        if carbon is not None and energy is not None:
            emissions = energy / _J_PER_KWH * carbon[1] * carbon[0]
        claims = []
        for p in node_parts:
            gpus = (rank_meta(p.report) or {}).get("gpus")
            if isinstance(gpus, dict):
                claims.append((p.rank, gpus))
        uuid_channel = {c.info.get("uuid"): c.name for c in channels if c.domain == "gpu"}
        table = node_gpus(claims)
        meta0 = rank_meta(node_parts[0].report) or {}
        nodes.append(
            NodeReport(
                node_id=node_id,
                name=str(meta0.get("node_name") or node_parts[0].report.host.hostname),
                ranks=sorted(p.rank for p in node_parts),
                channels=[c.name for c in channels],
                gpus=[
                    GPUEntry(
                        uuid=g.uuid,
                        channel=uuid_channel.get(g.uuid),
                        ranks=g.ranks,
                        counted=g.counted and g.uuid in uuid_channel,
                    )
                    for g in table.values()
                ],
                energy_j=energy,
                energy_interval_j=interval,
                interval_basis=interval_basis,
                emissions_g=emissions,
            )
        )
    return nodes


def _finetune_fields(parts: Sequence[Part], energy: float | None) -> dict[str, Any]:
    reps = [p.report for p in parts]
    fields: dict[str, Any] = {}
    names = type(reps[0]).model_fields
    for key in ("examples", "tokens_padded", "tokens_nonpadding", "queries", "batches"):
        if key in names:
            fields[key] = sum(int(getattr(r, key, 0) or 0) for r in reps)
    if "steps" in names:
        fields["steps"] = max(int(getattr(r, "steps", 0) or 0) for r in reps)
    if "warmup_queries" in names:
        fields["warmup_queries"] = sum(int(getattr(r, "warmup_queries", 0) or 0) for r in reps)
    for count, key in (
        ("queries", "j_per_query"),
        ("tokens_padded", "j_per_token_padded"),
        ("tokens_nonpadding", "j_per_token_nonpadding"),
    ):
        if key in names:
            n = fields.get(count, 0)
            fields[key] = energy / n if energy is not None and n else None
    if "figures" in names:
        fields["figures"] = "; ".join(dict.fromkeys(r.figures for r in reps if r.figures))
    return fields


def build_job_report(
    parts: Sequence[Part],
    *,
    world_size: int,
    missing: Mapping[int, str] | None = None,
    job: Mapping[str, Any] | None = None,
) -> Any:
    """Merge the ranks' reports into the job report.

    Args:
        parts: the reports rank 0 has (its own, those gathered, files of missing ranks).
        world_size: ranks in the job; any rank without a part is listed missing.
        missing: rank -> why its report did not arrive (those ranks may still have a part read
            from their file).
        job: ``job_id``, ``launcher``, ``restart`` of the job.

    Returns:
        A report of the parts' class extended with ``nodes``, ``ranks``, ``missing_ranks``
        (:func:`~bertwatt.report.job.job_report_class`); ``status`` is ``"partial"``
        when a rank is missing.
    """
    from bertwatt.report.models import EnergyReport

    if not parts:
        raise ValueError("build_job_report needs at least one rank's report")
    missing = dict(missing or {})
    ordered = sorted(parts, key=lambda p: p.rank)
    prepared = [_rank_channels(p.report, p.rank) for p in ordered]
    names = [p.file or f"rank {p.rank}" for p in ordered]
    merged = merge_reports(prepared, names=names)  # messages name the rank files
    nodes = _nodes(
        merged, [Part(p.rank, r, p.source, p.file) for p, r in zip(ordered, prepared, strict=True)]
    )
    known = [n.energy_j for n in nodes if n.energy_j is not None]
    energy = math.fsum(known) if known else None
    duration = merged.duration_s
    have = {p.rank for p in ordered}
    missing_ranks = sorted(set(missing) | (set(range(world_size)) - have))
    ranks = [_rank_entry(p, missing.get(p.rank)) for p in ordered]
    for r in missing_ranks:
        if r not in have:
            ranks.append(RankReport(rank=r, source="missing", problem=missing.get(r)))
    ranks.sort(key=lambda e: e.rank)
    # each rank's "own share" note is about that rank alone: the job counts node sensors once
    warnings = [w for w in merged.warnings if not w.startswith("this rank's own share")]
    if missing_ranks:
        detail = "; ".join(
            f"rank {r}: {missing.get(r) or 'no report'}"
            + (" (its last file is merged)" if r in have else "")
            for r in missing_ranks
        )
        warnings.append(f"partial job report: {len(missing_ranks)} rank(s) missing ({detail})")
    emissions = [n.emissions_g for n in nodes]
    total_emissions = None
    carbon_note = merged.carbon_note
    if any(e is not None for e in emissions):
        total_emissions = math.fsum(e for e in emissions if e is not None)
        if any(e is None for e in emissions):
            carbon_note = "emissions cover only the nodes with a carbon intensity configured"
    base = type(ordered[0].report)
    if any(type(p.report) is not base for p in ordered):
        base = EnergyReport
    data = merged.model_dump()
    data.pop("extra", None)
    if "run" in data and data.get("run") is not None:
        data["run"]["world_size"] = world_size
    fields = {k: v for k, v in data.items() if k in base.model_fields}
    carbon = _carbon_of(ordered)
    interval, interval_basis = _job_interval(nodes, energy)
    fields.update(
        energy_j=energy,
        energy_kwh=None if energy is None else energy / _J_PER_KWH,
        energy_interval_j=interval,
        interval_basis=interval_basis,
        mean_power_w=energy / duration if energy is not None and duration > 0 else None,
        warnings=warnings,
        emissions_g=total_emissions,
        carbon=None,
        carbon_note=carbon_note,
    )
    if carbon is not None and total_emissions is not None and energy is not None:
        same = {
            (p.report.carbon.intensity_g_per_kwh, p.report.carbon.pue)
            for p in ordered
            if p.report.carbon is not None
        }
        if len(same) == 1:
            kwh = energy / _J_PER_KWH
            fields["carbon"] = (
                carbon[2]
                .model_copy(
                    update={
                        "it_energy_kwh": kwh,
                        "facility_energy_kwh": kwh * carbon[1],
                        "emissions_g": total_emissions,
                        "phases": {},
                    }
                )
                .model_dump()
            )
        else:
            fields["carbon_note"] = "nodes used different carbon intensities or PUE; see nodes"
    if base is not EnergyReport:
        fields.update(_finetune_fields(ordered, energy))
    job = dict(job or {})
    extra = {k: v for k, v in merged.extra.items() if k != DIST_KEY}
    extra["merged_from"] = names
    extra["job"] = {
        "world_size": world_size,
        "job_id": job.get("job_id"),
        "launcher": job.get("launcher"),
        "restart": int(job.get("restart") or 0),
    }
    cls = job_report_class(base)
    return cls.model_validate(
        {
            **fields,
            "status": "partial" if missing_ranks else merged.status,
            "extra": extra,
            "nodes": [n.model_dump() for n in nodes],
            "ranks": [r.model_dump() for r in ranks],
            "missing_ranks": missing_ranks,
        }
    )


def job_log_metrics(job: Any) -> dict[str, float]:
    """Job-level ``energy/job_*`` figures for the Trainer's log on rank 0 at train end."""
    out: dict[str, float] = {}
    energy = job.energy_j
    if energy is None:
        return out
    out["energy/job_kwh"] = energy / _J_PER_KWH
    if job.duration_s > 0:
        out["energy/job_mean_power_w"] = energy / job.duration_s
    for count, key in (
        ("examples", "energy/job_j_per_example"),
        ("tokens_padded", "energy/job_j_per_token"),
        ("tokens_nonpadding", "energy/job_j_per_token_nonpadding"),
    ):
        n = getattr(job, count, 0) or 0
        if n:
            out[key] = energy / n
    if job.emissions_g is not None:
        out["energy/job_gco2e"] = float(job.emissions_g)
    out["energy/job_ranks"] = float(len([r for r in job.ranks if r.source != "missing"]))
    out["energy/job_missing_ranks"] = float(len(job.missing_ranks))
    return out
