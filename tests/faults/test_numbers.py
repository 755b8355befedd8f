"""Numbers that lie: poisoned counters, stuck sensors, absurd readings, slow cadences (issue #7).

Every test runs the real meter, sampler and timelines; sensors are FakeBackend channels on a
FakeClock, or the real RAPLBackend reading a fake powercap tree of real files.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bertwatt.backends.base import Channel, Provenance
from bertwatt.backends.rapl import RAPLBackend
from bertwatt.clock import SystemClock
from bertwatt.config import DEFAULT_MAX_POWER_W, MeterConfig
from bertwatt.errors import ConfigError
from bertwatt.meter import EnergyMeter
from bertwatt.testing import FakeBackend, FakeChannel, FakeClock
from bertwatt.testing.powercap import FakePowercapTree
from bertwatt.timeline import ChannelTimeline

S = 1_000_000_000


def counter(name: str = "c", power_w: object = 100.0, **kw: object) -> FakeChannel:
    return FakeChannel(name, power_w, kind="counter", **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------ negative after unwrapping
def test_out_of_range_readings_cannot_rebase_a_wrapping_counter_into_a_negative(run):
    # Three readings past the counter's range used to re-base the counter there; the next
    # normal reading then gave a difference negative even after one wrap, and the channel fell
    # to 0 J "measured" (true 1000 J). Out-of-range readings are now rejected outright.
    ch = counter(wrap_j=1000.0, max_power_w=500.0)

    def poison(b: FakeBackend) -> None:
        for k in range(3):
            b.glitch("c", at_s=4.0 + 0.1 * k, value=5000.0)

    report, _ = run([ch], 10.0, faults=poison)
    c = report.channel("c")
    assert c.rejected == 3
    assert c.energy_j == pytest.approx(1000.0, rel=1e-9)
    assert report.energy_j == pytest.approx(1000.0, rel=1e-9)
    assert c.coverage == 1.0
    assert any("outside the counter's range" in e for e in c.events)
    assert any("c: 3 implausible reading(s) rejected" in w for w in report.warnings)


def test_negative_difference_after_unwrapping_is_never_energy():
    # A base poisoned from before the check existed (or by any future path) must not turn the
    # next difference into negative energy: the interval becomes a gap, the total never drops.
    ch = counter(wrap_j=1000.0, max_power_w=500.0).channel
    tl = ChannelTimeline(ch)
    tl.add(0, 100.0)
    tl.add(S, 200.0)
    tl._prev_raw = 2500.0  # a base above the range: the state the old re-base left behind
    tl.add(2 * S, 300.0)  # 300 - 2500 + 1000 = -1200 J after one wrap
    assert tl.energy_j == pytest.approx(100.0)
    assert tl.event_counts["negative"] == 1
    assert tl.gaps == [(S, 2 * S)]
    tl.add(3 * S, 400.0)  # counting resumes from the new base
    assert tl.energy_j == pytest.approx(200.0)
    assert tl.wraps == 0


def test_implausible_in_range_readings_rebase_but_never_lower_the_total(run):
    # Readings inside the range but implying kW are rejected; after three in a row the counter
    # is re-based, losing only the re-based intervals: never a negative or a drop of the total.
    ch = counter(wrap_j=10_000.0, max_power_w=500.0)

    def poison(b: FakeBackend) -> None:
        for k in range(3):
            b.glitch("c", at_s=4.0 + 0.1 * k, value=9000.0)

    report, _ = run([ch], 10.0, faults=poison)
    c = report.channel("c")
    assert c.energy_j is not None
    assert 900.0 <= c.energy_j <= 1000.0 + 1e-6
    assert any("re-based" in e for e in c.events)
    energies = [e for _, e in report.timeline]
    assert energies == sorted(energies)


@pytest.mark.parametrize(
    ("garbage", "lowest_j"),
    [
        ("99999999999999\n", 1000.0),  # past the range: rejected outright, nothing lost
        ("0\n", 900.0),  # in range but implausible: rejected, then re-based; a little is lost
        ("-5\n", 1000.0),  # negative: refused
    ],
)
def test_corrupted_energy_uj_through_the_real_rapl_backend(
    tmp_path: Path, clock: FakeClock, garbage: str, lowest_j: float
):
    tree = FakePowercapTree(tmp_path / "powercap")
    tree.add_package(0, subzones=(), max_energy_range_uj=1_000_000_000)  # 1 kJ range
    zone = "intel-rapl:0"
    rapl = RAPLBackend(tree.root)
    true_uj = 0
    with EnergyMeter(backends=[rapl], clock=clock) as meter:
        for k in range(100):  # 10 s at 100 W (10 J per 0.1 s tick)
            true_uj = (true_uj + 10_000_000) % 1_000_000_000
            if 40 <= k < 43:
                tree.corrupt(zone, garbage)  # garbage from the driver for three reads
            else:
                tree.set_energy(zone, true_uj)
            clock.advance(0.1)
    report = meter.report
    c = report.channel("cpu:package-0")
    assert c.rejected + c.failed_reads >= 3  # "-5" does not parse: the backend fails those reads
    assert c.energy_j is not None
    assert lowest_j - 1e-6 <= c.energy_j <= 1000.0 + 1e-6
    assert report.energy_j == c.energy_j
    energies = [e for _, e in report.timeline]
    assert energies == sorted(energies)  # the total never drops


# ------------------------------------------------------------------ stuck sensors
def test_stuck_counter_is_detected_warned_and_labelled_but_kept(run):
    # A counter that updates every 0.1 s stops moving for 20 s (the trace says 100 W: the device
    # draws power, the sensor is stuck): a measured figure with a warning, not a silent number.
    ch = counter(power_w=[(0.0, 100.0), (5.0, 0.0), (25.0, 100.0)])
    report, _ = run([ch], 30.0)
    c = report.channel("c")
    assert c.energy_j == pytest.approx(1000.0, rel=1e-9)  # the figure stays
    stuck = [w for w in report.warnings if "stuck sensor suspected" in w]
    assert len(stuck) == 1 and stuck[0].startswith("c: ")
    assert "20.0 s" in stuck[0]
    assert any("stuck sensor suspected" in n for n in c.provenance.notes)
    assert any("did not move" in e for e in c.events)
    assert "stuck sensor suspected" in report.summary()


def counter_channel(update_period_s: float | None) -> Channel:
    prov = Provenance(kind="measured", source="t", scope="other", update_period_s=update_period_s)
    return Channel(name="c", domain="other", kind="counter", provenance=prov)


def test_stuck_threshold_follows_the_update_period():
    assert ChannelTimeline(counter_channel(None)).stuck_after_s == pytest.approx(5.0)
    assert ChannelTimeline(counter_channel(0.05)).stuck_after_s == pytest.approx(2.0)  # >= 2 s
    assert ChannelTimeline(counter_channel(0.5)).stuck_after_s == pytest.approx(5.0)
    assert ChannelTimeline(counter_channel(2.0)).stuck_after_s == pytest.approx(20.0)


def test_stuck_span_is_timed_from_the_first_flat_reading():
    tl = ChannelTimeline(counter_channel(0.1))
    for k in range(10):
        tl.add(k * S // 10, 10.0 * k)  # 100 W for 0.9 s
    for k in range(10, 60):
        tl.add(k * S // 10, 90.0)  # flat from 0.9 s to 5.9 s
    assert tl.stuck == []
    assert tl.stuck_spans() == [(9 * S // 10, 59 * S // 10)]  # still going on
    tl.add(6 * S, 100.0)
    assert tl.stuck == [(9 * S // 10, 59 * S // 10)] and tl.stuck_count == 1


def test_short_flat_stretch_is_not_stuck(run):
    ch = counter(power_w=[(0.0, 100.0), (5.0, 0.0), (6.0, 100.0)])
    report, _ = run([ch], 10.0)
    assert not any("stuck" in w for w in report.warnings)


def test_counter_stuck_until_the_end_is_reported(run):
    ch = counter(power_w=[(0.0, 100.0), (3.0, 0.0)])
    report, _ = run([ch], 30.0)
    assert any("stuck sensor suspected" in w for w in report.warnings)


# ------------------------------------------------------------------ plausibility bounds
def test_custom_channel_without_a_bound_rejects_a_terawatt(run):
    chans = [FakeChannel("custom", 100.0)]  # no max_power_w, scope "other"

    def glitch(b: FakeBackend) -> None:
        b.glitch("custom", at_s=5.0, value=1e12)

    report, _ = run(chans, 10.0, faults=glitch)
    c = report.channel("custom")
    assert c.rejected == 1
    assert c.energy_j == pytest.approx(1000.0, rel=1e-9)
    assert c.peak_power_w == pytest.approx(100.0)
    assert any("plausibility bound 50000 W" in w for w in report.warnings)


def test_every_scope_has_a_default_bound():
    scopes = (
        "gpu-board",
        "cpu-package",
        "cpu-core",
        "cpu-uncore",
        "dram",
        "platform",
        "system",
        "other",
    )
    cfg = MeterConfig()
    for scope in scopes:
        ch = FakeChannel("x", 1.0, scope=scope).channel  # type: ignore[arg-type]
        assert cfg.max_power_for(ch) == DEFAULT_MAX_POWER_W[scope]
    own = FakeChannel("x", 1.0, scope="gpu-board", max_power_w=450.0).channel
    assert cfg.max_power_for(own) == 450.0  # the backend's own bound beats the default


def test_bounds_are_overridable_by_scope_and_by_channel_name(run):
    chans = [
        FakeChannel("gpu:0", 800.0, scope="gpu-board"),
        FakeChannel("gpu:1", 800.0, scope="gpu-board"),
    ]
    report, _ = run(chans, 2.0, max_power_w={"gpu-board": 500.0, "gpu:1": 1000.0})
    assert report.channel("gpu:0").energy_j is None  # every reading above 500 W: rejected
    assert report.channel("gpu:0").rejected > 0
    assert report.channel("gpu:1").energy_j == pytest.approx(1600.0, rel=1e-9)


@pytest.mark.parametrize(
    "bad",
    [{"gpu-board": -1.0}, {"gpu-board": float("nan")}, {"": 10.0}, ["gpu-board"], {"x": "9"}],
)
def test_bad_bounds_are_config_errors(bad):
    with pytest.raises(ConfigError, match="max_power_w"):
        EnergyMeter(backends=[], max_power_w=bad)


# ------------------------------------------------------------------ slow cadences
def test_power_timeline_bridges_its_own_slow_cadence_but_not_a_hang():
    tl = ChannelTimeline(FakeChannel("plug", 100.0).channel, gap_ns=1 * S)
    for k in range(10):  # a meter that answers every 2 s
        tl.add(2 * k * S, 100.0)
    assert tl.energy_j == pytest.approx(1800.0)
    assert not tl.gaps
    tl.add(60 * S, 100.0)  # 42 s of silence: a gap, not a bridge
    assert tl.gaps == [(18 * S, 60 * S)]
    assert tl.energy_j == pytest.approx(1800.0)


def test_failed_reads_inside_an_interval_keep_it_a_gap():
    tl = ChannelTimeline(FakeChannel("plug", 100.0).channel, gap_ns=1 * S)
    for k in range(5):
        tl.add(2 * k * S, 100.0)
    tl.fail(9 * S, "timeout")
    tl.add(10 * S, 100.0)  # 2 s, as usual, but a read failed inside it: not bridged
    assert tl.gaps == [(8 * S, 10 * S)]
    tl.add(12 * S, 100.0)
    assert tl.energy_j == pytest.approx(1000.0)


def test_blocking_backend_answering_every_2_s_is_measured_not_zero():
    # Real threads and real time: the plug's read takes 2 s; the old gap limit (1 s) made every
    # interval a gap and the plug reported 0 J.
    plug = FakeBackend(
        name="plug",
        channels=[FakeChannel("wall", 300.0, scope="system")],
        clock=SystemClock(),
        blocking=True,
        read_delay_s=2.0,
    )
    meter = EnergyMeter(backends=[plug], interval_s=0.1, slow_read_timeout_s=3.0)
    meter.start()
    try:
        time.sleep(7.0)
    finally:
        report = meter.stop(warn=False)
    c = report.channel("wall")
    assert c.samples >= 3
    assert c.energy_j is not None and c.energy_j > 0.0
    # the samples sit at the middle of each 2 s read: most of the window is bridged
    assert c.coverage > 0.4
    assert c.energy_j == pytest.approx(300.0 * c.coverage * report.duration_s, rel=0.05)
    assert not any(e.startswith("no reading for") for e in c.events)
