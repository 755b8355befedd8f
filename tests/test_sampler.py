"""The sampler: tick schedule, edge reads, wrap-safe intervals, back-off, missed ticks, threads."""

from __future__ import annotations

import itertools
import re
import threading
import time
from typing import Any

import pytest

from bertwatt.clock import SystemClock
from bertwatt.meter import EnergyMeter
from bertwatt.testing import FakeBackend, FakeChannel, FakeClock


def counter(name: str = "c", power_w: object = 100.0, **kw: object) -> FakeChannel:
    return FakeChannel(name, power_w, kind="counter", **kw)  # type: ignore[arg-type]


class RecordingBackend(FakeBackend):
    """A FakeBackend that logs (fake time, succeeded) for every read."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.log: list[tuple[float, bool]] = []

    def read(self) -> Any:
        t = self.elapsed_s()
        try:
            out = super().read()
        except Exception:
            self.log.append((t, False))
            raise
        self.log.append((t, True))
        return out


def sampler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("bertwatt-")]


def power(name: str = "p", power_w: object = 100.0, **kw: object) -> FakeChannel:
    return FakeChannel(name, power_w, kind="power", **kw)  # type: ignore[arg-type]


def test_fake_clock_runs_no_thread_and_ticks_exactly(clock):
    backend = RecordingBackend(channels=[power("c")], clock=clock)
    meter = EnergyMeter(backends=[backend], clock=clock, interval_s=0.1)
    before = sampler_threads()
    with meter:
        # (a thread of an earlier test may still be ending: only new ones count)
        assert [t for t in sampler_threads() if t not in before] == []
        clock.advance(10.0)
    times = [t for t, _ in backend.log]
    # one read at start, ticks at 0.1 .. 10.0 s, one edge read at stop
    assert backend.reads == 102
    assert times[:3] == [0.0, pytest.approx(0.1), pytest.approx(0.2)]
    assert times[-2:] == [pytest.approx(10.0), pytest.approx(10.0)]
    assert meter.report.channel("c").samples == 101


def test_cadence_follows_the_channel_kind(clock):
    """Power channels at interval_s; counters and estimates about once a second between edges."""
    backends = {
        "power": RecordingBackend(name="pw", channels=[power("p")], clock=clock),
        "counter": RecordingBackend(name="ct", channels=[counter("c")], clock=clock),
        "estimate": RecordingBackend(name="es", channels=[power("e", estimated=True)], clock=clock),
        "mixed": RecordingBackend(name="mx", channels=[counter("m1"), power("m2")], clock=clock),
    }
    with EnergyMeter(backends=list(backends.values()), clock=clock, interval_s=0.1) as meter:
        clock.advance(10.0)
    reads = {k: b.reads for k, b in backends.items()}
    # start edge + periodic ticks + stop edge
    assert reads == {"power": 102, "counter": 12, "estimate": 12, "mixed": 102}
    c = meter.report.channel("c")
    assert c.energy_j == pytest.approx(1000.0) and c.coverage == pytest.approx(1.0)
    assert meter.report.channel("e").coverage == pytest.approx(1.0)
    # a longer interval_s than a second applies to every kind
    slow = RecordingBackend(name="ct2", channels=[counter("c2")], clock=clock)
    with EnergyMeter(backends=[slow], clock=clock, interval_s=2.0):
        clock.advance(10.0)
    assert slow.reads == 7


def test_counters_are_read_at_every_window_edge(clock):
    backend = RecordingBackend(channels=[counter()], clock=clock)
    with EnergyMeter(backends=[backend], clock=clock) as meter:
        clock.advance(0.05)
        meter.mark()
        clock.advance(0.02)
        with meter.phase("x"):
            clock.advance(0.01)
    edges = [t for t, _ in backend.log if round(t * 1000) % 100]
    # mark, begin, end, and stop (at the same time as end)
    assert edges == pytest.approx([0.05, 0.07, 0.08, 0.08])
    assert meter.report.phases["x"].energy_j == pytest.approx(1.0, rel=1e-9)


def test_edge_reads_can_be_turned_off(clock):
    backend = RecordingBackend(channels=[counter()], clock=clock)
    with EnergyMeter(backends=[backend], clock=clock, edge_reads=False) as meter:
        clock.advance(0.95)
        with meter.phase("x"):
            clock.advance(1.0)  # 0.95 .. 1.95, resolved between ticks
        clock.advance(0.05)
    assert all(round(t * 1000) % 100 == 0 for t, _ in backend.log)
    # a constant-power counter interpolates exactly
    assert meter.report.phases["x"].energy_j == pytest.approx(100.0, rel=1e-9)


def test_wrap_prone_counter_is_read_faster_without_slowing_other_backends(clock):
    fast = FakeBackend(
        name="wrapping", channels=[counter("w", wrap_j=10.0, max_power_w=200.0)], clock=clock
    )
    normal = FakeBackend(name="normal", channels=[counter("n")], clock=clock)
    with EnergyMeter(backends=[fast, normal], clock=clock, interval_s=0.1):
        clock.advance(10.0)
    # 10 J at 200 W wraps at most every 50 ms: read twice as often, every 25 ms
    assert fast.reads == 1 + 400 + 1
    assert normal.reads == 1 + 10 + 1  # a counter that cannot wrap: about once a second


def test_back_off_after_repeated_read_exceptions(clock):
    backend = RecordingBackend(channels=[counter("c")], clock=clock).fail(
        at_s=1.0, until_s=20.0, kind="raise"
    )
    other = FakeBackend(name="other", channels=[power("o")], clock=clock)
    with EnergyMeter(backends=[backend, other], clock=clock, interval_s=0.1) as meter:
        clock.advance(30.0)
    failing = [t for t, ok in backend.log if not ok]
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(failing)]
    # doubling from the counter's 1 s interval, capped at 5 s
    assert gaps[:3] == [2.0, 4.0, 5.0]
    assert set(gaps[2:]) == {5.0}
    assert len(failing) < 8
    # back to the normal interval once reads succeed again
    first_ok = next(i for i, (t, ok) in enumerate(backend.log) if ok and t > 1.0)
    t_ok = backend.log[first_ok][0]
    assert 20.0 <= t_ok <= 25.0
    assert backend.log[first_ok + 1][0] - t_ok == pytest.approx(1.0)
    assert other.reads == 1 + 300 + 1
    # the counter kept counting through the outage
    assert meter.report.channel("c").energy_j == pytest.approx(3000.0, rel=1e-12)


def test_raising_backend_does_not_stop_the_others(clock):
    bad = FakeBackend(name="bad", channels=[power("b")], clock=clock).fail(kind="raise")
    good = FakeBackend(name="good", channels=[power("g")], clock=clock)
    with EnergyMeter(backends=[bad, good], clock=clock) as meter:
        clock.advance(10.0)
    assert meter.report.channel("g").samples == 101
    assert meter.report.channel("g").energy_j == pytest.approx(1000.0)
    assert meter.report.channel("b").samples == 0


def test_real_clock_sampler_thread_samples_and_stops():
    backend = FakeBackend(channels=[power("c")], clock=SystemClock())
    before = sampler_threads()  # an earlier test's thread may still be ending
    with EnergyMeter(backends=[backend], interval_s=0.02) as meter:
        # one thread per backend, named after it
        new = [t.name for t in sampler_threads() if t not in before]
        assert new == ["bertwatt-sampler-fake"]
        time.sleep(0.5)
    assert [t for t in sampler_threads() if t not in before] == []
    rep = meter.report
    assert 8 <= rep.channel("c").samples <= 40
    assert rep.energy_j == pytest.approx(100.0 * rep.duration_s, rel=0.02)
    assert rep.channel("c").coverage == pytest.approx(1.0, abs=0.02)


def test_missed_ticks_are_counted_and_reported():
    # every read takes 30 ms against a 10 ms interval: most ticks cannot happen on time
    backend = FakeBackend(channels=[power("c")], clock=SystemClock(), read_delay_s=0.03)
    with EnergyMeter(backends=[backend], interval_s=0.01) as meter:
        time.sleep(0.4)
    (warning,) = [w for w in meter.report.warnings if "missed" in w]
    missed = int(re.search(r"missed (\d+) tick", warning).group(1))  # type: ignore[union-attr]
    assert missed >= 5
    # still sampled, and the counter still integrates every joule
    rep = meter.report
    assert rep.channel("c").samples >= 3
    assert rep.energy_j == pytest.approx(100.0 * rep.duration_s, rel=0.15)


def test_fake_clock_advance_runs_ticks_in_order_across_backends():
    clock = FakeClock()
    a = RecordingBackend(name="a", channels=[power("a")], clock=clock)
    b = RecordingBackend(name="b", channels=[power("b")], clock=clock)
    with EnergyMeter(backends=[a, b], clock=clock, interval_s=0.25):
        for _ in range(8):
            clock.advance(0.125)
    assert [t for t, _ in a.log] == [t for t, _ in b.log]
    assert [round(t, 6) for t, _ in a.log] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
