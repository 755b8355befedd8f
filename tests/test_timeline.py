"""Timeline maths: unwrapping, resets, rejection, trapezoid integration, gaps, coverage, thinning.

Most tests run the real meter and sampler on a FakeClock over FakeBackend channels, whose counters
report the exact integral of their trace, so expected energies are exact numbers.
"""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bertwatt.meter import EnergyMeter
from bertwatt.testing import FakeBackend, FakeChannel, FakeClock, PowerTrace
from bertwatt.timeline import ChannelTimeline

S = 1_000_000_000  # ns per second


def counter(name: str = "c", power_w: object = 100.0, **kw: object) -> FakeChannel:
    return FakeChannel(name, power_w, kind="counter", **kw)  # type: ignore[arg-type]


def power(name: str = "p", power_w: object = 100.0, **kw: object) -> FakeChannel:
    return FakeChannel(name, power_w, kind="power", **kw)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- counters
def test_counter_constant_power_is_exact(run):
    report, _ = run([counter(power_w=100.0)], 10.0)
    ch = report.channel("c")
    assert report.energy_j == pytest.approx(1000.0, rel=1e-12)
    assert ch.energy_j == pytest.approx(1000.0, rel=1e-12)
    assert ch.coverage == 1.0
    assert ch.wraps == 0 and ch.rejected == 0 and ch.failed_reads == 0
    assert ch.mean_power_w == pytest.approx(100.0)


def test_counter_single_wrap(run):
    # 995 J on a 1000 J counter: it wraps once after 0.05 s at 100 W.
    report, _ = run([counter(wrap_j=1000.0, start_j=995.0)], 2.0)
    ch = report.channel("c")
    assert ch.wraps == 1
    assert ch.energy_j == pytest.approx(200.0, rel=1e-12)


def test_counter_repeated_wraps_are_all_unwrapped(run):
    # A 10 J range at up to 200 W can wrap every 50 ms: the sampler must read it faster than
    # every 0.1 s, or two wraps between reads would be indistinguishable from one.
    report, _backend = run([counter(wrap_j=10.0, max_power_w=200.0)], 10.0)
    ch = report.channel("c")
    assert ch.energy_j == pytest.approx(1000.0, rel=1e-9)
    assert ch.wraps == 100
    assert ch.samples >= 10.0 / 0.025
    assert ch.coverage == 1.0
    assert not report.warnings


def test_counter_with_wrap_and_phases_is_exact(run, clock):
    ch = counter(power_w=[(0, 40.0), (3, 250.0), (6, 10.0)], wrap_j=7.5, max_power_w=300.0)
    backend = FakeBackend(channels=[ch], clock=clock)
    with EnergyMeter(backends=[backend], clock=clock) as m:
        clock.advance(1.0)
        with m.phase("a"):
            clock.advance(4.0)  # 1..5
        with m.phase("b"):
            clock.advance(3.5)  # 5..8.5
    rep = m.report
    assert rep.phases["a"].energy_j == pytest.approx(40 * 2 + 250 * 2, rel=1e-9)
    assert rep.phases["b"].energy_j == pytest.approx(250 * 1 + 10 * 2.5, rel=1e-9)
    assert rep.energy_j == pytest.approx(40 * 3 + 250 * 3 + 10 * 2.5, rel=1e-9)


def test_counter_reset_is_a_gap_not_a_negative_or_summed_interval(run):
    report, _ = run([counter()], 10.0, faults=lambda b: b.reset("c", at_s=5.0))
    ch = report.channel("c")
    # the read interval in which the counter went back to 0 is not counted (counters are read
    # about once a second between window edges)
    assert ch.energy_j == pytest.approx(900.0, rel=1e-12)
    assert ch.coverage == pytest.approx(0.9, rel=1e-9)
    assert any("counter reset" in e for e in ch.events)
    assert ch.wraps == 0


def test_counter_reset_on_a_wrapping_counter_is_not_taken_for_a_wrap(run):
    # A reset to 0 on a counter that can wrap looks like a wrap; max_power_w tells them apart:
    # a wrap here would mean ~10 kJ in 0.1 s.
    ch = counter(wrap_j=10_000.0, max_power_w=500.0, start_j=2_000.0)
    report, _ = run([ch], 10.0, faults=lambda b: b.reset("c", at_s=5.0))
    rep = report.channel("c")
    assert rep.wraps == 0
    # only the reset interval and the readings that had to be re-based are lost
    assert 900.0 <= rep.energy_j <= 990.0 + 1e-6
    assert rep.energy_j <= 1000.0


