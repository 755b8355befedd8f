"""FakeChannel, FakeBackend and FakeClock: the public test doubles behave as documented."""

from __future__ import annotations

import math
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bertwatt.backends.base import Backend, Unavailable
from bertwatt.clock import Clock, SystemClock
from bertwatt.errors import ConfigError, SensorReadError
from bertwatt.meter import EnergyMeter
from bertwatt.testing import FakeBackend, FakeChannel, FakeClock


# ----------------------------------------------------------------------------- FakeChannel
def test_counter_channel_reports_the_exact_integral():
    ch = FakeChannel("gpu:0", [(0, 100.0), (2, 50.0)], kind="counter", start_j=7.0)
    assert ch.value(0.0) == 7.0
    assert ch.value(3.0) == pytest.approx(7.0 + 200.0 + 50.0)
    assert ch.channel.kind == "counter"


def test_counter_channel_wraps_like_rapl():
    ch = FakeChannel("cpu:package-0", 10.0, kind="counter", wrap_j=25.0, start_j=20.0)
    assert ch.value(0.4) == pytest.approx(24.0)
    assert ch.value(0.6) == pytest.approx(1.0)
    assert ch.value(3.0) == pytest.approx(0.0, abs=1e-9)


def test_power_channel_reports_the_trace():
    ch = FakeChannel("plug", [(0, 3.0), (1, 9.0)])
    assert (ch.value(0.5), ch.value(1.5)) == (3.0, 9.0)
    assert ch.channel.kind == "power"


def test_channel_metadata():
    ch = FakeChannel(
        "cpu:core-0",
        kind="counter",
        scope="cpu-core",
        counted=False,
        parent="cpu:package-0",
        max_power_w=150.0,
        estimated=True,
        info={"path": "/x"},
    ).channel
    assert ch.domain == "cpu"
    assert (ch.counted, ch.parent, ch.max_power_w) == (False, "cpu:package-0", 150.0)
    assert ch.provenance.kind == "estimated" and ch.provenance.scope == "cpu-core"
    assert dict(ch.info) == {"path": "/x"}
    assert FakeChannel("plug", domain="system").channel.domain == "system"
    assert FakeChannel("plug").channel.provenance.kind == "measured"


# ----------------------------------------------------------------------------- FakeBackend
def test_backend_implements_the_protocol(clock):
    extra = Unavailable(what="fake:x", reason="absent")
    b = FakeBackend(
        name="f",
        channels=[FakeChannel("a", 1.0), FakeChannel("b", 2.0, kind="counter")],
        clock=clock,
        unavailable=[extra],
    )
    assert isinstance(b, Backend)
    av = b.probe()
    assert av.ok
    assert [c.name for c in av.channels] == ["a", "b"]
    assert av.unavailable == (extra,)
    clock.advance(2.0)
    assert b.read() == ([1.0, 4.0], None)
    b.close()
    assert (b.probes, b.reads, b.closed) == (1, 1, 1)


def test_time_is_counted_from_the_backend_creation(clock):
    clock.advance(100.0)
    b = FakeBackend(channels=[FakeChannel("c", 5.0, kind="counter")], clock=clock)
    clock.advance(2.0)
    assert b.elapsed_s() == pytest.approx(2.0)
    assert b.read()[0] == [pytest.approx(10.0)]


def test_scheduled_nan_failure_on_one_channel(clock):
    b = FakeBackend(channels=[FakeChannel("a"), FakeChannel("b")], clock=clock)
    b.fail("b", at_s=1.0, until_s=2.0)
    assert b.read() == ([100.0, 100.0], None)
    clock.advance(1.0)
    values, errors = b.read()
    assert values[0] == 100.0 and math.isnan(values[1])
    assert errors == {1: "scripted read failure of b"}
    clock.advance(1.0)
    assert b.read() == ([100.0, 100.0], None)


def test_scheduled_raise(clock):
    b = FakeBackend(name="plug", clock=clock).fail(at_s=0.5, kind="raise")
    b.read()
    clock.advance(0.5)
    with pytest.raises(SensorReadError, match="plug: scripted failure"):
        b.read()


