"""Building reports from a meter window: figures, timelines, warnings, host, partial reports."""

from __future__ import annotations

import os
import socket
from datetime import timedelta

import pytest

from bertwatt.meter import EnergyMeter
from bertwatt.testing import FakeBackend, FakeChannel, FakeClock


def meter_on(clock: FakeClock, *channels: FakeChannel, **kw: object) -> EnergyMeter:
    backend = FakeBackend(channels=list(channels), clock=clock)
    return EnergyMeter(backends=[backend], clock=clock, **kw)  # type: ignore[arg-type]


def test_times_host_and_unavailable_entries(sample_report):
    r = sample_report
    assert r.ended_at - r.started_at == timedelta(seconds=r.duration_s)
    assert r.started_at.utcoffset() == timedelta(0)
    assert r.interval_s == 0.1
    assert r.host.hostname == socket.gethostname()
    assert r.host.pid == os.getpid()
    assert r.host.python and r.host.os and r.host.bertwatt_version
    assert r.hosts == [r.host]
    assert all(c.host == r.host.hostname for c in r.channels)
    assert all(u.host == r.host.hostname for u in r.unavailable)


def test_total_timeline_is_monotonic_and_ends_at_the_total(sample_report):
    tl = sample_report.timeline
    assert len(tl) == 1001
    assert tl[0] == (0.0, pytest.approx(0.0))
    assert tl[-1] == (pytest.approx(sample_report.duration_s), sample_report.energy_j)
    energies = [e for _, e in tl]
    assert energies == sorted(energies)
    # halfway (4 s into the window, 5 s on the fake's clock): gpu 60 W until 3 s then 250 W,
    # plus the estimated cpu at 40 W
    assert tl[500][0] == pytest.approx(4.0)
    assert tl[500][1] == pytest.approx(120.0 + 250.0 * 2.0 + 40.0 * 4.0, rel=1e-9)


def test_channel_timelines_are_thinned_and_relative_to_the_window(clock):
    m = meter_on(clock, FakeChannel("c", 10.0, kind="counter"), FakeChannel("p", 5.0))
    with m:
        clock.advance(300.0)  # 3001 samples per channel
    for ch in m.report.channels:
        assert 400 <= len(ch.timeline) <= 501
        offsets = [t for t, _, _ in ch.timeline]
        assert offsets[0] == 0.0 and offsets == sorted(offsets)
        assert offsets[-1] <= 300.0
    c = m.report.channel("c")
    assert c.timeline[0][2] is None  # a counter has no power at its first reading
    assert all(p == pytest.approx(10.0) for _, _, p in c.timeline[1:])
    assert all(e == pytest.approx(10.0 * t) for t, e, _ in c.timeline)


def test_short_window_of_power_samples_is_flagged(clock):
    m = meter_on(clock, FakeChannel("p", 5.0))
    with m:
        clock.advance(0.5)
    assert any("fewer than 10 sampling intervals" in w for w in m.report.warnings)
    m = meter_on(clock, FakeChannel("p", 5.0))
    with m:
        clock.advance(1.0)
    assert not any("fewer than 10 sampling intervals" in w for w in m.report.warnings)


def test_low_coverage_is_flagged_only_for_counted_channels(clock):
    chans = [FakeChannel("a", 10.0), FakeChannel("b", 10.0, counted=False)]
    backend = FakeBackend(channels=chans, clock=clock).fail(at_s=2.0, until_s=8.0)
    with EnergyMeter(backends=[backend], clock=clock) as m:
        clock.advance(10.0)
    assert any(w.startswith("a covered only 39%") for w in m.report.warnings)
    assert not any(w.startswith("b covered") for w in m.report.warnings)
    assert m.report.channel("b").coverage == pytest.approx(0.39)


def test_mean_power_is_over_covered_time(clock):
    backend = FakeBackend(channels=[FakeChannel("a", 10.0)], clock=clock).fail(
        at_s=2.0, until_s=8.0
    )
    with EnergyMeter(backends=[backend], clock=clock) as m:
        clock.advance(10.0)
    a = m.report.channel("a")
    assert a.energy_j == pytest.approx(39.0)
    assert a.mean_power_w == pytest.approx(10.0)  # not 3.9 W: the gap is not idle time
    assert m.report.mean_power_w == pytest.approx(3.9)  # the total over the whole window


def test_zero_length_phase(clock):
    m = meter_on(clock, FakeChannel("c", 10.0, kind="counter"))
    with m:
        clock.advance(1.0)
        m.begin("blink")
        m.end("blink")
        clock.advance(1.0)
    ph = m.report.phases["blink"]
    assert ph.duration_s == 0.0 and ph.energy_j == 0.0
    assert ph.mean_power_w is None and ph.coverage == 0.0


def test_estimated_channel_is_flagged(sample_report):
    assert any(
        w.startswith("cpu:package-0 is estimated (bertwatt.testing fake power)")
        for w in sample_report.warnings
    )
    # a sub-zone that is not added to the total does not raise the same flag
    assert not any(w.startswith("cpu:core-0 is estimated") for w in sample_report.warnings)


def test_warnings_are_not_repeated(clock):
    m = meter_on(clock, FakeChannel("c", 10.0, kind="counter"))
    with m:
        m.begin("x")
        m.begin("y")
        clock.advance(2.0)
    open_warnings = [w for w in m.report.warnings if "still open" in w]
    assert len(open_warnings) == 2
    assert len(m.report.warnings) == len(set(m.report.warnings))


def test_partial_report_runs_to_now_and_counts_open_phases(clock):
    m = meter_on(clock, FakeChannel("c", 10.0, kind="counter"))
    with m:
        clock.advance(1.0)
        m.begin("open")
        clock.advance(2.55)
        partial = m.partial_report()
    assert partial.status == "running"
    assert partial.duration_s == pytest.approx(3.55)
    # up to the latest sample (3.5 s)
    assert partial.energy_j == pytest.approx(35.0)
    assert partial.phases["open"].count == 1
    assert partial.phases["open"].intervals == [(pytest.approx(1.0), pytest.approx(3.55))]
    assert partial.phases["open"].energy_j == pytest.approx(25.0)
