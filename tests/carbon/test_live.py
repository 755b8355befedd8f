"""Live intensity: background prefetch, bounded wait, fallback, notes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from bertwatt.carbon import CarbonIntensity, LiveIntensity, apply_carbon
from bertwatt.carbon.providers import LiveReading, UKCarbonIntensity
from bertwatt.carbon.zones import lookup
from bertwatt.errors import CarbonDataError, ConfigError

Factory = Callable[..., Any]


class ScriptedProvider:
    """A LiveProvider without a network: returns ``value`` once ``gate`` opens, or raises."""

    name = "scripted"
    zone = "XX"

    def __init__(
        self,
        value: float = 123.0,
        *,
        error: BaseException | None = None,
        at: datetime | None = None,
        gate: threading.Event | None = None,
    ) -> None:
        self.value, self.error, self.at = value, error, at
        self.gate = gate
        self.calls = 0

    def fetch(self) -> LiveReading:
        self.calls += 1
        if self.gate is not None:
            self.gate.wait(10)
        if self.error is not None:
            raise self.error
        return LiveReading(
            provider=self.name,
            zone=self.zone,
            g_per_kwh=self.value,
            basis="average",
            at=self.at,
            fetched_at=datetime.now(timezone.utc),
            source="scripted test provider",
            notes=("scripted note",),
        )


def test_prefetch_returns_at_once_and_the_value_is_used(report_factory: Factory) -> None:
    gate = threading.Event()
    provider = ScriptedProvider(200.0, gate=gate)
    live = CarbonIntensity.live(provider, fallback="FR", wait_s=5)
    begin = time.monotonic()
    live.prefetch()
    live.prefetch()  # idempotent
    assert time.monotonic() - begin < 0.5
    assert live.failure().startswith("no answer")
    gate.set()
    report = report_factory(energy_j=3.6e6)
    report = report.model_copy(update={"started_at": datetime.now(timezone.utc)})
    out = apply_carbon(report, live)
    assert provider.calls == 1
    assert out.emissions_g == pytest.approx(200.0)
    c = out.carbon
    assert (c.kind, c.zone, c.source) == ("live", "XX", "scripted test provider")
    assert c.year == datetime.now(timezone.utc).year
    assert any("applied to the whole run" in n for n in c.notes)
    assert "scripted note" in c.notes
    assert not any("outside the run" in n for n in c.notes)


def test_failed_provider_falls_back_and_says_so(report_factory: Factory) -> None:
    live = CarbonIntensity.live(
        ScriptedProvider(error=CarbonDataError("HTTP 500 boom", backend="scripted")), fallback="FR"
    )
    out = apply_carbon(report_factory(energy_j=3.6e6), live)
    fr = lookup("FR")
    assert out.emissions_g == pytest.approx(fr.g_per_kwh)
    c = out.carbon
    assert (c.kind, c.zone, c.year) == ("static", "FR", 2023)
    assert any("scripted" in n and "HTTP 500 boom" in n and "fallback" in n for n in c.notes)


def test_slow_provider_waits_a_bounded_time_then_falls_back(report_factory: Factory) -> None:
    gate = threading.Event()
    live = CarbonIntensity.live(ScriptedProvider(gate=gate), fallback="DE", wait_s=0.05)
    begin = time.monotonic()
    out = apply_carbon(report_factory(energy_j=3.6e6), live)
    assert time.monotonic() - begin < 2.0
    gate.set()
    assert out.carbon.zone == "DE"
    assert any("no answer within 0.05 s" in n for n in out.carbon.notes)


def test_without_fallback_a_failure_leaves_emissions_uncomputed(report_factory: Factory) -> None:
    live = CarbonIntensity.live(ScriptedProvider(error=CarbonDataError("down")), fallback=None)
    out = apply_carbon(report_factory(), live)
    assert out.emissions_g is None and out.carbon is None
    assert "no fallback" in out.carbon_note and "down" in out.carbon_note


@pytest.mark.parametrize(
    ("error", "text"),
    [(RuntimeError("provider bug"), "RuntimeError: provider bug"), (None, "provider returned")],
)
def test_provider_bugs_and_bad_values_become_fallback_notes(
    report_factory: Factory, error: BaseException | None, text: str
) -> None:
    live = CarbonIntensity.live(ScriptedProvider(-5.0, error=error), fallback="FR")
    out = apply_carbon(report_factory(), live)
    assert out.carbon.zone == "FR"
    assert any(text in n for n in out.carbon.notes)


def test_stale_and_long_run_notes(report_factory: Factory) -> None:
    report = report_factory(energy_j=3.6e6, duration_s=3 * 3600.0)
    old = report.started_at - timedelta(days=2)
    live = CarbonIntensity.live(ScriptedProvider(100.0, at=old), fallback=None)
    notes = apply_carbon(report, live).carbon.notes
    assert any("more than 1 h outside the run" in n for n in notes)
    assert any("one live value was applied" in n for n in notes)


def test_live_fallback_may_be_a_series(report_factory: Factory) -> None:
    report = report_factory(energy_j=3.6e6)
    series = CarbonIntensity.series([(report.started_at, 40.0)])
    live = CarbonIntensity.live(ScriptedProvider(error=CarbonDataError("x")), fallback=series)
    out = apply_carbon(report, live)
    assert out.carbon.kind == "series" and out.emissions_g == pytest.approx(40.0)


def test_live_construction_is_validated() -> None:
    with pytest.raises(ConfigError, match="not a live provider"):
        CarbonIntensity.live(object(), fallback=None)  # type: ignore[arg-type]
    with pytest.raises(CarbonDataError, match="closest"):
        CarbonIntensity.live(ScriptedProvider(), fallback="Frnace")
    inner = CarbonIntensity.live(ScriptedProvider(), fallback=None)
    with pytest.raises(ConfigError, match="static or a series"):
        CarbonIntensity.live(ScriptedProvider(), fallback=inner)
    for wait in (-1, 601, "5", True):
        with pytest.raises(ConfigError, match="wait_s"):
            CarbonIntensity.live(ScriptedProvider(), fallback=None, wait_s=wait)  # type: ignore[arg-type]


def test_live_state_is_read_only() -> None:
    live = CarbonIntensity.live(UKCarbonIntensity(region_id=13), fallback="GB", wait_s=3)
    assert isinstance(live, LiveIntensity) and live.kind == "live"
    assert live.wait_s == 3 and live.fallback is not None and live.fallback.zone == "GB"
    with pytest.raises(AttributeError):
        live.wait_s = 5  # type: ignore[misc]
    with pytest.raises(AttributeError):
        live.other = 1  # type: ignore[attr-defined]
    assert "UKCarbonIntensity(region_id=13" in repr(live)
