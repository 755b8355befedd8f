"""Energy intervals: sensor models, interval maths, and coverage in randomised simulation.

The simulation drives the real meter, sampler, NVML backend and report builder on a
:class:`~bertwatt.testing.FakeClock`, through the fake ``pynvml`` module. Each simulated GPU's
NVML answers come from a sensor model applied to a known true power trace: a gain error of up to
+/-5 %; for the power path either an instant reading that sees 25 ms of every 100 ms at a random
phase (A100) or a 1 s average updated every 100 ms (H100); for the counter path the integral of
the gained power. The true energy is the exact integral of the true trace over the window, and
the reported ``energy_interval_j`` must contain it in at least 95 % of random cases.

Run as a script for the figures in docs/accuracy.md::

    HF_HUB_OFFLINE=1 .venv/bin/python tests/test_uncertainty.py --trials 600 --seed 1
"""

from __future__ import annotations

import math
import random
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from bertwatt import EnergyMeter
from bertwatt.backends.nvml import NVMLBackend
from bertwatt.errors import ConfigError
from bertwatt.report import EnergyReport
from bertwatt.report.uncertainty import (
    DEFAULT_MODELS_PATH,
    SensorModel,
    energy_interval,
    format_interval,
    load_sensor_models,
    sensor_model_for,
    sensor_models,
    set_sensor_models,
)
from bertwatt.testing import FakeBackend, FakeChannel, FakeClock, FakeGPU, FakeNVML, PowerTrace

A100 = "NVIDIA A100-SXM4-40GB"
H100 = "NVIDIA H100 80GB HBM3"


# -- the sensor model table ----------------------------------------------------------------------


def test_every_shipped_model_has_a_source_and_sane_figures() -> None:
    models = load_sensor_models(DEFAULT_MODELS_PATH)
    assert len(models) >= 8
    for m in models:
        assert len(m.source) > 20, m.id
        assert 0 < m.window_fraction <= 1
        assert 0 <= m.gain_error_rel < 1
    ids = [m.id for m in models]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(
    ("backend", "kind", "device", "expected"),
    [
        ("nvml", "counter", A100, "nvml-energy-counter"),
        ("nvml", "power", A100, "nvml-power-ga100"),
        ("nvml", "power", H100, "nvml-power-averaged"),
        ("nvml", "power", "NVIDIA GeForce RTX 3090", "nvml-power-averaged"),
        ("nvml", "power", "Tesla P100-PCIE-16GB", "nvml-power"),
        ("rapl", "counter", "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz", "rapl-intel"),
        ("rapl", "counter", "AMD EPYC 7763 64-Core Processor", "rapl-amd"),
        ("estimate", "power", "", "estimate"),
        ("shelly", "power", "", "default-power"),
    ],
)
def test_models_are_matched_by_backend_kind_and_device(
    backend: str, kind: str, device: str, expected: str
) -> None:
    m = sensor_model_for(backend, kind, device)
    assert m is not None and m.id == expected


def test_the_published_sensor_facts_are_in_the_table() -> None:
    ga100 = sensor_model_for("nvml", "power", A100)
    assert ga100 is not None
    assert ga100.window_fraction == pytest.approx(0.25) and ga100.update_period_s == 0.1
    assert "SC24" in ga100.source and "Part-time Power Measurements" in ga100.source
    hopper = sensor_model_for("nvml", "power", H100)
    assert hopper is not None
    assert hopper.averaging_window_s == 1.0 and hopper.lag_s == 0.5
    counter = sensor_model_for("nvml", "counter", A100)
    assert counter is not None and counter.update_period_s == 0.1
    amd = sensor_model_for("rapl", "counter", "AMD EPYC 7763")
    assert amd is not None and not amd.measured
    assert "Sch" in amd.source and "no DRAM domain" in amd.source
    intel = sensor_model_for("rapl", "counter", "Intel(R) Xeon(R) CPU E5-2680 v3")
    assert intel is not None and intel.measured and "Haswell" in intel.source


