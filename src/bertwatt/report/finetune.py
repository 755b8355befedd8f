"""Report models for fine-tuning and inference (``kind`` ``"finetune"`` / ``"inference"``).

:class:`FinetuneReport` and :class:`InferenceReport` extend :class:`~bertwatt.EnergyReport` (same
``schema_version``, same JSON file, loadable with ``FinetuneReport.load(path)``) with examples,
optimizer steps and tokens, in total and per phase, and with figures derived from them: J per
example, per step, per token processed (padding included) and per non-padding token; the padding
share and what it cost; per-step energies; the prediction made during the run against the
actual energy; and the run expressed as inference queries or as a fraction of a pre-training run.

Every derived figure is a ratio of a measured (or labelled estimated) energy to a count: it
inherits the provenance of the channels, which :attr:`FinetuneReport.figures` states in words.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, model_validator

from bertwatt.errors import ConfigError
from bertwatt.report.models import EnergyReport, _Model

__all__ = [
    "FinetuneReport",
    "InferenceReport",
    "PaddingReport",
    "Perspective",
    "PhaseMetrics",
    "PredictionReport",
    "StepEnergies",
    "build_perspective",
    "figures_basis",
]


class PhaseMetrics(_Model):
    """Energy of one phase (or the whole run) divided by the work it did.

    ``steps`` counts optimizer steps for training phases and forward batches for evaluation and
    prediction. Ratios are None when their denominator is 0 or the energy is unknown.
    """

    name: str
    energy_j: float | None
    duration_s: float
    mean_power_w: float | None = Field(description="energy over wall-clock time (J/s)")
    examples: int = 0
    steps: int = 0
    batches: int = 0
    tokens_padded: int = 0
    tokens_nonpadding: int = 0
    padding_share: float | None = None
    j_per_example: float | None = None
    j_per_step: float | None = None
    j_per_token_padded: float | None = None
    j_per_token_nonpadding: float | None = None
    padding_energy_j: float | None = Field(
        default=None, description="padding tokens x J per token processed (linear attribution)"
    )
    emissions_g: float | None = None


class StepEnergies(_Model):
    """Per-step energies as compact columns (one record per step, or per block of steps).

    Records tile training: each starts where the previous ended or where training resumed after
    an evaluation or checkpoint, so ``total_energy_j`` is the energy of all optimizer steps, data
    loading between them included. ``between_steps_j`` is the rest of the ``train`` phase (epoch
    boundaries, the last log), so that ``total_energy_j + between_steps_j`` is the train phase.
    """

    steps_per_record: int
    records: int
    first_step: list[int] = Field(default_factory=list)
    steps: list[int] = Field(default_factory=list)
    duration_s: list[float] = Field(default_factory=list)
    energy_j: list[float | None] = Field(default_factory=list)
    examples: list[int] = Field(default_factory=list)
    tokens_padded: list[int] = Field(default_factory=list)
    tokens_nonpadding: list[int] = Field(default_factory=list)
    total_energy_j: float | None = None
    between_steps_j: float | None = None
    mean_j: float | None = None
    median_j: float | None = None
    p10_j: float | None = None
    p90_j: float | None = None
    attribution: str = ""
    notes: list[str] = Field(default_factory=list)


class PaddingReport(_Model):
    """How much of the training compute went to padding, what it cost, and how to avoid it."""

    share: float = Field(description="padding tokens / tokens processed in training")
    tokens_padding: int
    energy_j: float | None = Field(description="padding tokens x training J per token processed")
    energy_share: float | None = Field(default=None, description="energy_j / train phase energy")
    basis: str
    large: bool
    length_p50: int | None = None
    length_p90: int | None = None
    length_p99: int | None = None
    length_max: int | None = None
    padded_length_max: int | None = None
    fixed_padded_length: int | None = Field(
        default=None, description="set when every training batch had this padded length"
    )
    length_histogram: dict[int, int] = Field(
        default_factory=dict, description="non-padding length -> training examples (per epoch)"
    )
    remedies: list[str] = Field(default_factory=list)


class PredictionReport(_Model):
    """The whole-run energy predicted early in training, and what it actually was."""

    at_step: int
    total_steps: int
    predicted_energy_j: float
    predicted_emissions_g: float | None = None
    basis: str
    actual_energy_j: float | None = None
    actual_emissions_g: float | None = None
    error: float | None = Field(default=None, description="(predicted - actual) / actual")
    notes: list[str] = Field(default_factory=list)


class Perspective(_Model):
    """The run's energy as inference queries and as a fraction of a pre-training run."""

    energy_j: float
    inference_j_per_query: float | None = None
    inference_source: str | None = None
    inference_setting: str | None = Field(
        default=None,
        description="batch size, sequence lengths and what the J per query includes",
    )
    inference_queries: float | None = None
    pretraining_energy_j: float | None = None
    pretraining_source: str | None = None
    pretraining_fraction: float | None = None


