"""Fixtures of the viz tests: reports of every kind (built in :mod:`viz_reports`)."""

from __future__ import annotations

import pytest
from viz_reports import make_energy, make_finetune

from bertwatt import FinetuneReport
from bertwatt.carbon import CarbonIntensity
from bertwatt.report.finetune import InferenceReport
from bertwatt.report.models import EnergyReport


@pytest.fixture
def finetune_report() -> FinetuneReport:
    """A fine-tuning report with emissions (zone FR) and an estimated CPU channel."""
    return make_finetune()


@pytest.fixture
def energy_report() -> EnergyReport:
    """A plain energy report with two phases and no carbon intensity."""
    return make_energy()


@pytest.fixture
def carbon_report() -> EnergyReport:
    """A plain energy report with a constant intensity of 300 g/kWh (year 2024) and PUE 1.2."""
    intensity = CarbonIntensity.constant(300.0, source="test grid figure", year=2024, zone="XX")
    return make_energy(carbon=intensity, pue=1.2)


@pytest.fixture
def inference_report() -> InferenceReport:
    """An inference report: the energy report's figures plus 100 queries in 10 batches."""
    base = make_energy(phases=("warmup", "inference"))
    infer = base.phases["inference"].energy_j
    return InferenceReport.model_validate(
        {
            **base.model_dump(),
            "queries": 100,
            "batches": 10,
            "batch_size": 10,
            "tokens_padded": 6400,
            "tokens_nonpadding": 4000,
            "j_per_query": infer / 100,
            "j_per_token_padded": infer / 6400,
            "j_per_token_nonpadding": infer / 4000,
            "figures": "measured: test",
        }
    )