def _write_models(path: Path, rows: list[str]) -> Path:
    header = (
        "id,backend,kind,device,measured,update_period_s,window_fraction,averaging_window_s,"
        "lag_s,gain_error_rel,source"
    )
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def test_the_table_can_be_overridden_and_restored(tmp_path: Path) -> None:
    path = _write_models(
        tmp_path / "m.csv", ["lab,nvml,counter,,measured,0.05,1,,,0.01,our wall-meter calibration"]
    )
    previous = set_sensor_models(path)
    try:
        m = sensor_model_for("nvml", "counter", A100)
        assert m is not None and m.id == "lab" and m.gain_error_rel == 0.01
        assert sensor_model_for("rapl", "counter", "Intel") is None
    finally:
        set_sensor_models(previous)
    m = sensor_model_for("nvml", "counter", A100)
    assert m is not None and m.id == "nvml-energy-counter"
    assert sensor_models() == load_sensor_models(DEFAULT_MODELS_PATH)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("x,nvml,counter,,measured,0.1,1,,,0.05,", "needs a source"),
        ("x,nvml,counter,,guessed,0.1,1,,,0.05,src", "measured must be"),
        ("x,nvml,counter,,measured,fast,1,,,0.05,src", "update_period_s must be a number"),
        ("x,nvml,counter,,measured,0.1,0,,,0.05,src", "window_fraction must be in"),
        ("x,nvml,counter,([,measured,0.1,1,,,0.05,src", "not a regular expression"),
    ],
)
def test_a_bad_model_table_is_refused_with_the_row(tmp_path: Path, row: str, message: str) -> None:
    path = _write_models(tmp_path / "bad.csv", [row])
    with pytest.raises(ConfigError, match=message) as info:
        load_sensor_models(path)
    assert "row 2" in str(info.value)


def test_a_missing_table_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read sensor models"):
        set_sensor_models(tmp_path / "absent.csv")
    assert sensor_model_for("nvml", "counter", A100) is not None


# -- interval maths ----------------------------------------------------------------------------


def _model(**kw: object) -> SensorModel:
    base: dict[str, object] = {
        "id": "m",
        "backend": "*",
        "kind": "counter",
        "device": "",
        "measured": True,
        "update_period_s": 0.1,
        "window_fraction": 1.0,
        "averaging_window_s": None,
        "lag_s": None,
        "gain_error_rel": 0.05,
        "source": "test",
    }
    base.update(kw)
    return SensorModel(**base)  # type: ignore[arg-type]


def test_counter_interval_is_gain_plus_edge_staleness() -> None:
    iv = energy_interval(
        energy_j=1000.0,
        kind="counter",
        estimated=False,
        model=_model(),
        duration_s=10.0,
        covered_s=10.0,
        sample_interval_s=1.0,
        peak_w=100.0,
    )
    # 5 % gain (50 J) + two edges each up to one 0.1 s update stale at 100 W (20 J)
    assert iv.low_j == pytest.approx(930.0) and iv.high_j == pytest.approx(1070.0)
    assert "gain +/-5%" in iv.basis and "0.1 s" in iv.basis


def test_an_unmeasured_share_widens_only_the_upper_side() -> None:
    full = energy_interval(
        energy_j=900.0,
        kind="counter",
        estimated=False,
        model=_model(gain_error_rel=0.0),
        duration_s=10.0,
        covered_s=9.0,
        sample_interval_s=1.0,
        peak_w=100.0,
    )
    assert full.low_j == pytest.approx(900.0 - 20.0)
    assert full.high_j == pytest.approx(900.0 + 20.0 + 100.0)
    assert "not measured" in full.basis


def test_estimates_carry_the_model_error_and_say_so() -> None:
    m = sensor_model_for("estimate", "power")
    iv = energy_interval(
        energy_j=71.0,
        kind="power",
        estimated=True,
        model=m,
        duration_s=3.0,
        covered_s=3.0,
        sample_interval_s=0.1,
    )
    assert iv.low_j == pytest.approx(35.5) and iv.high_j == pytest.approx(106.5)
    assert "a model, not a measurement" in iv.basis


