"""PowerTrace: constant, step and callable traces and their exact integrals."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bertwatt.errors import ConfigError
from bertwatt.testing import PowerTrace


def test_constant():
    tr = PowerTrace(42)
    assert tr.power_w(0.0) == tr.power_w(1e6) == 42.0
    assert tr.energy_j(10.0) == 420.0
    assert tr.energy_j(0.0) == tr.energy_j(-5.0) == 0.0


def test_steps_hold_until_the_next_and_the_first_value_holds_before_it():
    tr = PowerTrace([(2.0, 10.0), (5.0, 30.0)])
    assert [tr.power_w(t) for t in (0.0, 1.9, 2.0, 4.99, 5.0, 100.0)] == [10, 10, 10, 10, 30, 30]
    assert tr.energy_j(1.0) == pytest.approx(10.0)
    assert tr.energy_j(3.0) == pytest.approx(20.0 + 10.0)
    assert tr.energy_j(6.0) == pytest.approx(20.0 + 30.0 + 30.0)


def test_callable_is_integrated_incrementally_and_can_go_back():
    tr = PowerTrace(lambda t: 2.0 * t)
    assert tr.energy_j(3.0) == pytest.approx(9.0, rel=1e-9)
    assert tr.energy_j(4.0) == pytest.approx(16.0, rel=1e-9)
    assert tr.energy_j(1.0) == pytest.approx(1.0, rel=1e-9)  # earlier than the last query
    assert tr.power_w(2.5) == 5.0
    curved = PowerTrace(lambda t: 3.0 * t * t)
    assert curved.energy_j(2.0) == pytest.approx(8.0, rel=1e-6)  # midpoint rule, 1 ms steps


def test_copy_constructor():
    src = PowerTrace([(0, 5.0), (1, 7.0)])
    cp = PowerTrace(src)
    assert cp.energy_j(3.0) == src.energy_j(3.0) == pytest.approx(19.0)


steps = st.lists(st.tuples(st.floats(0.001, 100.0), st.floats(0.0, 1e4)), min_size=1, max_size=10)


@settings(max_examples=100, deadline=None)
@given(steps, st.floats(0.0, 50.0), st.lists(st.floats(0.0, 1500.0), min_size=2, max_size=6))
def test_step_integral_matches_a_segment_sum(items, first_t, queries):
    times = [first_t]
    for d, _ in items[1:]:
        times.append(times[-1] + d)
    trace = list(zip(times, (w for _, w in items), strict=True))
    tr = PowerTrace(trace)

    def brute(t: float) -> float:
        # first value from 0 to the first time, then each value until the next time
        bounds = [0.0, *times[1:], math.inf]
        watts = [w for _, w in trace]
        return sum(
            w * max(0.0, min(t, b) - a) for a, b, w in zip(bounds, bounds[1:], watts, strict=False)
        )

    prev = 0.0
    for t in sorted(queries):
        e = tr.energy_j(t)
        assert e == pytest.approx(brute(t), rel=1e-9, abs=1e-6)
        assert e >= prev - 1e-9 * max(1.0, prev)
        prev = e


_bad = st.one_of(
    st.floats(max_value=-1e-12),
    st.sampled_from([math.nan, math.inf, True, False, None, "100", b"1", {}, set()]),
    st.just([]),
    st.lists(
        st.sampled_from([(0, math.nan), (0, -1.0), (math.inf, 1.0), ("a", 1), (1,)]),
        min_size=1,
        max_size=3,
    ),
    st.just([(-1.0, 5.0)]),
    st.just([(1.0, 5.0), (1.0, 6.0)]),
    st.just([(2.0, 5.0), (1.0, 6.0)]),
)


@settings(max_examples=100, deadline=None)
@given(_bad)
def test_bad_traces_are_config_errors(value):
    with pytest.raises(ConfigError) as info:
        PowerTrace(value)
    assert isinstance(info.value, ValueError)
