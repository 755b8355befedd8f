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
from bertwatt.integrations.runinfo import flops_fields, observed_batching
from bertwatt.integrations.snapshot import SessionSnapshot
from bertwatt.integrations.tokens import WorkCounts

if TYPE_CHECKING:
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
        padding_energy_j=(
            j_tok * counts.tokens_padding
            if j_tok is not None and counts.padding_share is not None
            else None
        ),
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


def _step_energies(snap: SessionSnapshot, base: EnergyReport) -> StepEnergies | None:
    log = snap.step_log
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


def _prediction(snap: SessionSnapshot, base: EnergyReport) -> PredictionReport | None:
    p = snap.prediction
    if p is None:
        return None
    meter = snap.meter
    actual = None
    if snap.train_start_mark is not None and snap.train_end_mark is not None:
        actual = meter.energy_between(snap.train_start_mark, snap.train_end_mark).energy_j
    factor = snap.intensity_g_per_kwh
    actual_g = None
    if actual is not None and base.emissions_g is not None and base.energy_j:
        actual_g = actual * base.emissions_g / base.energy_j
    notes = list(p.notes)
    notes.append("actual: energy from train begin to train end, evaluations and checkpoints in it")
    prev = snap.previous
    if prev is not None:
        carried = "unknown" if prev.energy_j is None else f"{prev.energy_j:,.1f} J"
        notes.append(
            f"resumed run: predicted and actual cover this session (after step {prev.from_step}); "
            f"the earlier segments' {carried} come on top (the energy/predicted_* log keys "
            "include them)"
        )
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