def test_a_part_time_reading_widens_the_sampling_term() -> None:
    powers = [100.0, 300.0] * 50
    kw: dict[str, object] = {
        "energy_j": 2000.0,
        "kind": "power",
        "estimated": False,
        "duration_s": 10.0,
        "covered_s": 10.0,
        "sample_interval_s": 0.1,
        "powers_w": powers,
    }
    whole = energy_interval(model=_model(kind="power", gain_error_rel=0.0), **kw)  # type: ignore[arg-type]
    part = energy_interval(
        model=_model(kind="power", gain_error_rel=0.0, window_fraction=0.25),
        **kw,  # type: ignore[arg-type]
    )
    assert part.high_j - part.low_j > 1.5 * (whole.high_j - whole.low_j)
    assert "sees 25% of each 0.1 s" in part.basis


@pytest.mark.parametrize(
    ("energy", "interval", "text"),
    [
        (412_000.0, (391_000.0, 433_000.0), "412 \u00b1 21 kJ"),
        (17.08, (16.0, 18.2), "17.1 \u00b1 1.1 J"),
        (5_000.0, (4_900.0, 5_400.0), "5.00 kJ (+0.40/-0.10 kJ)"),
        (None, (1.0, 2.0), ""),
        (1.0, None, ""),
    ],
)
def test_format_interval(
    energy: float | None, interval: tuple[float, float] | None, text: str
) -> None:
    assert format_interval(energy, interval) == text


# -- reports ---------------------------------------------------------------------------------


def _meter_report(channels: Sequence[FakeChannel], seconds: float) -> EnergyReport:
    clock = FakeClock()
    backend = FakeBackend(channels=list(channels), clock=clock)
    with EnergyMeter(backends=[backend], clock=clock) as m, m.phase("work"):
        clock.advance(seconds)
    return m.report


def test_every_figure_carries_an_interval_and_its_basis() -> None:
    r = _meter_report(
        [FakeChannel("gpu:0", 200.0, kind="counter"), FakeChannel("cpu:0", 50.0)], 20.0
    )
    assert r.energy_j is not None and r.energy_interval_j is not None
    low, high = r.energy_interval_j
    assert low <= r.energy_j <= high and high > low
    assert r.interval_basis and "lows and highs" in r.interval_basis
    for c in r.channels:
        assert c.energy_interval_j is not None and c.interval_basis
        assert c.energy_interval_j[0] <= (c.energy_j or 0) <= c.energy_interval_j[1]
        assert c.provenance.sensor_model and c.provenance.sensor_model_source
    assert sum(c.energy_interval_j[0] for c in r.channels) == pytest.approx(low)  # type: ignore[index]
    ph = r.phases["work"]
    assert ph.energy_interval_j is not None and ph.interval_basis
    assert ph.energy_interval_j[0] <= (ph.energy_j or 0) <= ph.energy_interval_j[1]
    summary = r.summary()
    assert "\u00b1" in summary and "interval:" in summary


def test_a_window_shorter_than_a_few_update_periods_is_flagged() -> None:
    clock = FakeClock()
    fake = FakeNVML([FakeGPU(A100, power_w=250.0)], clock=clock)
    with fake.install(), EnergyMeter(backends=[NVMLBackend()], clock=clock) as m:
        clock.advance(0.35)
    assert any("shorter than 10 sensor update periods (0.1 s)" in w for w in m.report.warnings)
    assert m.report.host.gpu_names == [A100]
    with fake.install(), EnergyMeter(backends=[NVMLBackend()], clock=clock) as m:
        clock.advance(5.0)
    assert not any("sensor update periods" in w for w in m.report.warnings)


def test_an_estimate_only_total_is_flagged_and_wide() -> None:
    r = _meter_report([FakeChannel("cpu:estimate", 23.7, estimated=True)], 3.0)
    assert any("the total is estimated only" in w for w in r.warnings)
    assert r.energy_j is not None and r.energy_interval_j is not None
    assert r.energy_interval_j[1] - r.energy_interval_j[0] == pytest.approx(r.energy_j)
    assert any("interval reaches 50%" in w for w in r.warnings)