def test_glitch_fires_once(clock):
    b = FakeBackend(channels=[FakeChannel("a", 10.0)], clock=clock).glitch("a", at_s=1.0, value=-3)
    assert b.read()[0] == [10.0]
    clock.advance(1.5)
    assert b.read()[0] == [-3]
    assert b.read()[0] == [10.0]


def test_reset_sends_a_counter_back_to_zero(clock):
    b = FakeBackend(channels=[FakeChannel("c", 10.0, kind="counter", start_j=50.0)], clock=clock)
    b.reset("c", at_s=2.0)
    clock.advance(1.0)
    assert b.read()[0] == [pytest.approx(60.0)]
    clock.advance(1.0)
    assert b.read()[0] == [pytest.approx(0.0)]
    clock.advance(1.0)
    assert b.read()[0] == [pytest.approx(10.0)]


def test_hang_blocks_one_read_until_released():
    b = FakeBackend(clock=SystemClock()).hang(at_s=0.0, for_s=30.0)
    threading.Timer(0.1, b.release).start()
    t0 = time.monotonic()
    b.read()
    assert 0.05 < time.monotonic() - t0 < 10.0
    t0 = time.monotonic()
    b.read()  # only the first read hangs
    assert time.monotonic() - t0 < 1.0


def test_read_delay_is_real_time_only(clock):
    slow = FakeBackend(clock=SystemClock(), read_delay_s=0.05)
    t0 = time.monotonic()
    slow.read()
    assert time.monotonic() - t0 >= 0.045
    fake = FakeBackend(clock=clock, read_delay_s=100.0)
    t0 = time.monotonic()
    fake.read()
    assert time.monotonic() - t0 < 1.0


def test_fault_scripting_errors(clock):
    b = FakeBackend(channels=[FakeChannel("a")], clock=clock)
    with pytest.raises(ConfigError, match="no channel 'zz'"):
        b.fail("zz")
    with pytest.raises(ConfigError, match="no channel"):
        b.glitch("zz", at_s=0, value=1)
    with pytest.raises(ConfigError, match="no channel"):
        b.reset("zz", at_s=0)
    with pytest.raises(ConfigError, match="fail kind"):
        b.fail(kind="hang")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- FakeClock
class _Ticker:
    def __init__(self, clock: FakeClock, period_ns: int) -> None:
        self.clock = clock
        self.period_ns = period_ns
        self.due = clock.monotonic_ns() + period_ns
        self.seen: list[int] = []

    def next_due_ns(self) -> int | None:
        return self.due

    def run_due(self, now_ns: int) -> None:
        assert self.clock.monotonic_ns() == now_ns
        self.seen.append(now_ns)
        self.due = now_ns + self.period_ns


def test_fake_clock_basics():
    c = FakeClock(start_s=5.0, wall_start_s=1000.0)
    assert isinstance(c, Clock) and c.manual
    assert c.monotonic_ns() == 5_000_000_000
    assert c.time_ns() == 1000_000_000_000
    c.advance(1.5)
    assert c.now_s == 6.5
    assert c.time_ns() == 1001_500_000_000
    c.advance(0)
    assert c.now_s == 6.5
    assert "6.5" in repr(c)


def test_fake_clock_runs_listeners_at_their_exact_times():
    c = FakeClock(start_s=0.0)
    fast, slow = _Ticker(c, 300_000_000), _Ticker(c, 1_000_000_000)
    c.attach(fast)
    c.attach(slow)
    c.attach(fast)  # attaching twice runs it once
    c.advance(2.0)
    assert fast.seen == [300_000_000 * k for k in range(1, 7)]
    assert slow.seen == [1_000_000_000, 2_000_000_000]
    assert c.monotonic_ns() == 2_000_000_000
    c.detach(slow)
    c.advance(1.0)
    assert len(slow.seen) == 2 and len(fast.seen) == 10


def test_fake_clock_wait_advances_unless_the_event_is_set():
    c = FakeClock(start_s=0.0)
    ev = threading.Event()
    assert c.wait(ev, 2.5) is False
    assert c.now_s == 2.5
    ev.set()
    assert c.wait(ev, 10.0) is True
    assert c.now_s == 2.5


