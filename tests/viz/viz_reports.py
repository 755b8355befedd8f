"""Reports for the viz tests, measured by the real meter on fake sensors and a fake clock.

Energies are known exactly: a 200 W GPU counter and a CPU power channel stepping from 50 W to
80 W at t = 3 s; five training steps of 0.5 s, then 0.4 s of evaluation.
"""

from __future__ import annotations

from typing import Any

from bertwatt import FinetuneReport, measure_finetune
from bertwatt.backends.base import Unavailable
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
