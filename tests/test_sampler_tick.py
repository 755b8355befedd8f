"""The sampler's tick path: the fast answer check, the raw-lock wake-up, rejected non-finite values.

Speed is measured in benchmarks/bench_background_cpu.py; these tests pin behaviour only.
"""

from __future__ import annotations

import math
import threading
import time

import pytest

from bertwatt import EnergyMeter
from bertwatt.backends._guard import BadReading, check_reading
from bertwatt.sampler import BackendGroup
from bertwatt.testing import FakeBackend, FakeChannel
from bertwatt.timeline import ChannelTimeline


def test_a_list_of_floats_passes_the_fast_path_unchanged() -> None:
    values = [1.0, math.nan, 3.5]
    out, errors = check_reading((values, None), 3)
    assert out is values and errors == {}


@pytest.mark.parametrize(
    ("answer", "want"),
    [
        (([1, 2.5], None), ([1.0, 2.5], {})),  # an int is converted (slow path)
        ([[1.0, 2.0], None], ([1.0, 2.0], {})),  # a list pair, not a tuple
        (((1.0, 2.0), None), ([1.0, 2.0], {})),  # a tuple of values
        (([1.0, 2.0], {1: "gone"}), ([1.0, 2.0], {1: "gone"})),
    ],
)
def test_other_answers_still_take_the_checked_path(answer: object, want: object) -> None:
    assert check_reading(answer, 2) == want


def test_the_fast_path_still_refuses_a_wrong_length_or_a_non_number() -> None:
    with pytest.raises(BadReading, match="1 value"):
        check_reading(([1.0], None), 2)
    values, errors = check_reading(([1.0, True], None), 2)
    assert math.isnan(values[1]) and "not a number" in errors[1]


@pytest.mark.parametrize("kind", ["counter", "power"])
@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_non_finite_readings_are_rejected_never_summed(kind: str, bad: float) -> None:
    tl = ChannelTimeline(FakeChannel("c", kind=kind).channel, gap_ns=5_000_000_000)  # type: ignore[arg-type]
    tl.add(0, 10.0)
    tl.add(1_000_000_000, bad)
    tl.add(2_000_000_000, 30.0 if kind == "counter" else 10.0)
    assert tl.rejected == 1 and tl.in_trouble is False
    assert tl.energy_j == pytest.approx(20.0)
    assert "non-finite" in " ".join(tl.events)


def test_poke_wakes_a_sleeping_group_and_is_safe_to_repeat() -> None:
    backend = FakeBackend(channels=[FakeChannel("p", 5.0)])
    group = BackendGroup(backend, [], 60_000_000_000)
    woke = threading.Event()

    def sleeper() -> None:
        if group.wake.acquire(True, 30.0):
            woke.set()

    th = threading.Thread(target=sleeper, daemon=True)
    th.start()
    group.poke()
    group.poke()  # a second poke before the thread ran: no error, one pending wake-up
    th.join(10.0)
    assert woke.is_set()
    # the pending state is consumed: the next wait sleeps its whole timeout
    assert group.wake.acquire(True, 0.01) is False


def test_a_window_edge_and_stop_wake_a_thread_sleeping_a_long_interval() -> None:
    backend = FakeBackend(channels=[FakeChannel("p", 5.0)])
    meter = EnergyMeter(backends=[backend], interval_s=30.0, edge_timeout_s=5.0).start()
    t0 = time.monotonic()
    while backend.reads < 1 and time.monotonic() - t0 < 10.0:  # the start read
        time.sleep(0.01)
    before = backend.reads
    meter.mark()  # an edge: the group's thread is woken from its 30 s sleep to read now
    assert backend.reads == before + 1
    t1 = time.monotonic()
    report = meter.stop()
    assert time.monotonic() - t1 < 10.0  # not the 30 s interval
    assert report.channel("p").samples >= 2
