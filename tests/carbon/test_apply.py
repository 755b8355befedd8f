"""apply_carbon: emissions, PUE, phases, notes; exact on constructed timelines."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bertwatt.carbon import CarbonIntensity, apply_carbon
from bertwatt.carbon.zones import lookup
from bertwatt.errors import CarbonDataError, ConfigError

KWH = 3.6e6

Factory = Callable[..., Any]


def test_static_zone_with_pue(report_factory: Factory) -> None:
    report = report_factory(energy_j=0.2 * KWH)
    out = apply_carbon(report, CarbonIntensity.zone("FR"), pue=1.25)
    fr = lookup("FR")
    assert fr.g_per_kwh is not None
    assert out.emissions_g == pytest.approx(0.2 * 1.25 * fr.g_per_kwh, rel=1e-12)
    c = out.carbon
    assert (c.kind, c.zone, c.year, c.source) == ("static", "FR", 2023, fr.source)
    assert c.intensity_g_per_kwh == fr.g_per_kwh
    assert (c.pue, c.pue_source) == (1.25, "user")
    assert c.it_energy_kwh == pytest.approx(0.2) and c.facility_energy_kwh == pytest.approx(0.25)
    assert c.emissions_g == out.emissions_g
    assert any("life-cycle" in n for n in c.notes)
    assert out.carbon_note is None
    assert report.emissions_g is None and report.carbon is None  # the input is not modified


def test_default_pue_is_one_and_says_so(report_factory: Factory) -> None:
    out = apply_carbon(report_factory(energy_j=KWH), CarbonIntensity.constant(100.0))
    assert out.emissions_g == pytest.approx(100.0)
    assert out.carbon.pue == 1.0
    assert out.carbon.pue_source == "default 1.0 (facility overhead not included)"
    assert out.carbon.source == "user-supplied constant" and out.carbon.year is None


@pytest.mark.parametrize("pue", [0.9, 3.5, float("nan"), float("inf"), True, "1.2", -1])
def test_bad_pue_is_a_config_error(report_factory: Factory, pue: object) -> None:
    with pytest.raises(ConfigError, match="pue"):
        apply_carbon(report_factory(), CarbonIntensity.constant(100.0), pue=pue)  # type: ignore[arg-type]


def test_no_zone_means_no_emissions_and_says_how_to_enable_them(report_factory: Factory) -> None:
    out = apply_carbon(report_factory())
    assert out.emissions_g is None and out.carbon is None
    assert "emissions not computed" in out.carbon_note
    assert "BERTWATT_ZONE" in out.carbon_note and "CarbonIntensity.zone" in out.carbon_note


def test_zone_from_environment(report_factory: Factory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERTWATT_ZONE", "us-ca")
    out = apply_carbon(report_factory(energy_j=KWH))
    assert out.carbon.zone == "US-CA"
    assert out.emissions_g == pytest.approx(lookup("US-CA").g_per_kwh)
    assert any("BERTWATT_ZONE" in n for n in out.carbon.notes)


def test_bad_zone_in_environment_is_a_note_not_a_crash(
    report_factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bertwatt.carbon import zones
    from bertwatt.errors import BertwattWarning

    monkeypatch.setattr(zones, "_warned_env", set())
    monkeypatch.setenv("BERTWATT_ZONE", "FRX")
    with pytest.warns(BertwattWarning, match="configuration error: BERTWATT_ZONE='FRX'"):
        out = apply_carbon(report_factory())
    assert out.emissions_g is None
    assert "BERTWATT_ZONE='FRX' is not usable" in out.carbon_note
    assert "FR (France)" in out.carbon_note


def test_unknown_energy_means_no_emissions_with_reason(report_factory: Factory) -> None:
    out = apply_carbon(report_factory(energy_j=None), CarbonIntensity.zone("DE"))
    assert out.emissions_g is None and out.carbon is None
    assert "no energy figure" in out.carbon_note


def test_zero_energy_gives_zero_with_a_note(report_factory: Factory) -> None:
    out = apply_carbon(report_factory(energy_j=0.0), CarbonIntensity.zone("DE"))
    assert out.emissions_g == 0.0
    assert any("0 J" in n for n in out.carbon.notes)


def test_zone_name_string_and_with_carbon(report_factory: Factory) -> None:
    report = report_factory(energy_j=KWH)
    a = apply_carbon(report, "gcp:europe-west1", pue=1.1)
    b = report.with_carbon(CarbonIntensity.zone("GCP:EUROPE-WEST1"), pue=1.1)
    assert a.emissions_g == b.emissions_g == pytest.approx(122.0 * 1.1)
    assert a.carbon.year == 2023


def test_bad_intensity_arguments(report_factory: Factory) -> None:
    with pytest.raises(ConfigError, match="CarbonIntensity or a zone name"):
        apply_carbon(report_factory(), 350.0)  # type: ignore[arg-type]
    with pytest.raises(CarbonDataError, match="closest"):
        apply_carbon(report_factory(), "Frnace")


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), True, "350"])
def test_bad_constant(bad: object) -> None:
    with pytest.raises(ConfigError, match="finite number >= 0"):
        CarbonIntensity.constant(bad)  # type: ignore[arg-type]


def test_constant_validates_year_and_source() -> None:
    c = CarbonIntensity.constant(350, source="utility disclosure 2024", year=2024)
    assert (c.g_per_kwh, c.year, c.source) == (350.0, 2024, "utility disclosure 2024")
    with pytest.raises(ConfigError, match="year"):
        CarbonIntensity.constant(350, year=24.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="source"):
        CarbonIntensity.constant(350, source="")
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.g_per_kwh = 1.0  # type: ignore[misc]


# ---------------------------------------------------------------------- time-varying
@pytest.fixture
def hour_run(report_factory: Factory) -> Any:
    """100 W for an hour, with phases on both sides of the intensity change at 1800 s."""
    return report_factory(
        energy_j=360_000.0,
        duration_s=3600.0,
        phases={
            "warmup": ([(0.0, 600.0)], 60_000.0),
            "train": ([(600.0, 3000.0)], 240_000.0),
            "eval": ([(3000.0, 3600.0)], 60_000.0),
            "step": ([(1700.0, 1900.0), (1800.0, 2000.0)], 30_000.0),
            "lost": ([(0.0, 10.0)], None),
        },
    )


def test_series_is_integrated_exactly_across_phase_boundaries(hour_run: Any) -> None:
    t0 = hour_run.started_at
    series = CarbonIntensity.series([(t0, 100.0), (t0 + timedelta(seconds=1800), 300.0)])
    out = apply_carbon(hour_run, series, pue=1.5)
    assert out.emissions_g == pytest.approx(1.5 * (0.05 * 100 + 0.05 * 300), rel=1e-12)
    c = out.carbon
    assert c.kind == "series" and c.year is None
    assert c.intensity_g_per_kwh == pytest.approx(200.0, rel=1e-12)
    assert c.phases["warmup"] == pytest.approx(1.5 * 60_000 / KWH * 100, rel=1e-12)
    assert c.phases["train"] == pytest.approx(
        1.5 * (120_000 * 100 + 120_000 * 300) / KWH, rel=1e-12
    )
    assert c.phases["eval"] == pytest.approx(1.5 * 60_000 / KWH * 300, rel=1e-12)
    # overlapping occurrences are merged: 1700-2000 s, 100 s at 100 and 200 s at 300
    assert c.phases["step"] == pytest.approx(1.5 * 30_000 / KWH * (100 + 2 * 300) / 3, rel=1e-12)
    assert "lost" not in c.phases
    assert any("'lost'" in n and "unknown" in n for n in c.notes)
    assert sum(c.phases[p] for p in ("warmup", "train", "eval")) == pytest.approx(out.emissions_g)
    assert any("varied from 100 to 300" in n for n in c.notes)


def test_uneven_power_with_several_changes(report_factory: Factory) -> None:
    # 200 W for 1000 s, then 50 W for 2000 s; intensity 100 until 500 s, 400 until 2000 s, then 50.
    report = report_factory(
        energy_j=300_000.0,
        duration_s=3000.0,
        timeline=[(0.0, 0.0), (1000.0, 200_000.0), (3000.0, 300_000.0)],
        phases={"late": ([(1500.0, 3000.0)], 75_000.0)},
    )
    t0 = report.started_at.timestamp()
    series = CarbonIntensity.series([(t0, 100), (t0 + 500, 400), (t0 + 2000, 50)])
    out = apply_carbon(report, series)
    expected_gj = 100 * 100_000 + 400 * 150_000 + 50 * 50_000
    assert out.emissions_g == pytest.approx(expected_gj / KWH, rel=1e-12)
    assert out.carbon.phases["late"] == pytest.approx((400 * 25_000 + 50 * 50_000) / KWH, rel=1e-12)


def test_series_starting_after_the_run_uses_its_first_value_and_says_so(hour_run: Any) -> None:
    t0 = hour_run.started_at
    series = CarbonIntensity.series([(t0 + timedelta(seconds=900), 80.0)])
    out = apply_carbon(hour_run, series)
    assert out.emissions_g == pytest.approx(0.1 * 80.0)
    assert any("starts 900 s after the run started" in n for n in out.carbon.notes)


def test_series_ending_before_the_run_holds_its_last_value(hour_run: Any) -> None:
    t0 = hour_run.started_at
    series = CarbonIntensity.series(
        [(t0 - timedelta(days=1), 500.0), (t0 - timedelta(hours=1), 70.0)]
    )
    out = apply_carbon(hour_run, series)
    assert out.emissions_g == pytest.approx(0.1 * 70.0)
    assert not any("after the run started" in n for n in out.carbon.notes)


def test_series_without_timeline_assumes_even_spread(report_factory: Factory) -> None:
    report = report_factory(energy_j=360_000.0, duration_s=3600.0, timeline=[])
    t0 = report.started_at
    out = apply_carbon(
        report, CarbonIntensity.series([(t0, 100.0), (t0 + timedelta(hours=0.5), 300.0)])
    )
    assert out.emissions_g == pytest.approx(20.0)
    assert any("no energy timeline" in n for n in out.carbon.notes)


def test_csv_series_end_to_end(tmp_path: Path, hour_run: Any) -> None:
    path = tmp_path / "grid.csv"
    start = hour_run.started_at.replace(tzinfo=None)  # naive = UTC
    path.write_text(
        "timestamp,gco2e_per_kwh\n"
        f"{start.isoformat()},100\n"
        f"{(start + timedelta(minutes=30)).isoformat()}+00:00,300\n",
        encoding="utf-8",
    )
    out = hour_run.with_carbon(CarbonIntensity.from_csv(path, zone="DE"))
    assert out.emissions_g == pytest.approx(20.0, rel=1e-12)
    assert out.carbon.zone == "DE" and str(path) in out.carbon.source


def test_report_with_carbon_survives_json(hour_run: Any) -> None:
    from bertwatt.report.models import EnergyReport

    out = apply_carbon(hour_run, "SE3", pue=1.1)
    back = EnergyReport.model_validate(json.loads(out.to_json()))
    assert back.carbon == out.carbon and back.emissions_g == out.emissions_g


def test_duck_typed_report(report_factory: Factory) -> None:
    real = report_factory(energy_j=KWH)

    @dataclasses.dataclass
    class Plain:
        started_at: datetime
        duration_s: float
        energy_j: float | None
        timeline: list[tuple[float, float]]
        phases: dict[str, Any]
        emissions_g: float | None = None
        carbon: Any = None
        carbon_note: str | None = None

    plain = Plain(real.started_at, real.duration_s, real.energy_j, list(real.timeline), {})
    out = apply_carbon(plain, CarbonIntensity.constant(50.0))
    assert isinstance(out, Plain) and out.emissions_g == pytest.approx(50.0)
