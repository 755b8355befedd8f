"""(Re-exported from :mod:`bertwatt.report.finetune`, where it lives with the models.)

A fine-tuning run's energy in other units: inference queries, and pre-training runs.

- **Inference queries**: the run's energy divided by the energy of one query. The default
  reference is the run's own evaluation phase (J per example: the fine-tuned model, the same
  machine, the evaluation batch size); a :class:`~bertwatt.integrations.report.InferenceReport`
  from :func:`~bertwatt.measure_inference` or a J-per-query figure can be given instead.
- **Pre-training**: the run's energy as a fraction of one pre-training run of the base model,
  from an energy the user supplies with its source (bertwatt ships no such figure: published ones
  depend on hardware, data centre and accounting choices).
"""

from __future__ import annotations

from bertwatt.report.finetune import build_perspective

__all__ = ["build_perspective"]