def test_low_coverage_raises_the_upper_bound() -> None:
    gpu = FakeChannel("gpu:0", 100.0)
    clock = FakeClock()
    backend = FakeBackend(channels=[gpu], clock=clock)
    backend.fail(kind="raise", at_s=2.0, until_s=6.0)
    with EnergyMeter(backends=[backend], clock=clock) as m:
        clock.advance(10.0)
    c = m.report.channel("gpu:0")
    assert c.coverage < 0.95 and c.energy_interval_j is not None and c.energy_j is not None
    assert c.energy_interval_j[1] >= 1000.0 > c.energy_j
    assert "not measured" in (c.interval_basis or "")


def test_reports_without_intervals_still_load(tmp_path: Path) -> None:
    r = _meter_report([FakeChannel("gpu:0", 100.0, kind="counter")], 2.0)
    data = r.model_dump(mode="json")
    data.pop("energy_interval_j")
    data.pop("interval_basis")
    for c in data["channels"]:
        c.pop("energy_interval_j")
        c.pop("interval_basis")
        c["provenance"].pop("sensor_model")
        c["provenance"].pop("sensor_model_source")
    for p in data["phases"].values():
        p.pop("energy_interval_j")
        p.pop("interval_basis")
    path = tmp_path / "old.json"
    path.write_text(EnergyReport.model_validate(data).to_json(), encoding="utf-8")
    back = EnergyReport.load(path)
    assert back.energy_interval_j is None and back.energy_j == r.energy_j
    assert "\u00b1" not in back.summary()
    v1 = sorted((Path(__file__).parent / "fixtures" / "v1").glob("*.json"))
    assert v1, "the v1 fixtures are missing"
    for f in v1:
        old = EnergyReport.load(f)
        assert old.energy_interval_j is None
        assert all(c.energy_interval_j is None for c in old.channels)
        assert "\u00b1" not in old.summary()


# -- randomised simulation -----------------------------------------------------------------------


@dataclass
class Case:
    """One simulated window: what was simulated, the truth, and what bertwatt reported."""

    sensor: str
    trace: str
    duration_s: float
    truth_j: float
    energy_j: float
    low_j: float
    high_j: float
    short_warning: bool

    @property
    def covered(self) -> bool:
        return self.low_j <= self.truth_j <= self.high_j

    @property
    def rel_half_width(self) -> float:
        return (self.high_j - self.low_j) / 2 / self.truth_j

    @property
    def rel_error(self) -> float:
        return (self.energy_j - self.truth_j) / self.truth_j


def _random_trace(rng: random.Random, span_s: float) -> tuple[str, list[tuple[float, float]]]:
    """A random true power trace as steps over [0, span_s]: constant, square, spikes or ramp."""
    kind = rng.choice(["constant", "square", "square", "spikes", "ramp"])
    low, high = rng.uniform(40.0, 150.0), rng.uniform(200.0, 450.0)
    if kind == "constant":
        return kind, [(0.0, rng.uniform(50.0, 400.0))]
    steps: list[tuple[float, float]] = []
    if kind == "square":
        period = math.exp(rng.uniform(math.log(0.2), math.log(30.0)))
        duty = rng.choice([0.1, 0.25, 0.5, 0.75, 0.9])
        t = -rng.uniform(0.0, period)
        while t < span_s:
            steps += [(max(0.0, t), high), (max(0.0, t + duty * period), low)]
            t += period
        steps = [(t, w) for t, w in steps if t < span_s]
    elif kind == "spikes":
        t = 0.0
        steps.append((0.0, low))
        while t < span_s:
            t += rng.uniform(0.05, 2.0)
            steps += [(t, high), (t + rng.uniform(0.005, 0.05), low)]
    else:
        n = int(span_s / 0.01) + 1
        steps = [(i * 0.01, low + (high - low) * i / n) for i in range(n)]
    clean: list[tuple[float, float]] = []
    for t, w in steps:
        if clean and t <= clean[-1][0]:
            clean[-1] = (clean[-1][0], w)
        else:
            clean.append((t, w))
    return kind, clean


