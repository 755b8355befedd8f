"""Assemble a :class:`FinetuneReport` from the meter's report and a session's counts."""

from __future__ import annotations

import math
import statistics
from typing import TYPE_CHECKING, Any

from bertwatt.integrations.padding import padding_report
from bertwatt.integrations.perspective import build_perspective
from bertwatt.integrations.report import (
    FinetuneReport,
    PhaseMetrics,
    PredictionReport,
    StepEnergies,
    figures_basis,
)
from bertwatt.integrations.tokens import WorkCounts

if TYPE_CHECKING:
    from bertwatt.integrations.session import FinetuneSession
    from bertwatt.report.models import EnergyReport

__all__ = ["build_finetune_report", "phase_metrics"]


def _ratio(energy: float | None, count: int) -> float | None:
    return energy / count if energy is not None and count > 0 else None


def phase_metrics(
    name: str,
    energy_j: float | None,
    duration_s: float,
    counts: WorkCounts,
    steps: int,
    emissions_g: float | None = None,
) -> PhaseMetrics:
    """Normalised figures of one phase."""
    j_tok = _ratio(energy_j, counts.tokens_padded)
    return PhaseMetrics(
        name=name,
        energy_j=energy_j,
        duration_s=duration_s,
        mean_power_w=(energy_j / duration_s) if energy_j is not None and duration_s > 0 else None,
        examples=counts.examples,
        steps=steps,
        batches=counts.batches,
        tokens_padded=counts.tokens_padded,
        tokens_nonpadding=counts.tokens_nonpadding,
        padding_share=counts.padding_share,
        j_per_example=_ratio(energy_j, counts.examples),
        j_per_step=_ratio(energy_j, steps),
        j_per_token_padded=j_tok,
        j_per_token_nonpadding=_ratio(energy_j, counts.tokens_nonpadding),
        padding_energy_j=(j_tok * counts.tokens_padding) if j_tok is not None else None,
        emissions_g=emissions_g,
    )