def _add(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


def _continued(prev: dict[str, Any] | None, m: PhaseMetrics | None, name: str) -> PhaseMetrics:
    """A phase's figures over every segment: the checkpointed ones plus this session's."""
    if prev is None:
        assert m is not None
        return m
    counts = WorkCounts(
        examples=int(prev.get("examples") or 0),
        batches=int(prev.get("batches") or 0),
        tokens_padded=int(prev.get("tokens_padded") or 0),
        tokens_nonpadding=int(prev.get("tokens_nonpadding") or 0),
    )
    energy = prev.get("energy_j")
    duration = float(prev.get("duration_s") or 0.0)
    steps = int(prev.get("steps") or 0)
    emissions = prev.get("emissions_g")
    if m is not None:
        counts.add(WorkCounts(m.examples, m.batches, m.tokens_padded, m.tokens_nonpadding))
        energy = _add(energy, m.energy_j)
        duration += m.duration_s
        steps += m.steps
        emissions = _add(emissions, m.emissions_g)
    return phase_metrics(name, energy, duration, counts, steps, emissions)


def _segment(
    snap: SessionSnapshot, base: EnergyReport, index: int, run_id: str | None
) -> dict[str, Any]:
    ended_by = "running" if base.status == "running" else snap.ended_by
    if ended_by == "running" and base.status != "running":
        ended_by = "completed"
    return {
        "index": index,
        "run_id": run_id,
        "started_at": base.started_at,
        "ended_at": base.ended_at,
        "steps": snap.steps_done,
        "energy_j": base.energy_j,
        "ended_by": ended_by,
    }


def _status(snap: SessionSnapshot, base: EnergyReport) -> str:
    if base.status == "running":
        return "running"
    if snap.ended_by in ("error", "interrupted"):
        return "interrupted"
    return str(base.status)


def _run_info(snap: SessionSnapshot, base: EnergyReport, tokens_padded: int) -> dict[str, Any]:
    """``report.run``: the meter's (``EnergyMeter(run=...)``), the earlier segments', observed
    facts, the model's and the Trainer's, then the ones stated with ``describe``."""
    lengths = snap.train_lengths
    run: dict[str, Any] = base.run.model_dump(exclude_none=True) if base.run else {}
    prev = snap.previous
    if prev is not None:
        run.update({k: v for k, v in prev.run.items() if not k.startswith("flops_")})
    if not snap.auto_eval:  # a plain loop: batching as observed in the forward calls
        run.update(observed_batching(lengths.batch_examples))
    run.update(snap.run_facts)
    longest = max(lengths.padded_lengths, default=None)
    if longest is not None:
        run["max_seq_length"] = max(longest, int(run.get("max_seq_length") or 0))
    sizes = dict(run.get("dataset_sizes") or {})
    sizes.update(snap.run_facts.get("dataset_sizes") or {})
    if sizes:
        run["dataset_sizes"] = sizes
    run.update(snap.stated_facts)
    run.update(flops_fields(run.get("parameters_total"), tokens_padded))
    return run


def _resume_fields(snap: SessionSnapshot, base: EnergyReport) -> dict[str, Any]:
    """Totals, basis, warnings, segments and ``resume`` of a resumed run (empty when not)."""
    prev = snap.previous
    if prev is None:
        return {}
    energy = _add(prev.energy_j, base.energy_j)
    warnings = []
    if prev.energy_j is None and base.energy_j is not None:
        warnings.append(
            "resumed run: the earlier segments measured no energy, so the run's total is unknown "
            f"(this session: {base.energy_j:,.3f} J, see segments)"
        )
    emissions = _add(prev.emissions_g, base.emissions_g)
    if emissions is None and (prev.emissions_g is None) != (base.emissions_g is None):
        which = "the earlier segments" if prev.emissions_g is None else "this session"
        warnings.append(
            f"resumed run: {which} had no carbon intensity, so the run's emissions are unknown"
        )
    carried = "not measured" if prev.energy_j is None else f"{prev.energy_j:,.3f} J"
    iv = base.energy_interval_j
    return {
        "energy_j": energy,
        "energy_kwh": None if energy is None else energy / 3.6e6,
        # the window's interval, moved by the earlier segments' energy (a point figure)
        "energy_interval_j": (iv[0] + prev.energy_j, iv[1] + prev.energy_j)
        if iv is not None and prev.energy_j is not None and energy is not None
        else None,
        "interval_basis": f"{base.interval_basis}; shifted by the earlier segments' energy, "
        "carried as a point figure"
        if iv is not None and prev.energy_j is not None and energy is not None
        else base.interval_basis,
        "emissions_g": emissions,
        "total_basis": (
            f"{base.total_basis}; plus {carried} of {len(prev.segments)} earlier segment(s) up "
            f"to the checkpoint at step {prev.from_step} (resumed run: channels, phases and "
            "timeline are this session's)"
        ),
        "resume": {
            "from_step": prev.from_step,
            "previous_energy_j": prev.energy_j,
            "lost_energy_upper_j": prev.lost_energy_upper_j,
            "basis": prev.basis,
        },
        "_warnings": warnings,
    }


def build_finetune_report(snap: SessionSnapshot, base: EnergyReport) -> FinetuneReport:
    """Combine the meter's report with the session's counts, steps, prediction and padding.

    For a resumed run (``snap.previous``), totals, ``phase_metrics`` and ``run`` continue
    from the checkpointed figures of the earlier segments; channels, phases, the timeline and
    per-step records stay this session's.
    """
    snap.step_log.resolve(snap.meter)
    run_id = snap.run_id if snap.run_id is not None else base.run_id
    prev = snap.previous
    carbon_phases: dict[str, float] = dict(base.carbon.phases) if base.carbon else {}
    metrics: dict[str, PhaseMetrics] = {}
    for name, ph in base.phases.items():
        metrics[name] = phase_metrics(
            name,
            ph.energy_j,
            ph.duration_s,
            snap.phase_counts(name),
            snap.phase_steps.get(name, 0),
            carbon_phases.get(name),
        )
    run = WorkCounts()
    for mode in snap.modes_used:
        run.add(snap.phase_counts(mode))
    metrics["run"] = phase_metrics(
        "run", base.energy_j, base.duration_s, run, snap.steps_done, base.emissions_g
    )
    outside = None
    if base.energy_j is not None:
        parts = [base.phases[m].energy_j for m in snap.modes_used if m in base.phases]
        if all(p is not None for p in parts):
            outside = base.energy_j - sum(p for p in parts if p is not None)
    train_counts = snap.phase_counts("train")
    resumed = _resume_fields(snap, base)
    if prev is not None:
        names = list(prev.phases) + [n for n in metrics if n not in prev.phases]
        metrics = {n: _continued(prev.phases.get(n), metrics.get(n), n) for n in names}
        metrics["run"] = metrics.pop("run")
        total = WorkCounts(
            examples=train_counts.examples + prev.examples,
            tokens_padded=train_counts.tokens_padded + prev.tokens_padded,
            tokens_nonpadding=train_counts.tokens_nonpadding + prev.tokens_nonpadding,
            tokens_unknown=train_counts.tokens_unknown,
        )
        steps = snap.steps_done + prev.steps
    else:
        total, steps = train_counts, snap.steps_done
    train_metrics = metrics.get("train")
    padding = padding_report(
        total,
        snap.train_lengths,
        j_per_token_padded=train_metrics.j_per_token_padded if train_metrics else None,
        train_energy_j=train_metrics.energy_j if train_metrics else None,
        grouped_by_length=snap.grouped_by_length,
        grouping_hint=snap.grouping_hint,
    )
    warnings = list(base.warnings)
    for w in [*snap.warnings, *resumed.pop("_warnings", [])]:
        if w not in warnings:
            warnings.append(w)
    extra: dict[str, Any] = dict(base.extra)
    extra.update(snap.extra)
    in_train = snap.eval_in_train
    if in_train.batches:
        extra_eval = {
            "examples": in_train.examples,
            "batches": in_train.batches,
            "tokens_padded": in_train.tokens_padded,
            "tokens_nonpadding": in_train.tokens_nonpadding,
        }
        extra["eval_in_train"] = extra_eval
        warnings.append(
            f"{in_train.batches:,} forward calls ({in_train.examples:,} examples, "
            f"{in_train.tokens_padded:,} tokens) ran with the model in eval mode inside training, "
            "outside a phase: they are not counted as training (extra.eval_in_train) but their "
            "energy is in the train phase. Fix: wrap the evaluation in "
            '`with tracker.phase("eval"):`'
        )
    if total.tokens_unknown:
        warnings.append(
            f"padding unknown for {total.tokens_unknown:,} of {total.tokens_padded:,} tokens "
            "processed in training: their batches had no attention_mask and no pad token id is "
            "known, so they count as non-padding (an upper bound) and the padding share is not "
            "reported. Fix: pass attention_mask to the model, or set model.config.pad_token_id"
        )
    if padding is not None and padding.large:
        warnings.append(
            f"{padding.share:.0%} of the tokens processed in training were padding"
            + (f" (~{padding.energy_j:,.1f} J)" if padding.energy_j is not None else "")
            + "; see padding.remedies"
        )
    step_energy = _step_energies(snap, base)
    if step_energy is not None and prev is not None:
        step_energy.notes.append(
            f"resumed run: these records are this session's steps (after step {prev.from_step})"
        )
    earlier = prev.segments if prev is not None else []
    data = base.model_dump()
    data.update(
        run_id=run_id,
        status=_status(snap, base),
        warnings=warnings,
        extra=extra,
        examples=total.examples,
        steps=steps,
        tokens_padded=total.tokens_padded,
        tokens_nonpadding=total.tokens_nonpadding,
        tokens_unknown=total.tokens_unknown,
        figures=figures_basis(base),
        phase_metrics={k: v.model_dump() for k, v in metrics.items()},
        outside_phases_j=outside,
        step_energy=step_energy,
        padding=padding,
        prediction=_prediction(snap, base),
        run=_run_info(snap, base, total.tokens_padded),
        segments=[*earlier, _segment(snap, base, len(earlier), run_id)],
        **resumed,
    )
    report = FinetuneReport.model_validate(data)
    perspective = build_perspective(
        report,
        snap.perspective.get("inference"),
        pretraining_energy_kwh=snap.perspective.get("pretraining_energy_kwh"),
        pretraining_source=snap.perspective.get("pretraining_source"),
    )
    return report.model_copy(update={"perspective": perspective})