def _reading(
    sensor: str, true: PowerTrace, gain: float, phase_s: float
) -> Callable[[float], float]:
    """What NVML answers at fake time t under the sensor model."""
    if sensor == "instant":  # A100: sees the latest 25 ms of each 100 ms

        def instant(t: float) -> float:
            k = math.floor((t - phase_s - 0.025) / 0.1)
            a = k * 0.1 + phase_s
            return gain * (true.energy_j(a + 0.025) - true.energy_j(a)) / 0.025

        return instant
    if sensor == "averaged":  # H100 default: 1 s average, updated every 100 ms

        def averaged(t: float) -> float:
            u = math.floor((t - phase_s) / 0.1) * 0.1 + phase_s
            return gain * (true.energy_j(u) - true.energy_j(u - 1.0)) / 1.0

        return averaged
    return lambda t: gain * true.power_w(t)  # counter: integral of the gained power


def simulate(rng: random.Random, sensor: str) -> Case:
    """One random window through the real meter; returns truth and report figures."""
    duration = math.exp(rng.uniform(math.log(0.5), math.log(120.0)))
    lead = 2.0 + rng.uniform(0.0, 1.0)
    name, steps = _random_trace(rng, lead + duration + 2.0)
    true = PowerTrace(steps)
    gain = 1.0 + rng.uniform(-0.05, 0.05)
    read = _reading(sensor, true, gain, rng.uniform(0.0, 0.1))
    clock = FakeClock()
    gpu = FakeGPU(
        H100 if sensor == "averaged" else A100,
        power_w=read,
        supports_energy_counter=sensor == "counter",
        power_limit_w=1000.0,
    )
    fake = FakeNVML([gpu], clock=clock)
    with fake.install():
        clock.advance(lead)
        t0 = fake.elapsed_s()
        with EnergyMeter(backends=[NVMLBackend()], clock=clock) as m:
            clock.advance(duration)
        t1 = fake.elapsed_s()
    r = m.report
    assert r.energy_j is not None and r.energy_interval_j is not None
    return Case(
        sensor=sensor,
        trace=name,
        duration_s=t1 - t0,
        truth_j=true.energy_j(t1) - true.energy_j(t0),
        energy_j=r.energy_j,
        low_j=r.energy_interval_j[0],
        high_j=r.energy_interval_j[1],
        short_warning=any("sensor update periods" in w for w in r.warnings),
    )


def run_cases(trials: int, seed: int) -> list[Case]:
    rng = random.Random(seed)
    return [simulate(rng, ("counter", "instant", "averaged")[i % 3]) for i in range(trials)]


@pytest.mark.parametrize("seed", [11, 12])
def test_intervals_cover_the_true_energy_in_95_percent_of_random_windows(seed: int) -> None:
    cases = run_cases(60, seed)
    covered = sum(c.covered for c in cases) / len(cases)
    assert covered >= 0.95, [c for c in cases if not c.covered]
    # and not absurdly wide: the median half-width stays under 20 % of the energy
    assert statistics.median(c.rel_half_width for c in cases) < 0.20
    for c in cases:
        assert c.short_warning == (c.duration_s < 1.0), c