def _quantile(sorted_values: list[float], q: float) -> float:
    k = (len(sorted_values) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def _attribution(base: EnergyReport) -> str:
    kinds = {c.kind for c in base.channels if c.counted}
    parts = []
    if "counter" in kinds:
        parts.append("energy counters read at every step edge: each step's energy is exact")
    if "power" in kinds:
        parts.append(
            f"power sampled every {base.interval_s:g} s and at step edges, trapezoid-integrated: "
            "a step shorter than the sampling interval gets the mean of the readings at its "
            "edges, so single steps are smoothed; their sum is exact"
        )
    return "; ".join(parts)


def _step_energies(session: FinetuneSession, base: EnergyReport) -> StepEnergies | None:
    log = session.step_log
    if not len(log):
        return None
    energies: list[float | None] = [
        log.energy_j[k] if log.resolved[k] and math.isfinite(log.energy_j[k]) else None
        for k in range(len(log))
    ]
    known = [e for e in energies if e is not None]
    total = sum(known) if known else None
    notes = []
    missing = len(energies) - len(known)
    if missing:
        notes.append(f"{missing} record(s) have no energy (a channel did not resolve their edges)")
        total = None
    if log.stride > 1:
        notes.append(
            f"long run: neighbouring steps were merged to keep at most {log.capacity} records; "
            f"each record now covers up to {log.stride} steps"
        )
    train = base.phases.get("train")
    between = None
    if total is not None and train is not None and train.energy_j is not None:
        between = train.energy_j - total
    per_step = sorted(log.per_step_j())
    return StepEnergies(
        steps_per_record=log.stride,
        records=len(log),
        first_step=list(log.first_step),
        steps=list(log.steps),
        duration_s=list(log.duration_s),
        energy_j=energies,
        examples=list(log.examples),
        tokens_padded=list(log.tokens_padded),
        tokens_nonpadding=list(log.tokens_nonpadding),
        total_energy_j=total,
        between_steps_j=between,
        mean_j=statistics.fmean(per_step) if per_step else None,
        median_j=statistics.median(per_step) if per_step else None,
        p10_j=_quantile(per_step, 0.1) if per_step else None,
        p90_j=_quantile(per_step, 0.9) if per_step else None,
        attribution=_attribution(base),
        notes=notes,
    )


def _prediction(session: FinetuneSession, base: EnergyReport) -> PredictionReport | None:
    p = session.prediction
    if p is None:
        return None
    meter = session.meter
    actual = None
    if session.train_start_mark is not None and session.train_end_mark is not None:
        actual = meter.energy_between(session.train_start_mark, session.train_end_mark).energy_j
    factor = session.intensity_now()
    actual_g = None
    if actual is not None and base.emissions_g is not None and base.energy_j:
        actual_g = actual * base.emissions_g / base.energy_j
    notes = list(p.notes)
    notes.append("actual: energy from train begin to train end, evaluations and checkpoints in it")
    return PredictionReport(
        at_step=p.at_step,
        total_steps=p.total_steps,
        predicted_energy_j=p.energy_j,
        predicted_emissions_g=(p.energy_j / 3.6e6 * factor) if factor is not None else None,
        basis=p.basis,
        actual_energy_j=actual,
        actual_emissions_g=actual_g,
        error=((p.energy_j - actual) / actual) if actual else None,
        notes=notes,
    )


def build_finetune_report(session: FinetuneSession, base: EnergyReport) -> FinetuneReport:
    """Combine the meter's report with the session's counts, steps, prediction and padding."""
    session.step_log.resolve(session.meter)
    carbon_phases: dict[str, float] = dict(base.carbon.phases) if base.carbon else {}
    metrics: dict[str, PhaseMetrics] = {}
    for name, ph in base.phases.items():
        metrics[name] = phase_metrics(
            name,
            ph.energy_j,
            ph.duration_s,
            session.counts.get(name, WorkCounts()),
            session.phase_steps.get(name, 0),
            carbon_phases.get(name),
        )
    run = WorkCounts()
    for mode in session.modes_used:
        run.add(session.counts.get(mode, WorkCounts()))
    metrics["run"] = phase_metrics(
        "run", base.energy_j, base.duration_s, run, session.steps_done, base.emissions_g
    )
    outside = None
    if base.energy_j is not None:
        parts = [base.phases[m].energy_j for m in session.modes_used if m in base.phases]
        if all(p is not None for p in parts):
            outside = base.energy_j - sum(p for p in parts if p is not None)
    train_counts = session.counts.get("train", WorkCounts())
    train_metrics = metrics.get("train")
    padding = padding_report(
        train_counts,
        session.train_tokens.lengths,
        j_per_token_padded=train_metrics.j_per_token_padded if train_metrics else None,
        train_energy_j=train_metrics.energy_j if train_metrics else None,
        grouped_by_length=session.grouped_by_length,
        grouping_hint=session.grouping_hint,
    )
    warnings = list(base.warnings)
    for w in session.warnings:
        if w not in warnings:
            warnings.append(w)
    if padding is not None and padding.large:
        warnings.append(
            f"{padding.share:.0%} of the tokens processed in training were padding"
            + (f" (~{padding.energy_j:,.1f} J)" if padding.energy_j is not None else "")
            + "; see padding.remedies"
        )
    extra: dict[str, Any] = dict(base.extra)
    extra.update(session.extra)
    data = base.model_dump()
    data.update(
        warnings=warnings,
        extra=extra,
        examples=train_counts.examples,
        steps=session.steps_done,
        tokens_padded=train_counts.tokens_padded,
        tokens_nonpadding=train_counts.tokens_nonpadding,
        figures=figures_basis(base),
        phase_metrics={k: v.model_dump() for k, v in metrics.items()},
        outside_phases_j=outside,
        step_energy=_step_energies(session, base),
        padding=padding,
        prediction=_prediction(session, base),
    )
    report = FinetuneReport.model_validate(data)
    perspective = build_perspective(
        report,
        session.perspective.get("inference"),
        pretraining_energy_kwh=session.perspective.get("pretraining_energy_kwh"),
        pretraining_source=session.perspective.get("pretraining_source"),
    )
    return report.model_copy(update={"perspective": perspective})