def figures_basis(report: EnergyReport) -> str:
    """One sentence saying whether the report's figures are measured or estimated, and by what."""
    counted = [c for c in report.channels if c.counted]
    if not counted or report.energy_j is None:
        return "no energy was measured (see 'not measured' for why and the fix)"
    measured = [c for c in counted if c.provenance.kind == "measured"]
    estimated = [c for c in counted if c.provenance.kind == "estimated"]

    def names(chs: list[Any]) -> str:
        return "; ".join(f"{c.name} by {c.provenance.source}" for c in chs)

    if not estimated:
        return f"measured: {names(measured)}"
    if not measured:
        return f"ESTIMATED, not measured: {names(estimated)}"
    return f"partly ESTIMATED: measured {names(measured)}; estimated {names(estimated)}"


def _own_kind(data: Any, kind: str) -> Any:
    """Data of an energy report being extended into a ``kind`` report gets that kind."""
    if isinstance(data, dict) and data.get("kind", "energy") == "energy":
        return {**data, "kind": kind}
    return data


class FinetuneReport(EnergyReport):
    """An :class:`~bertwatt.EnergyReport` of a fine-tuning run, with the work it did.

    Totals (``examples``, ``steps``, ``tokens_padded``, ``tokens_nonpadding``) are the training
    work: every example and token through the model in training mode, over all epochs.
    ``phase_metrics`` holds them with normalised energies per phase (``train``, ``epoch-N``,
    ``eval``, ``checkpoint``, ``predict``) and for the whole ``run``.
    """

    kind: Literal["finetune"] = "finetune"
    examples: int = 0
    steps: int = 0
    tokens_padded: int = 0
    tokens_nonpadding: int = 0
    tokens_unknown: int = Field(
        default=0,
        description="training tokens whose padding is unknown (no attention mask, no pad id)",
    )
    figures: str = ""
    phase_metrics: dict[str, PhaseMetrics] = Field(default_factory=dict)
    outside_phases_j: float | None = Field(
        default=None, description="run energy in no phase: setup before training, teardown"
    )
    step_energy: StepEnergies | None = None
    padding: PaddingReport | None = None
    prediction: PredictionReport | None = None
    perspective: Perspective | None = None

    @model_validator(mode="before")
    @classmethod
    def _as_finetune(cls, data: Any) -> Any:
        return _own_kind(data, "finetune")

    @property
    def padding_share(self) -> float | None:
        """Padding tokens / tokens processed in training (None: none, or padding unknown)."""
        if self.tokens_padded <= 0 or self.tokens_unknown > 0:
            return None
        return (self.tokens_padded - self.tokens_nonpadding) / self.tokens_padded

    def with_perspective(
        self,
        inference: InferenceReport | float | None = None,
        *,
        pretraining_energy_kwh: float | None = None,
        pretraining_source: str | None = None,
    ) -> FinetuneReport:
        """A copy whose ``perspective`` uses these references.

        Args:
            inference: an :class:`InferenceReport`, or a J-per-query figure; None keeps the
                evaluation phase's measured J per example (when there was one).
            pretraining_energy_kwh: energy of one pre-training run of the base model (kWh), with
                ``pretraining_source`` saying where the figure comes from.
        """
        return self.model_copy(
            update={
                "perspective": build_perspective(
                    self,
                    inference,
                    pretraining_energy_kwh=pretraining_energy_kwh,
                    pretraining_source=pretraining_source,
                )
            }
        )

    def summary(self) -> str:
        """The energy summary followed by the fine-tuning figures."""
        from bertwatt.integrations.render import render_finetune
        from bertwatt.report.render import escape_controls

        return super().summary() + "\n" + escape_controls(render_finetune(self), keep_newlines=True)