# ----------------------------------------------------------------------------- bad inputs
# None means "no limit" / "does not wrap"; an infinite wrap would turn a counter reset into +inf J
_bad_positive = st.one_of(
    st.sampled_from([math.nan, -math.inf, True, "1", [1.0]]),
    st.floats(max_value=0.0, allow_nan=False),
)


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(
        st.tuples(st.just("name"), st.sampled_from(["", None, 3, b"gpu"])),
        st.tuples(st.just("power_w"), st.sampled_from([-1.0, math.nan, "x", None, [], True])),
        st.tuples(st.just("kind"), st.sampled_from(["energy", None, "Power", 1])),
        st.tuples(st.just("wrap_j"), st.one_of(_bad_positive, st.just(math.inf))),
        st.tuples(st.just("max_power_w"), _bad_positive),
        st.tuples(
            st.just("start_j"),
            st.one_of(
                st.floats(max_value=-1e-9),
                st.sampled_from([math.nan, math.inf, True, "0", None]),
            ),
        ),
    )
)
def test_bad_fake_channel_arguments_are_config_errors(item):
    field, value = item
    kwargs = {"name": "gpu:0", "power_w": 100.0, "kind": "counter", field: value}
    name = kwargs.pop("name")
    with pytest.raises(ConfigError) as info:
        FakeChannel(name, **kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)


@settings(max_examples=60, deadline=None)
@given(
    st.one_of(
        st.tuples(
            st.just("channels"),
            st.sampled_from(
                [[], (), ["gpu:0"], [None], "gpu:0", [FakeChannel("a"), FakeChannel("a")]]
            ),
        ),
        st.tuples(
            st.just("read_delay_s"),
            st.one_of(
                st.floats(max_value=-1e-9),
                st.sampled_from([math.nan, math.inf, "0.1", None, True]),
            ),
        ),
        st.tuples(st.just("clock"), st.sampled_from([None, "clock", 0, object()])),
    )
)
def test_bad_fake_backend_arguments_are_config_errors(item):
    field, value = item
    with pytest.raises(ConfigError) as info:
        FakeBackend(**{field: value})
    assert isinstance(info.value, ValueError)


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(["start_s", "wall_start_s"]),
    st.one_of(
        st.floats(max_value=-1e-9),
        st.sampled_from([math.nan, math.inf, -math.inf, "0", None, True]),
    ),
)
def test_bad_fake_clock_arguments_are_config_errors(field, value):
    with pytest.raises(ConfigError) as info:
        FakeClock(**{field: value})
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("seconds", [-1.0, math.nan, math.inf, "1", None])
def test_bad_advance_is_config_error(seconds):
    with pytest.raises(ConfigError):
        FakeClock().advance(seconds)  # type: ignore[arg-type]


@pytest.mark.parametrize("call", ["probe", "close"])
def test_hang_can_block_probe_or_close_once(call):
    b = FakeBackend(clock=SystemClock()).hang(at_s=0.0, for_s=30.0, call=call)
    threading.Timer(0.1, b.release).start()
    t0 = time.monotonic()
    getattr(b, call)()
    assert 0.05 < time.monotonic() - t0 < 10.0
    t0 = time.monotonic()
    getattr(b, call)()  # only the first one hangs
    b.read()
    assert time.monotonic() - t0 < 1.0


def test_hang_call_is_checked():
    with pytest.raises(ConfigError, match="hang call must be"):
        FakeBackend().hang(at_s=0.0, for_s=1.0, call="write")  # type: ignore[arg-type]


def test_a_meter_is_bounded_by_a_fake_whose_probe_and_close_hang():
    probe_hangs = FakeBackend(name="p", clock=SystemClock()).hang(
        at_s=0.0, for_s=30.0, call="probe"
    )
    close_hangs = FakeBackend(name="c", channels=[FakeChannel("c:0")], clock=SystemClock()).hang(
        at_s=0.0, for_s=30.0, call="close"
    )
    try:
        meter = EnergyMeter(
            backends=[probe_hangs, close_hangs], probe_timeout_s=0.2, slow_read_timeout_s=0.2
        )
        t0 = time.monotonic()
        with meter:
            time.sleep(0.05)
        assert time.monotonic() - t0 < 0.2 + 0.2 + 2.0
    finally:
        probe_hangs.release()
        close_hangs.release()
    rep = meter.report
    assert [u.what for u in rep.unavailable] == ["p"]
    assert any("'c': close() did not return" in w for w in rep.warnings)
