"""Slow and hanging backends must not delay other channels, window edges or stop().

More cases (hung probe/first read/close, garbage answers, shared backends): test_hangs.py.

These run on the real clock (a hang is real time); tolerances are loose enough for a loaded
2-core machine, while a sampler that waited on the hung backend would miss them by seconds.
"""

from __future__ import annotations

import time

import pytest

from bertwatt.clock import SystemClock
from bertwatt.meter import EnergyMeter
from bertwatt.testing import FakeBackend, FakeChannel, FakeClock

HANG_S = 30.0


def fast_backend() -> FakeBackend:
    return FakeBackend(
        name="fast", channels=[FakeChannel("f", 100.0, kind="power")], clock=SystemClock()
    )


def test_hanging_backend_delays_neither_sampling_nor_edges_nor_stop():
    fast = fast_backend()
    plug = FakeBackend(
        name="plug",
        channels=[FakeChannel("wall", 300.0, kind="power")],
        clock=SystemClock(),
        blocking=True,
    ).hang(at_s=0.1, for_s=HANG_S)
    meter = EnergyMeter(backends=[fast, plug], interval_s=0.02, slow_read_timeout_s=0.3)
    try:
        meter.start()
        time.sleep(0.25)  # the plug is hanging from here on
        mark_s = []
        marks = []
        for _ in range(10):
            t0 = time.monotonic()
            marks.append(meter.mark())
            mark_s.append(time.monotonic() - t0)
            time.sleep(0.03)
        partial = meter.energy_between(marks[0], marks[-1])
        t0 = time.monotonic()
        report = meter.stop()
        stop_s = time.monotonic() - t0
        closed_at_stop = (plug.closed, fast.closed)
    finally:
        plug.release()
    # window edges return promptly (a hang is 30 s)
    assert max(mark_s) < 0.5
    # the fast channel's edges were read; the hung channel's are not known
    assert partial.channels["f"] is not None and partial.channels["wall"] is None
    assert not partial.complete
    # stop waits at most slow_read_timeout_s for all of it (last sample, then the threads)
    assert stop_s < 0.3 + 1.0
    f = report.channel("f")
    # ~0.55 s at 20 ms: a sampler stuck behind the plug would have a handful of samples
    assert f.samples >= 0.3 * report.duration_s / 0.02
    assert f.energy_j == pytest.approx(100.0 * report.duration_s, rel=0.05)
    assert report.channel("wall").coverage < 0.7
    assert any("'plug' did not answer within 0.3 s" in w for w in report.warnings)
    # a hung backend is not closed under its hung read (its thread closes it if it returns)
    assert closed_at_stop == (0, 1)


def test_slow_backend_edges_are_resolved_from_its_timeline():
    fast = fast_backend()
    plug = FakeBackend(
        name="plug",
        channels=[FakeChannel("wall", 50.0, kind="counter")],
        clock=SystemClock(),
        blocking=True,
        read_delay_s=0.3,
    )
    meter = EnergyMeter(backends=[fast, plug], interval_s=0.05, slow_read_timeout_s=5.0)
    with meter:
        time.sleep(0.4)
        a = meter.mark()
        right_after = meter.energy_between(a, a)
        time.sleep(0.8)
        b = meter.mark()
        t0 = time.monotonic()
    stop_s = time.monotonic() - t0
    # the plug needs 0.3 s per read: its edge at `a` cannot be known right after the mark
    assert right_after.channels["wall"] is None and right_after.channels["f"] == 0.0
    # after stop every edge is resolved from samples taken after it
    later = meter.energy_between(a, b)
    assert later.complete
    assert later.channels["wall"] == pytest.approx(50.0 * later.duration_s, rel=0.1)
    assert later.channels["f"] == pytest.approx(100.0 * later.duration_s, rel=0.05)
    rep = meter.report
    wall = rep.channel("wall")
    # its first sample lands ~0.15 s into the window: that part is not covered, and says so
    assert 0.5 < wall.coverage < 1.0
    assert wall.energy_j == pytest.approx(50.0 * wall.coverage * rep.duration_s, rel=0.1)
    assert any(w.startswith("wall covered only") for w in rep.warnings) == (wall.coverage < 0.95)
    assert rep.channel("f").samples >= 0.3 * rep.duration_s / 0.05
    # stop waited for one more plug sample (about one read), not for the 5 s timeout
    assert stop_s < 3.0
    assert not any("did not answer" in w for w in rep.warnings)


def test_blocking_backend_on_a_fake_clock_backs_off_alone():
    clock = FakeClock()
    plug = FakeBackend(
        name="plug",
        channels=[FakeChannel("wall", 50.0, kind="counter")],
        clock=clock,
        blocking=True,
    ).fail(at_s=1.0, until_s=20.0, kind="raise")
    fast = FakeBackend(name="fast", channels=[FakeChannel("f", 100.0, kind="power")], clock=clock)
    with EnergyMeter(backends=[fast, plug], clock=clock) as meter:
        clock.advance(30.0)
    assert fast.reads == 1 + 300 + 1
    assert plug.reads < 1 + 10 + 12 + 100  # backed off during the 19 s outage
    assert meter.report.channel("wall").energy_j == pytest.approx(1500.0, rel=1e-9)
    assert meter.report.channel("f").energy_j == pytest.approx(3000.0, rel=1e-12)


def test_a_stalled_fast_backend_does_not_hold_up_edges_snapshots_or_stop():
    """A 'fast' backend (e.g. NVML when a GPU falls off the bus) that stalls in read()."""
    stalling = FakeBackend(
        name="gpu", channels=[FakeChannel("g", 200.0, kind="counter")], clock=SystemClock()
    ).hang(at_s=1.2, for_s=HANG_S)  # after the counter's read at 1 s (counters: 1 per second)
    meter = EnergyMeter(backends=[stalling], interval_s=0.02, slow_read_timeout_s=0.3)
    try:
        meter.start()
        time.sleep(1.4)  # the sampler thread is now stuck inside read()
        t0 = time.monotonic()
        a = meter.mark()
        b = meter.mark()
        snap = meter.snapshot()
        edges_s = time.monotonic() - t0
        t0 = time.monotonic()
        report = meter.stop()
        stop_s = time.monotonic() - t0
    finally:
        stalling.release()
    assert edges_s < 2.0  # the first edge waits at most edge_timeout_s for the stalled read
    assert meter.energy_between(a, b).duration_s >= 0
    assert snap.channels["g"] is not None  # energy up to the stall is kept
    assert stop_s < 3.0
    assert report.channel("g").energy_j > 0
    assert report.channel("g").coverage < 0.9
    assert any("did not answer" in w for w in report.warnings)


def test_edges_skip_a_stalled_fast_backend_at_once():
    """After the first edge has waited for a stalled read, later edges do not wait at all."""
    stalling = FakeBackend(
        name="gpu", channels=[FakeChannel("g", 200.0, kind="counter")], clock=SystemClock()
    ).hang(at_s=0.1, for_s=HANG_S)
    meter = EnergyMeter(backends=[stalling], interval_s=0.02, slow_read_timeout_s=0.2)
    try:
        meter.start()
        time.sleep(0.6)  # stalled for longer than the edge wait
        t0 = time.monotonic()
        for _ in range(50):
            meter.mark()
        fifty_edges_s = time.monotonic() - t0
        meter.stop()
    finally:
        stalling.release()
    # 50 edges that each waited edge_timeout_s (0.25 s) would take 12.5 s
    assert fifty_edges_s < 1.0
