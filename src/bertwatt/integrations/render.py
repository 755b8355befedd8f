"""Plain-text rendering of the fine-tuning and inference parts of a report."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from bertwatt.report.render import format_energy

if TYPE_CHECKING:
    from bertwatt.integrations.report import FinetuneReport, InferenceReport, PhaseMetrics

__all__ = [
    "format_small_j",
    "render_finetune",
    "render_inference",
    "render_resume",
    "render_run",
]


def format_small_j(value: float | None) -> str:
    """Energy with an SI prefix suited to per-token and per-example figures."""
    if value is None:
        return "-"
    a = abs(value)
    if a >= 1000:
        return f"{value / 1000:.3g} kJ"
    if a >= 1 or a == 0:
        return f"{value:.3g} J"
    if a >= 1e-3:
        return f"{value * 1e3:.3g} mJ"
    return f"{value * 1e6:.3g} uJ"


def _phase_line(m: PhaseMetrics, emissions: bool) -> str:
    line = (
        f"    {m.name:<12} {format_small_j(m.energy_j):>10} {m.duration_s:9.2f} s "
        f"{(f'{m.mean_power_w:.1f} W' if m.mean_power_w is not None else '-'):>9} "
        f"{format_small_j(m.j_per_example):>10} {format_small_j(m.j_per_step):>10} "
        f"{format_small_j(m.j_per_token_padded):>10} "
        f"{format_small_j(m.j_per_token_nonpadding):>10} "
        f"{m.examples:>9,} {m.tokens_padded:>11,}"
    )
    if emissions:
        line += f" {('-' if m.emissions_g is None else f'{m.emissions_g:.4g} g'):>11}"
    return line


def _when(t: datetime) -> str:
    return f"{t:%Y-%m-%d %H:%M:%S}"


def render_resume(report: FinetuneReport) -> list[str]:
    """Lines saying the run was resumed, its segments, and the energy lost after a checkpoint."""
    r = report.resume
    lines = []
    if r is not None:
        if r.lost_energy_upper_j is None:
            lines.append(
                "  resumed: the energy the interrupted run spent after its last checkpoint is "
                "unknown (see basis)"
            )
        lines.append(f"  resume basis: {r.basis}")
    if len(report.segments) > 1 or r is not None:
        lines.append("  segments:")
        for seg in report.segments:
            steps = "-" if seg.steps is None else f"{seg.steps:,}"
            lines.append(
                f"    {seg.index}  {_when(seg.started_at)} - {_when(seg.ended_at)} UTC  "
                f"{steps:>7} steps  {format_energy(seg.energy_j):>14}  {seg.ended_by}"
                f"  (run {seg.run_id[:8]})"
            )
    return lines


def render_run(report: FinetuneReport) -> list[str]:
    """What was fine-tuned (``report.run``), on one or two lines."""
    run = report.run
    if run is None:
        return []
    parts = []
    if run.model_class:
        parts.append(run.model_class + (f" ({run.model_name})" if run.model_name else ""))
    if run.parameters_total is not None:
        trainable = (
            f", {run.parameters_trainable:,} trainable"
            if run.parameters_trainable is not None
            and run.parameters_trainable != run.parameters_total
            else ""
        )
        parts.append(f"{run.parameters_total:,} parameters{trainable}")
    if run.precision:
        parts.append(run.precision)
    if run.batch_size is not None:
        parts.append(f"batch {run.batch_size}")
    if run.gradient_accumulation_steps not in (None, 1):
        parts.append(f"x{run.gradient_accumulation_steps} accumulation")
    if run.world_size not in (None, 1):
        parts.append(f"{run.world_size} processes")
    if run.max_seq_length is not None:
        parts.append(f"longest sequence {run.max_seq_length}")
    if run.dataset_sizes:
        parts.append(
            "data " + ", ".join(f"{k} {v:,}" for k, v in sorted(run.dataset_sizes.items()))
        )
    lines = [f"  run: {'; '.join(parts)}"] if parts else []
    if run.flops_estimate is not None:
        lines.append(f"  training FLOPs: {run.flops_estimate:.3g} ({run.flops_basis})")
    return lines


def render_finetune(report: FinetuneReport) -> str:
    """The fine-tuning block of :meth:`FinetuneReport.summary`."""
    lines = [f"  fine-tuning figures are {report.figures}"]
    lines.extend(render_run(report))
    lines.extend(render_resume(report))
    share = report.padding_share
    lines.append(
        f"  training work: {report.steps:,} optimizer steps, {report.examples:,} examples, "
        f"{report.tokens_padded:,} tokens processed, {report.tokens_nonpadding:,} non-padding"
        + (f" (padding {share:.1%})" if share is not None else "")
        + (
            f" (padding unknown for {report.tokens_unknown:,} tokens: no attention mask, no pad id)"
            if report.tokens_unknown
            else ""
        )
    )
    if report.phase_metrics:
        emissions = any(m.emissions_g is not None for m in report.phase_metrics.values())
        header = (
            f"    {'phase':<12} {'energy':>10} {'time':>11} {'mean':>9} {'J/example':>10} "
            f"{'J/step':>10} {'J/token':>10} {'J/real tok':>10} {'examples':>9} {'tokens':>11}"
        )
        if emissions:
            header += f" {'gCO2e':>11}"
        every = ", all segments" if report.resume is not None else ""
        lines.append(f"  per phase (J/token: per token processed, padding included{every}):")
        lines.append(header)
        for m in report.phase_metrics.values():
            lines.append(_phase_line(m, emissions))
    if report.outside_phases_j is not None:
        lines.append(
            f"    outside phases (setup before training, teardown): "
            f"{format_small_j(report.outside_phases_j)}"
        )
    se = report.step_energy
    if se is not None and se.mean_j is not None:
        spread = ""
        if se.p10_j is not None and se.p90_j is not None:
            spread = f", p10-p90 {format_small_j(se.p10_j)}-{format_small_j(se.p90_j)}"
        lines.append(
            f"  per optimizer step: mean {format_small_j(se.mean_j)}, median "
            f"{format_small_j(se.median_j)}{spread} ({se.records} records"
            + (f" of up to {se.steps_per_record} steps" if se.steps_per_record > 1 else "")
            + ")"
        )
        if se.total_energy_j is not None and se.between_steps_j is not None:
            lines.append(
                f"    steps sum to {format_small_j(se.total_energy_j)}; "
                f"{format_small_j(se.between_steps_j)} of the train phase fell between steps"
            )
    pad = report.padding
    if pad is not None:
        cost = ""
        if pad.energy_j is not None:
            cost = f", ~{format_small_j(pad.energy_j)}"
            if pad.energy_share is not None:
                cost += f" ({pad.energy_share:.0%} of training energy)"
        lengths = ""
        if pad.length_p50 is not None:
            lengths = (
                f"; real length per example: median {pad.length_p50}, p99 {pad.length_p99}, "
                f"max {pad.length_max}"
            )
        lines.append(f"  padding: {pad.share:.1%} of tokens processed{cost}{lengths}")
        for r in pad.remedies:
            lines.append(f"    remedy: {r}")
    p = report.prediction
    if p is not None:
        actual = ""
        if p.actual_energy_j is not None:
            actual = f", actual {format_energy(p.actual_energy_j)}"
            if p.error is not None:
                actual += f" (prediction error {p.error:+.1%})"
        lines.append(
            f"  prediction at step {p.at_step}/{p.total_steps}: "
            f"{format_energy(p.predicted_energy_j)}{actual}"
        )
        lines.append(f"    basis: {p.basis}")
        for n in p.notes:
            lines.append(f"    note: {n}")
    pv = report.perspective
    if pv is not None:
        if pv.inference_queries is not None:
            lines.append(
                f"  perspective: the run's {format_energy(pv.energy_j)} equal "
                f"{pv.inference_queries:,.0f} inference queries at "
                f"{format_small_j(pv.inference_j_per_query)} per query ({pv.inference_source})"
            )
            if pv.inference_setting:
                lines.append(f"    at this setting only: {pv.inference_setting}")
        if pv.pretraining_fraction is not None:
            lines.append(
                f"  perspective: {pv.pretraining_fraction:.3g} of one pre-training run "
                f"({format_energy(pv.pretraining_energy_j)}; {pv.pretraining_source})"
            )
    return "\n".join(lines)


def render_inference(report: InferenceReport) -> str:
    """The per-query block of :meth:`InferenceReport.summary`."""
    lines = [f"  inference figures are {report.figures}"]
    lines.append(
        f"  {report.queries:,} queries in {report.batches:,} batches"
        + (f" of {report.batch_size}" if report.batch_size else "")
        + f" ({report.warmup_queries} warm-up queries measured apart), "
        f"{report.tokens_padded:,} tokens processed, {report.tokens_nonpadding:,} non-padding"
    )
    lines.append(
        f"  per query: {format_small_j(report.j_per_query)}; per token processed: "
        f"{format_small_j(report.j_per_token_padded)}; per non-padding token: "
        f"{format_small_j(report.j_per_token_nonpadding)}"
    )
    if report.setting:
        lines.append(f"  setting: {report.setting}")
    return "\n".join(lines)
