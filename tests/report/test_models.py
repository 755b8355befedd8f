"""EnergyReport: schema, JSON round-trip, helpers and the text summary."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from bertwatt.report.models import SCHEMA_VERSION, EnergyReport, kwh
from bertwatt.report.render import format_energy


def test_sample_report_numbers(sample_report):
    r = sample_report
    # window 1..9 s: gpu 60 W until 3 s then 250 W; cpu 40 W (estimated); core not added
    assert r.energy_j == pytest.approx(120.0 + 1500.0 + 320.0, rel=1e-9)
    assert r.phases["train"].energy_j == pytest.approx(1120.0 + 240.0, rel=1e-9)
    assert r.phases["eval"].energy_j == pytest.approx(500.0 + 80.0, rel=1e-9)
    assert r.baseline is not None and r.baseline.power_w == pytest.approx(100.0, rel=1e-9)
    assert r.energy_above_idle_j == pytest.approx(1940.0 - 800.0, rel=1e-9)
    assert r.channel("gpu:0").rejected == 1


def test_json_round_trip_is_lossless(sample_report, tmp_path):
    text = sample_report.to_json()
    data = json.loads(text)
    assert data["schema_version"] == SCHEMA_VERSION == 2
    assert EnergyReport.model_validate_json(text) == sample_report
    path = tmp_path / "r.json"
    assert sample_report.to_json(path) == text
    loaded = EnergyReport.load(path)
    assert loaded == sample_report
    assert loaded.to_json() == text
    assert loaded.channel("gpu:0").provenance == sample_report.channel("gpu:0").provenance


def test_partial_report_round_trips_with_its_status(clock, tmp_path):
    from bertwatt.meter import EnergyMeter
    from bertwatt.testing import FakeBackend, FakeChannel

    backend = FakeBackend(channels=[FakeChannel("c", 10.0, kind="counter")], clock=clock)
    with EnergyMeter(backends=[backend], clock=clock) as meter:
        clock.advance(1.0)
        meter.begin("open")
        clock.advance(1.0)
        partial = meter.partial_report()
        partial.to_json(tmp_path / "p.json")
    loaded = EnergyReport.load(tmp_path / "p.json")
    assert loaded.status == "running"
    assert loaded == partial
    assert loaded.phases["open"].energy_j == pytest.approx(10.0)
    assert "[running]" in loaded.summary()


def test_schema_rejects_unknown_fields_and_out_of_range_values(sample_report):
    data = sample_report.model_dump(mode="json")
    with pytest.raises(ValidationError):
        EnergyReport.model_validate({**data, "surprise": 1})
    bad = json.loads(json.dumps(data))
    bad["channels"][0]["coverage"] = 1.5
    with pytest.raises(ValidationError):
        EnergyReport.model_validate(bad)
    bad = json.loads(json.dumps(data))
    bad["channels"][0]["provenance"]["kind"] = "guessed"
    with pytest.raises(ValidationError):
        EnergyReport.model_validate(bad)
    with pytest.raises(ValidationError):
        EnergyReport.model_validate({**data, "duration_s": -1.0})


def test_measured_is_false_when_any_counted_channel_is_estimated(sample_report):
    assert not sample_report.measured
    only_gpu = sample_report.model_copy(
        update={"channels": [c for c in sample_report.channels if c.name != "cpu:package-0"]}
    )
    assert only_gpu.measured
    assert not sample_report.model_copy(update={"channels": []}).measured


def test_channel_lookup(sample_report):
    assert sample_report.channel("cpu:core-0").parent == "cpu:package-0"
    with pytest.raises(KeyError, match=r"no channel 'gpu:9'.*gpu:0"):
        sample_report.channel("gpu:9")


def test_channel_figures(sample_report):
    gpu = sample_report.channel("gpu:0")
    assert gpu.energy_kwh == pytest.approx(gpu.energy_j / 3.6e6)
    assert gpu.mean_power_w == pytest.approx(gpu.energy_j / 8.0)
    assert gpu.peak_power_w == pytest.approx(250.0)
    assert gpu.info == {"gpu_name": "Fake A100", "power_limit_w": "400"}
    assert gpu.provenance.kind == "measured" and gpu.provenance.scope == "gpu-board"
    assert sample_report.channel("cpu:package-0").provenance.kind == "estimated"
    assert sample_report.host.gpu_names == ["Fake A100"]


def test_summary_states_provenance_problems_and_phases(sample_report):
    text = sample_report.summary()
    assert text.startswith("bertwatt report: 8.00 s on ")  # the baseline is not in the window
    assert sample_report.host.hostname in text
    assert "measured: bertwatt.testing fake counter" in text
    assert "ESTIMATED: bertwatt.testing fake power" in text
    assert "(not added: inside/overlapping another)" in text
    assert "fake:dram-0: permission denied. Fix: chmod a+r it" in text
    assert "train" in text and "x2" in text
    assert "idle baseline: 100.0 W" in text
    assert "warnings:" in text
    for w in sample_report.warnings:
        assert f"- {w}" in text
    assert any("implausible" in w for w in sample_report.warnings)
    assert any("estimated" in w for w in sample_report.warnings)


def test_kwh_and_energy_formatting():
    assert kwh(None) is None
    assert kwh(3.6e6) == 1.0
    assert format_energy(None) == "not measured"
    assert format_energy(12.345) == "12.35 J"
    assert format_energy(7.2e6) == "2 kWh (7,200,000 J)"
