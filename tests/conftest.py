"""Shared fixtures for bertwatt's own tests (public ones: bertwatt.testing.pytest_plugin)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

from bertwatt.meter import EnergyMeter
from bertwatt.report.models import EnergyReport
from bertwatt.testing import FakeBackend, FakeChannel, FakeClock

#: run(channels, seconds, **meter_kwargs) -> (report, backend)
Runner = Callable[..., tuple[EnergyReport, FakeBackend]]


@pytest.fixture
def clock() -> FakeClock:
    """A fresh manual clock (t = 1000 s, wall time 2026-01-01 00:00 UTC)."""
    return FakeClock()


@pytest.fixture
def run(clock: FakeClock) -> Runner:
    """Measure ``seconds`` of fake time over one FakeBackend made of ``channels``.

    ``backend_kwargs`` (a dict) goes to FakeBackend, everything else to EnergyMeter; ``faults`` is
    a callable applied to the backend before the meter starts.
    """

    def _run(
        channels: list[FakeChannel],
        seconds: float,
        *,
        backend_kwargs: dict[str, Any] | None = None,
        faults: Callable[[FakeBackend], object] | None = None,
        **meter_kwargs: Any,
    ) -> tuple[EnergyReport, FakeBackend]:
        backend = FakeBackend(channels=channels, clock=clock, **(backend_kwargs or {}))
        if faults is not None:
            faults(backend)
        with EnergyMeter(backends=[backend], clock=clock, **meter_kwargs) as meter:
            clock.advance(seconds)
        return meter.report, backend

    return _run


@pytest.fixture
def sample_report(clock: FakeClock) -> EnergyReport:
    """A report with a bit of everything: counter and power channels, a sub-zone, an estimate,
    a rejected reading, an unavailable sensor, an idle baseline and repeated phases."""
    from bertwatt.backends.base import Unavailable

    channels = [
        FakeChannel(
            "gpu:0",
            [(0, 60.0), (3, 250.0)],
            kind="counter",
            scope="gpu-board",
            max_power_w=400.0,
            info={"gpu_name": "Fake A100", "power_limit_w": "400"},
        ),
        FakeChannel("cpu:package-0", 40.0, kind="power", scope="cpu-package", estimated=True),
        FakeChannel(
            "cpu:core-0",
            25.0,
            kind="counter",
            scope="cpu-core",
            counted=False,
            parent="cpu:package-0",
        ),
    ]
    missing = Unavailable(what="fake:dram-0", reason="permission denied", fix="chmod a+r it")
    backend = FakeBackend(channels=channels, clock=clock, unavailable=[missing])
    backend.glitch("gpu:0", at_s=5.0, value=1e9)
    with EnergyMeter(backends=[backend], clock=clock, baseline_s=1.0) as meter:
        for _ in range(2):
            with meter.phase("train"):
                clock.advance(3.0)
            with meter.phase("eval"):
                clock.advance(1.0)
    return meter.report
