"""Python warnings at stop(): one per kind of doubt, attributed to the user's line."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from bertwatt import EnergyMeter
from bertwatt.errors import EstimateWarning, MeasurementWarning
from bertwatt.testing import FakeBackend, FakeChannel, FakeClock


def _meter(clock: FakeClock, channel: FakeChannel, **kw) -> EnergyMeter:
    return EnergyMeter(backends=[FakeBackend(channels=[channel], clock=clock)], clock=clock, **kw)


def test_estimated_figures_warn_at_the_users_line():
    clock = FakeClock()
    meter = _meter(clock, FakeChannel("cpu:x", 10.0, estimated=True))
    with pytest.warns(EstimateWarning, match="cpu:x estimated") as record, meter:
        clock.advance(1.0)
    assert Path(record[0].filename).name == Path(__file__).name


def test_low_coverage_warns_measurement():
    clock = FakeClock()
    backend = FakeBackend(channels=[FakeChannel("g", 50.0)], clock=clock)
    backend.fail("g", at_s=1.0)
    meter = EnergyMeter(backends=[backend], clock=clock)
    meter.start()
    clock.advance(10.0)
    with pytest.warns(MeasurementWarning, match="covered less than 95%") as record:
        meter.stop()
    assert Path(record[0].filename).name == Path(__file__).name


def test_nothing_measured_warns():
    clock = FakeClock()
    backend = FakeBackend(channels=[FakeChannel("g", 50.0)], clock=clock).fail(kind="raise")
    meter = EnergyMeter(backends=[backend], clock=clock)
    meter.start()
    clock.advance(2.0)
    with pytest.warns(MeasurementWarning, match="no energy was measured"):
        report = meter.stop()
    assert report.energy_j is None


def test_clean_measurement_emits_no_warning():
    clock = FakeClock()
    meter = _meter(clock, FakeChannel("g", 50.0, kind="counter"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with meter:
            clock.advance(2.0)


def test_unwritable_output_keeps_the_report_and_warns(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    clock = FakeClock()
    meter = _meter(clock, FakeChannel("g", 50.0, kind="counter"), output=blocker / "r.json")
    meter.start()
    clock.advance(2.0)
    with pytest.warns(MeasurementWarning, match="final report was not written"):
        report = meter.stop()
    assert report.energy_j == pytest.approx(100.0)
    assert meter.report is report