def _table(cases: Sequence[Case]) -> str:
    lines = [
        "| sensor | windows | covered | median half-width | max abs error |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    groups = sorted({c.sensor for c in cases})
    for g in [*groups, "all"]:
        sel = [c for c in cases if g in ("all", c.sensor)]
        lines.append(
            f"| {g} | {len(sel)} | {sum(c.covered for c in sel) / len(sel):.1%} "
            f"| {statistics.median(c.rel_half_width for c in sel):.2%} "
            f"| {max(abs(c.rel_error) for c in sel):.2%} |"
        )
    lines += [
        "",
        "| window length | windows | covered | median half-width |",
        "| --- | ---: | ---: | ---: |",
    ]
    for lo, hi, label in ((0, 1, "< 1 s"), (1, 10, "1-10 s"), (10, 1e9, ">= 10 s")):
        sel = [c for c in cases if lo <= c.duration_s < hi]
        if sel:
            lines.append(
                f"| {label} | {len(sel)} | {sum(c.covered for c in sel) / len(sel):.1%} "
                f"| {statistics.median(c.rel_half_width for c in sel):.2%} |"
            )
    short = [c for c in cases if c.duration_s < 1.0]
    lines.append("")
    lines.append(
        f"windows under 1 s (10 update periods): {len(short)}, "
        f"flagged: {sum(c.short_warning for c in short)}; longer windows flagged: "
        f"{sum(c.short_warning for c in cases if c.duration_s >= 1.0)}"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=600)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(_table(run_cases(args.trials, args.seed)))
    sys.exit(0)


# -- merge -----------------------------------------------------------------------------------


def _strip_intervals(r: EnergyReport) -> EnergyReport:
    data = r.model_dump(mode="json")
    data["energy_interval_j"] = data["interval_basis"] = None
    for c in data["channels"]:
        c["energy_interval_j"] = c["interval_basis"] = None
    for p in data["phases"].values():
        p["energy_interval_j"] = p["interval_basis"] = None
    return EnergyReport.model_validate(data)


def _window(clock: FakeClock, seconds: float, watts: float) -> EnergyReport:
    backend = FakeBackend(channels=[FakeChannel("gpu:0", watts, kind="counter")], clock=clock)
    with EnergyMeter(backends=[backend], clock=clock) as m, m.phase("work"):
        clock.advance(seconds)
    clock.advance(1.0)
    return m.report


def test_merge_adds_the_widths_of_the_reports_it_uses() -> None:
    clock = FakeClock()
    a, b = _window(clock, 10.0, 100.0), _window(clock, 20.0, 300.0)
    merged = EnergyReport.merge([a, b])
    assert merged.energy_j == pytest.approx((a.energy_j or 0) + (b.energy_j or 0))
    assert merged.energy_interval_j is not None and a.energy_interval_j and b.energy_interval_j
    assert merged.energy_interval_j[0] == pytest.approx(
        a.energy_interval_j[0] + b.energy_interval_j[0]
    )
    assert merged.energy_interval_j[1] == pytest.approx(
        a.energy_interval_j[1] + b.energy_interval_j[1]
    )
    ch = merged.channel("gpu:0")
    assert ch.energy_interval_j == pytest.approx(merged.energy_interval_j)
    assert "merged from 2 report(s)" in (ch.interval_basis or "")
    ph = merged.phases["work"]
    assert ph.energy_interval_j is not None
    assert ph.energy_interval_j[0] <= (ph.energy_j or 0) <= ph.energy_interval_j[1]
    # a copy of the same run counts once, and so does its width
    again = EnergyReport.merge([a, a])
    assert again.energy_interval_j == pytest.approx(a.energy_interval_j)


def test_merge_with_a_report_without_intervals_says_so() -> None:
    clock = FakeClock()
    a, b = _window(clock, 10.0, 100.0), _strip_intervals(_window(clock, 5.0, 200.0))
    merged = EnergyReport.merge([a, b])
    assert merged.energy_j is not None and merged.energy_interval_j is None
    assert merged.interval_basis and "before intervals existed" in merged.interval_basis
    assert merged.phases["work"].energy_interval_j is None


def test_energy_added_after_the_channels_moves_the_interval() -> None:
    from bertwatt.report.merge import carry_interval

    fields: dict[str, object] = {
        "energy_j": 150.0,
        "energy_interval_j": (90.0, 110.0),
        "interval_basis": "lows and highs",
    }
    carry_interval(fields, 100.0)
    assert fields["energy_interval_j"] == (140.0, 160.0)
    assert "earlier segments" in str(fields["interval_basis"])
    fields = {"energy_j": None, "energy_interval_j": (90.0, 110.0)}
    carry_interval(fields, 100.0)
    assert fields["energy_interval_j"] is None


def test_a_resumed_report_moves_its_interval_with_the_earlier_segments() -> None:
    from types import SimpleNamespace

    from bertwatt.integrations.build import _resume_fields

    base = _window(FakeClock(), 10.0, 100.0)
    assert base.energy_j is not None and base.energy_interval_j is not None
    prev = SimpleNamespace(
        energy_j=500.0,
        emissions_g=None,
        segments=[object()],
        from_step=40,
        lost_energy_upper_j=None,
        basis="checkpoint",
    )
    fields = _resume_fields(SimpleNamespace(previous=prev), base)  # type: ignore[arg-type]
    low, high = fields["energy_interval_j"]
    assert low <= fields["energy_j"] <= high
    assert low == pytest.approx(base.energy_interval_j[0] + 500.0)
    assert "earlier segments" in fields["interval_basis"]


# -- self-characterisation ---------------------------------------------------------------------


def test_a_counter_update_period_is_detected_from_faster_polls() -> None:
    from bertwatt.report.uncertainty import counter_update_period

    t = [i * 20_000_000 for i in range(100)]  # polled every 20 ms
    stepped = [150.0 * math.floor(ti / 100_000_000) for ti in t]  # updates every 100 ms
    assert counter_update_period(t, stepped) == pytest.approx(0.1)
    smooth = [1.5 * ti / 1e7 for ti in t]  # moves at every poll
    assert counter_update_period(t, smooth) is None
    idle = [0.0] * 40 + [1.0 * i for i in range(20)] + [20.0] * 40  # idle, not stepping
    assert counter_update_period(t, idle) is None


def test_an_averaged_power_reading_is_told_from_an_instant_one() -> None:
    from bertwatt.report.uncertainty import power_averaging_window

    true = PowerTrace([(0.0, 100.0), (1.0, 300.0), (2.5, 100.0), (4.0, 300.0), (6.0, 100.0)])
    t = [int(i * 0.1 * 1e9) for i in range(15, 80)]
    instant = [true.power_w(ti / 1e9) for ti in t]
    averaged = [true.energy_j(ti / 1e9) - true.energy_j(ti / 1e9 - 1.0) for ti in t]
    assert power_averaging_window(t, instant) == 0.0
    w = power_averaging_window(t, averaged)
    assert w is not None and 0.8 <= w <= 1.3
    assert power_averaging_window(t, [200.0] * len(t)) is None


def test_a_detected_averaged_reading_is_recorded_and_widens_the_interval() -> None:
    true = PowerTrace([(i * 1.5, 100.0 if i % 2 else 350.0) for i in range(40)])
    clock = FakeClock()
    gpus = [
        FakeGPU(A100, power_w=_reading("averaged", true, 1.0, 0.0), supports_energy_counter=False),
        FakeGPU(A100, power_w=_reading("instant", true, 1.0, 0.0), supports_energy_counter=False),
    ]
    fake = FakeNVML(gpus, clock=clock)
    with fake.install():
        clock.advance(2.0)
        with EnergyMeter(backends=[NVMLBackend()], clock=clock) as m:
            clock.advance(30.0)
    averaged, instant = m.report.channels
    assert "averaged over about" in averaged.provenance.characterised["detected_reading"]
    assert "averaged reading" in (averaged.interval_basis or "")
    assert instant.provenance.characterised["detected_reading"].startswith("instant")
    assert "averaged reading" not in (instant.interval_basis or "")


# -- the estimate, honest ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "expected", "whole_machine"),
    [
        ({"utilisation": "system"}, ["TDP 24 W", "FALLBACK", "whole machine"], True),
        ({"utilisation": "process"}, ["TDP 24 W", "FALLBACK", "this process only"], False),
        (
            {"cpu_model": "Intel Xeon Gold 6248", "utilisation": "process"},
            ["TDP 150 W per package", "table row", "this process only"],
            False,
        ),
    ],
)
def test_every_summary_states_the_estimates_key_assumptions_in_one_line(
    tmp_path: Path, kwargs: dict[str, object], expected: list[str], whole_machine: bool
) -> None:
    from bertwatt.backends.estimate import EstimateBackend

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Unknown CPU 9000\n", encoding="utf-8")
    backend = EstimateBackend(cpu_count=2, cpuinfo_path=cpuinfo, **kwargs)  # type: ignore[arg-type]
    with pytest.warns(Warning), EnergyMeter(backends=[backend]) as m:
        pass
    lines = [ln for ln in m.report.summary().splitlines() if "ESTIMATE assumptions:" in ln]
    assert len(lines) == 1
    for text in expected:
        assert text in lines[0]
    flagged = any("charges the whole machine's CPU load" in w for w in m.report.warnings)
    assert flagged == whole_machine