class InferenceReport(EnergyReport):
    """An :class:`~bertwatt.EnergyReport` of inference, normalised per query and per token.

    Warm-up batches (lazy initialisation, first-call compilation) are measured in their own
    ``warmup`` phase and left out of the per-query figures, which use the ``inference`` phase.
    """

    kind: Literal["inference"] = "inference"
    queries: int = 0
    batches: int = 0
    batch_size: int | None = None
    warmup_queries: int = 0
    tokens_padded: int = 0
    tokens_nonpadding: int = 0
    j_per_query: float | None = None
    j_per_token_padded: float | None = None
    j_per_token_nonpadding: float | None = None
    sequence_length_mean: float | None = Field(
        default=None, description="tokens processed (padding included) per query"
    )
    sequence_length_max: int | None = Field(
        default=None, description="longest padded sequence length of a batch"
    )
    tokenization_included: bool | None = Field(
        default=None, description="whether tokenisation ran inside the measured inference phase"
    )
    setting: str = Field(
        default="", description="batch size, sequence lengths and what was measured, in words"
    )
    figures: str = ""

    @model_validator(mode="before")
    @classmethod
    def _as_inference(cls, data: Any) -> Any:
        return _own_kind(data, "inference")

    def summary(self) -> str:
        """The energy summary followed by the per-query figures."""
        from bertwatt.integrations.render import render_inference
        from bertwatt.report.render import escape_controls

        return (
            super().summary() + "\n" + escape_controls(render_inference(self), keep_newlines=True)
        )


def positive_number(name: str, value: object) -> float:
    """``value`` as a float, or :class:`~bertwatt.errors.ConfigError` unless finite and > 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a positive number, got {value!r}")
    if value <= 0:
        raise ConfigError(f"{name} must be > 0, got {value!r}")
    return float(value)


def build_perspective(
    report: FinetuneReport,
    inference: InferenceReport | float | None = None,
    *,
    pretraining_energy_kwh: float | None = None,
    pretraining_source: str | None = None,
) -> Perspective | None:
    """The perspective of ``report``'s total energy, or None when it has no energy figure.

    The J per query it divides by comes with its setting (``inference_setting``): batch size,
    tokens per query and what was measured. J per query moves several-fold with batch size and
    with whether tokenisation is counted, so "the fine-tune = N queries" holds at that setting
    only. The default reference is this run's evaluation: the fine-tuned model on the same
    machine, model forward passes over collated batches (tokenisation done beforehand).
    """
    energy = report.energy_j
    if energy is None:
        return None
    j_query: float | None = None
    source: str | None = None
    setting: str | None = None
    if isinstance(inference, InferenceReport):
        j_query = inference.j_per_query
        source = (
            f"measure_inference: {inference.queries} queries in batches of "
            f"{inference.batch_size or '?'}; {inference.figures or 'provenance in that report'}"
        )
        setting = inference.setting or None
    elif inference is not None:
        j_query = positive_number("inference J per query", inference)
        source = "user-supplied J per query"
        setting = "stated by the user (batch size, lengths and tokenisation not known)"
    else:
        ev = report.phase_metrics.get("eval")
        if ev is not None and ev.j_per_example:
            j_query = ev.j_per_example
            source = (
                f"this run's evaluation: {ev.examples} examples in {ev.batches} batches, same "
                "model and machine"
            )
            per_batch = ev.examples / ev.batches if ev.batches else None
            per_query = ev.tokens_padded / ev.examples if ev.examples else None
            setting = (
                "batch size "
                + (f"{per_batch:.3g}" if per_batch is not None else "unknown")
                + ", "
                + (f"{per_query:.3g} tokens per query (padding included)" if per_query else "")
                + "; model forward passes of the evaluation loop, tokenisation not included"
            )
    pre_j = None
    pre_source = None
    if pretraining_energy_kwh is not None:
        pre_j = positive_number("pretraining_energy_kwh", pretraining_energy_kwh) * 3.6e6
        pre_source = pretraining_source or "user-supplied (no source given)"
    return Perspective(
        energy_j=energy,
        inference_j_per_query=j_query,
        inference_source=source,
        inference_setting=setting,
        inference_queries=(energy / j_query) if j_query else None,
        pretraining_energy_j=pre_j,
        pretraining_source=pre_source,
        pretraining_fraction=(energy / pre_j) if pre_j else None,
    )
