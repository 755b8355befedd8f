"""A fine-tuning run's energy in other units: inference queries, and pre-training runs.

- **Inference queries**: the run's energy divided by the energy of one query. The default
  reference is the run's own evaluation phase (J per example: the fine-tuned model, the same
  machine, the evaluation batch size); a :class:`~bertwatt.integrations.report.InferenceReport`
  from :func:`~bertwatt.measure_inference` or a J-per-query figure can be given instead.
- **Pre-training**: the run's energy as a fraction of one pre-training run of the base model,
  from an energy the user supplies with its source (bertwatt ships no such figure: published ones
  depend on hardware, data centre and accounting choices).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from bertwatt.errors import ConfigError
from bertwatt.integrations.report import InferenceReport, Perspective

if TYPE_CHECKING:
    from bertwatt.integrations.report import FinetuneReport

__all__ = ["build_perspective"]


def _positive(name: str, value: object) -> float:
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
    """The perspective of ``report``'s total energy, or None when it has no energy figure."""
    energy = report.energy_j
    if energy is None:
        return None
    j_query: float | None = None
    source: str | None = None
    if isinstance(inference, InferenceReport):
        j_query = inference.j_per_query
        source = (
            f"measure_inference: {inference.queries} queries in batches of "
            f"{inference.batch_size or '?'}; {inference.figures or 'provenance in that report'}"
        )
    elif inference is not None:
        j_query = _positive("inference J per query", inference)
        source = "user-supplied J per query"
    else:
        ev = report.phase_metrics.get("eval")
        if ev is not None and ev.j_per_example:
            j_query = ev.j_per_example
            source = (
                f"this run's evaluation: {ev.examples} examples in {ev.batches} batches, same "
                "model and machine"
            )
    pre_j = None
    pre_source = None
    if pretraining_energy_kwh is not None:
        pre_j = _positive("pretraining_energy_kwh", pretraining_energy_kwh) * 3.6e6
        pre_source = pretraining_source or "user-supplied (no source given)"
    return Perspective(
        energy_j=energy,
        inference_j_per_query=j_query,
        inference_source=source,
        inference_queries=(energy / j_query) if j_query else None,
        pretraining_energy_j=pre_j,
        pretraining_source=pre_source,
        pretraining_fraction=(energy / pre_j) if pre_j else None,
    )