def test_counter_glitch_is_rejected_recorded_and_not_summed(run):
    report, _ = run(
        [counter(max_power_w=500.0)],
        10.0,
        faults=lambda b: b.glitch("c", at_s=5.0, value=1e9),
    )
    ch = report.channel("c")
    assert ch.rejected == 1
    assert ch.energy_j == pytest.approx(1000.0, rel=1e-12)
    assert any("rejected" in e for e in ch.events)
    assert any("c: 1 implausible reading" in w for w in report.warnings)


def test_transient_backwards_reading_does_not_double_count(run):
    # One bogus 0 J reading (a driver hiccup) between two good ones: the counter has not been
    # reset, since the next reading carries on from the old base. Re-basing on the bogus value
    # would add the whole counter (all energy since boot) a second time.
    report, _ = run([counter()], 10.0, faults=lambda b: b.glitch("c", at_s=5.0, value=0.0))
    ch = report.channel("c")
    assert 980.0 - 1e-6 <= ch.energy_j <= 1000.0 + 1e-6
    assert ch.events


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_counter_reading_is_not_summed(run, bad):
    report, _ = run([counter()], 10.0, faults=lambda b: b.glitch("c", at_s=5.0, value=bad))
    ch = report.channel("c")
    assert ch.energy_j == pytest.approx(1000.0, rel=1e-12)
    assert ch.rejected + ch.failed_reads == 1
    assert ch.events


@pytest.mark.parametrize("bad", [math.nan, math.inf, -5.0, 1e7])
def test_impossible_power_reading_is_rejected_and_not_summed(run, bad):
    report, _ = run(
        [power(max_power_w=1000.0)], 10.0, faults=lambda b: b.glitch("p", at_s=5.0, value=bad)
    )
    ch = report.channel("p")
    assert ch.energy_j == pytest.approx(1000.0, rel=1e-12)
    assert ch.rejected + ch.failed_reads == 1
    assert ch.peak_power_w == pytest.approx(100.0)
    assert ch.events


