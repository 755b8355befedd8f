"""Reports of every kind, measured by the real meter on fake sensors and a fake clock.

Energies are known exactly: a 200 W GPU counter and a CPU power channel stepping from 50 W to
80 W at t = 3 s; five training steps of 0.5 s, then 0.4 s of evaluation.
"""

from __future__ import annotations

from typing import Any

import pytest

from bertwatt.backends.base import Unavailable
from bertwatt.carbon import CarbonIntensity
from bertwatt.integrations.finetune import measure_finetune
from bertwatt.integrations.report import FinetuneReport, InferenceReport
from bertwatt.meter import EnergyMeter
from bertwatt.report.models import EnergyReport
from bertwatt.testing import FakeBackend, FakeChannel, FakeClock


def backend(clock: FakeClock, *, estimated_cpu: bool = False) -> FakeBackend:
    return FakeBackend(
        channels=[
            FakeChannel("gpu:0", 200.0, kind="counter", scope="device"),
            FakeChannel("cpu:pkg", [(0, 50.0), (3, 80.0)], estimated=estimated_cpu),
        ],
        clock=clock,
        unavailable=[
            Unavailable(what="rapl:dram", reason="no dram domain here", fix="use a newer CPU")
        ],
    )


def make_finetune(
    *,
    carbon: Any = "FR",
    estimated_cpu: bool = True,
    step_s: float = 0.5,
    tokens_padded: int = 1024,
    tokens_nonpadding: int = 500,
) -> FinetuneReport:
    """Five training steps of ``step_s`` each, then 0.4 s of evaluation."""
    clock = FakeClock()

    def fn(tracker: Any) -> None:
        for _ in range(5):
            clock.advance(step_s)
            tracker.step(
                examples=16, tokens_padded=tokens_padded, tokens_nonpadding=tokens_nonpadding
            )
        with tracker.phase("eval"):
            clock.advance(0.4)

    return measure_finetune(
        fn,
        backends=[backend(clock, estimated_cpu=estimated_cpu)],
        clock=clock,
        output=False,
        interval_s=0.1,
        carbon=carbon,
    )


def make_energy(
    *, carbon: Any = None, pue: float | None = None, phases: tuple[str, str] = ("load", "infer")
) -> EnergyReport:
    """1 s in the first phase, then 4 s in the second."""
    clock = FakeClock()
    with EnergyMeter(
        backends=[backend(clock)], clock=clock, interval_s=0.1, carbon=carbon, pue=pue
    ) as meter:
        with meter.phase(phases[0]):
            clock.advance(1.0)
        with meter.phase(phases[1]):
            clock.advance(4.0)
    return meter.report


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
