"""Fine-tuning and inference report models, re-exported from :mod:`bertwatt.report.finetune`.

The models are pure data and live in the report layer (readable with only ``bertwatt.report``
and pydantic); this module keeps the old import path working.
"""

from __future__ import annotations

from bertwatt.report.finetune import (
    FinetuneReport,
    InferenceReport,
    PaddingReport,
    Perspective,
    PhaseMetrics,
    PredictionReport,
    StepEnergies,
    figures_basis,
)

__all__ = [
    "FinetuneReport",
    "InferenceReport",
    "PaddingReport",
    "Perspective",
    "PhaseMetrics",
    "PredictionReport",
    "StepEnergies",
    "figures_basis",
]