def test_counter_stuck_on_a_new_base_is_rebased_after_repeated_rejections():
    ch = counter(max_power_w=200.0).channel
    tl = ChannelTimeline(ch, capacity=64)
    t = 0
    for k in range(11):  # 100 W for 1 s
        tl.add(t + k * S // 10, 10.0 * k)
    assert tl.energy_j == pytest.approx(100.0)
    # the counter jumps by 1 MJ (an impossible 10 MW) and carries on from there
    base = 1e6
    for k in range(11, 31):
        tl.add(k * S // 10, base + 10.0 * k)
    assert tl.rejected == 3
    assert tl.event_counts["reset"] == 1
    # re-based at the third rejected reading (k = 13); the 17 intervals after it count again
    assert tl.energy_j == pytest.approx(100.0 + 17 * 10.0)
    assert tl.gaps


def test_counter_read_too_rarely_to_rule_out_two_wraps_is_not_counted():
    ch = counter(wrap_j=10.0, max_power_w=2.0).channel  # can wrap at most once per 5 s
    tl = ChannelTimeline(ch)
    assert tl.wrap_safe_s == pytest.approx(5.0)
    tl.add(0, 1.0)
    tl.add(4 * S, 9.0)  # fine: 4 s
    tl.add(10 * S, 3.0)  # 6 s later: could hide a second wrap
    assert tl.energy_j == pytest.approx(8.0)
    assert tl.event_counts["wrap-risk"] == 1
    assert tl.covered_between(0, 10 * S) == 4 * S


# ----------------------------------------------------------------------------- power
def test_trapezoid_is_exact_on_a_linear_power_trace(clock):
    ch = power(power_w=lambda t: 20.0 + 3.0 * t)
    backend = FakeBackend(channels=[ch], clock=clock)
    with EnergyMeter(backends=[backend], clock=clock, interval_s=0.1) as m:
        clock.advance(2.05)
        with m.phase("mid"):
            clock.advance(3.0)  # 2.05 .. 5.05, edges off the tick grid
        clock.advance(4.95)
    exact = lambda a, b: 20.0 * (b - a) + 1.5 * (b * b - a * a)  # noqa: E731
    assert m.report.energy_j == pytest.approx(exact(0, 10), rel=1e-9)
    assert m.report.phases["mid"].energy_j == pytest.approx(exact(2.05, 5.05), rel=1e-9)
    assert m.report.channel("p").peak_power_w == pytest.approx(50.0)


def test_power_gap_longer_than_the_gap_limit_is_not_bridged(run):
    report, _ = run([power()], 10.0, faults=lambda b: b.fail("p", at_s=3.0, until_s=6.0))
    ch = report.channel("p")
    # last good sample at 2.9 s, next at 6.0 s: 3.1 s are not integrated
    assert ch.energy_j == pytest.approx(100.0 * (10 - 3.1), rel=1e-9)
    assert ch.coverage == pytest.approx(0.69, rel=1e-9)
    assert ch.failed_reads == 30
    assert any("interval not integrated" in e for e in ch.events)
    assert any("scripted read failure" in e for e in ch.events)
    assert any("p covered only 69%" in w for w in report.warnings)


def test_short_outage_is_bridged_by_the_trapezoid(run):
    report, _ = run([power()], 10.0, faults=lambda b: b.fail("p", at_s=3.0, until_s=3.5))
    ch = report.channel("p")
    assert ch.energy_j == pytest.approx(1000.0, rel=1e-12)
    assert ch.coverage == 1.0
    assert ch.failed_reads == 5


def test_phase_coverage_counts_only_its_own_gap(clock):
    backend = FakeBackend(channels=[power()], clock=clock).fail("p", at_s=3.0, until_s=6.0)
    with EnergyMeter(backends=[backend], clock=clock) as m:
        clock.advance(1.0)
        with m.phase("clean"):
            clock.advance(1.0)  # 1..2
        with m.phase("gappy"):
            clock.advance(6.0)  # 2..8, gap 2.9..6.0 inside
        clock.advance(2.0)
    ph = m.report.phases
    assert ph["clean"].coverage == 1.0
    assert ph["clean"].energy_j == pytest.approx(100.0, rel=1e-12)
    assert ph["gappy"].coverage == pytest.approx((6.0 - 3.1) / 6.0, rel=1e-9)
    assert ph["gappy"].energy_j == pytest.approx(100.0 * (6.0 - 3.1), rel=1e-9)


def test_first_power_reading_rejected_then_recovers():
    ch = power(max_power_w=500.0).channel
    tl = ChannelTimeline(ch)
    tl.add(0, 9999.0)
    assert tl.first_t is None and tl.rejected == 1
    tl.add(S, 100.0)
    tl.add(2 * S, 100.0)
    assert tl.first_t == S
    assert tl.energy_j == pytest.approx(100.0)


# ----------------------------------------------------------------------------- thinning
def test_thinning_bounds_memory_and_keeps_totals_and_edges():
    ch = power().channel
    tl = ChannelTimeline(ch, capacity=64)
    expected = {}
    e = prev = 0.0
    for k in range(5000):
        w = 100.0 + (k % 7) * 10.0
        if k:
            e += 0.5 * (prev + w) * 0.1
        prev = w
        t = k * S // 10
        if k % 500 == 250:
            tl.mark(k, t + 1)  # an edge just after this sample: resolved by the next one
            expected[k] = None
        tl.add(t, w)
    t_arr, e_arr, _ = tl.points()
    assert len(t_arr) <= 64
    assert t_arr[-1] == 4999 * S // 10
    assert tl.energy_j == pytest.approx(e, rel=1e-12)
    assert tl.energy_at(t_arr[-1]) == tl.energy_j
    # every edge was resolved exactly when its sample arrived, so thinning cannot move it
    assert set(tl.marks) == set(expected)
    for k in expected:
        assert tl.marks[k] >= 0
    assert list(e_arr) == sorted(e_arr)


def test_thinned_meter_gives_the_same_numbers_as_unthinned():
    def measure(points: int) -> dict[str, float]:
        clock = FakeClock()
        chans = [
            counter("c", [(0, 50.0), (7, 150.0), (33, 80.0)]),
            power("p", lambda t: 100.0 + 50.0 * math.sin(t)),
        ]
        backend = FakeBackend(channels=chans, clock=clock)
        with EnergyMeter(backends=[backend], clock=clock, timeline_points=points) as m:
            for i in range(8):
                with m.phase(f"p{i % 3}"):
                    clock.advance(7.3)
                clock.advance(1.1)
        r = m.report
        out = {"total": r.energy_j or 0.0}
        out.update({n: p.energy_j or 0.0 for n, p in r.phases.items()})
        out.update({c.name: c.energy_j for c in r.channels})
        return out

    thin, full = measure(64), measure(100_000)
    assert thin.keys() == full.keys()
    for k in full:
        assert thin[k] == pytest.approx(full[k], rel=1e-12), k


def test_energy_at_before_first_sample_is_zero_and_marks_before_it_resolve_to_zero():
    tl = ChannelTimeline(counter().channel)
    tl.mark(0, 5)
    assert tl.energy_at(0) == 0.0
    tl.add(10, 3.0)
    tl.add(10 + S, 103.0)
    assert tl.marks[0] == 0.0
    assert tl.energy_at(10 + S // 2) == pytest.approx(50.0)


def test_finish_resolves_pending_edges_at_the_last_value():
    tl = ChannelTimeline(counter().channel)
    tl.add(0, 0.0)
    tl.add(S, 100.0)
    tl.mark(7, 5 * S)
    assert 7 not in tl.marks
    tl.finish()
    assert tl.marks[7] == pytest.approx(100.0)


# ----------------------------------------------------------------------------- hypothesis
step_traces = st.lists(
    st.tuples(st.floats(0.05, 4.0), st.integers(0, 400)), min_size=1, max_size=8
).map(
    lambda items: [
        (round(sum(d for d, _ in items[:i]), 6), float(w)) for i, (_, w) in enumerate(items)
    ]
)

_FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FAST
@given(
    trace=step_traces,
    interval_s=st.floats(0.02, 0.5),
    edges=st.lists(st.floats(0.001, 3.0), min_size=1, max_size=6),
    start_j=st.floats(0, 1e4),
    wrap=st.booleans(),
)
def test_counter_path_is_exact_on_random_piecewise_traces(trace, interval_s, edges, start_j, wrap):
    clock = FakeClock()
    peak = max(w for _, w in trace) + 1.0
    kw: dict[str, float] = {}
    if wrap:
        kw = {"wrap_j": max(1.0, peak * 0.06), "max_power_w": peak}
        start_j = math.fmod(start_j, kw["wrap_j"])
    ch = counter(power_w=trace, start_j=start_j, **kw)
    ref = PowerTrace(trace)
    backend = FakeBackend(channels=[ch], clock=clock)
    t0 = clock.monotonic_ns()
    m = EnergyMeter(backends=[backend], clock=clock, interval_s=interval_s).start()
    marks = [(m.mark(), clock.monotonic_ns())]
    for d in edges:
        clock.advance(d)
        marks.append((m.mark(), clock.monotonic_ns()))
    report = m.stop()
    for (a, ta), (b, tb) in itertools.pairwise(marks):
        got = m.energy_between(a, b).energy_j
        want = ref.energy_j((tb - t0) / 1e9) - ref.energy_j((ta - t0) / 1e9)
        assert got == pytest.approx(want, rel=1e-9, abs=1e-9)
    total = ref.energy_j((marks[-1][1] - t0) / 1e9)
    assert report.energy_j == pytest.approx(total, rel=1e-9, abs=1e-9)
    assert report.channel("c").rejected == 0


@_FAST
@given(trace=step_traces, interval_s=st.floats(0.02, 0.5), duration_s=st.floats(0.5, 20.0))
def test_power_path_error_is_within_the_trapezoid_bound_on_step_traces(
    trace, interval_s, duration_s
):
    # For a trace of bounded variation, each trapezoid of width h errs by at most h/2 times the
    # variation inside it, so the total error is at most (h/2) * total variation.
    clock = FakeClock()
    backend = FakeBackend(channels=[power(power_w=trace)], clock=clock)
    with EnergyMeter(backends=[backend], clock=clock, interval_s=interval_s) as m:
        clock.advance(duration_s)
    exact = PowerTrace(trace).energy_j(m.report.duration_s)
    variation = sum(abs(b[1] - a[1]) for a, b in itertools.pairwise(trace))
    bound = 0.5 * interval_s * variation + 1e-9 * max(exact, 1.0)
    assert abs(m.report.energy_j - exact) <= bound
    assert m.report.channel("p").coverage == 1.0


@_FAST
@given(
    base_w=st.floats(10.0, 300.0),
    amp_frac=st.floats(0.0, 0.99),
    omega=st.floats(0.1, 5.0),
    interval_s=st.floats(0.01, 0.3),
    duration_s=st.floats(1.0, 15.0),
)
def test_power_path_error_is_within_the_trapezoid_bound_on_smooth_traces(
    base_w, amp_frac, omega, interval_s, duration_s
):
    # Composite trapezoid rule: |error| <= T * h^2 / 12 * max|P''| with P'' = amp * omega^2.
    amp_w = amp_frac * base_w  # power stays positive
    clock = FakeClock()
    fn = lambda t: base_w + amp_w * math.sin(omega * t)  # noqa: E731
    backend = FakeBackend(channels=[power(power_w=fn)], clock=clock)
    with EnergyMeter(backends=[backend], clock=clock, interval_s=interval_s) as m:
        clock.advance(duration_s)
    t = m.report.duration_s
    exact = base_w * t + amp_w * (1.0 - math.cos(omega * t)) / omega
    bound = t * interval_s**2 / 12.0 * amp_w * omega**2 + 1e-9 * exact
    assert abs(m.report.energy_j - exact) <= bound
