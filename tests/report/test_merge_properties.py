"""Merge properties (hypothesis) on real reports: EnergyMeter + FakeBackend + FakeClock.

- order independence: any order of the same reports merges to the same figures;
- idempotence on duplicates: adding copies of reports changes nothing;
- union: meters on one node whose windows overlap (or not) merge to the energy of the combined
  trace over the union of their windows, computed exactly from the trace (and so does a phase
  open over each whole window).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bertwatt.meter import EnergyMeter
from bertwatt.report import EnergyReport, merge_reports
from bertwatt.testing import FakeBackend, FakeChannel, FakeClock

#: The meter reads counters every max(interval_s, 1 s) between edges: with a 1 s interval every
#: read, window edge and step below falls on whole seconds.
INTERVAL_S = 1.0

#: A step trace (t_s, W): steps on multiples of the read period, so that the stored timeline of
#: each report is exact at every step and interpolation between points is exact.
traces = st.lists(
    st.tuples(st.integers(0, 80), st.floats(1.0, 500.0, allow_nan=False)), min_size=1, max_size=6
).map(lambda steps: sorted({t * INTERVAL_S: w for t, w in [(0, steps[0][1]), *steps]}.items()))

#: Windows as (start tick, length in ticks) on the shared clock.
windows = st.lists(st.tuples(st.integers(0, 60), st.integers(1, 30)), min_size=1, max_size=4)


def exact_energy(trace: Sequence[tuple[float, float]], a: float, b: float) -> float:
    """Integral of the step trace over [a, b]."""
    total = 0.0
    for i, (t, w) in enumerate(trace):
        end = trace[i + 1][0] if i + 1 < len(trace) else float("inf")
        lo, hi = max(a, t), min(b, end)
        if hi > lo:
            total += w * (hi - lo)
    return total


def union(intervals: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def run_windows(
    trace: Sequence[tuple[float, float]], spans: Sequence[tuple[int, int]]
) -> list[EnergyReport]:
    """One meter per (start tick, ticks) span, all on one FakeClock and one trace."""
    clock = FakeClock()
    meters = []
    for _ in spans:
        channel = FakeChannel("gpu:0", list(trace), kind="counter")
        backend = FakeBackend(channels=[channel], clock=clock)
        meters.append(EnergyMeter(backends=[backend], clock=clock, interval_s=INTERVAL_S))
    events = []
    for i, (start, length) in enumerate(spans):
        events.append((start, 1, i))
        events.append((start + length, 0, i))
    now = 0
    for tick, kind, i in sorted(events):
        if tick > now:
            clock.advance((tick - now) * INTERVAL_S)
            now = tick
        if kind:
            meters[i].__enter__()
            meters[i].begin("work")
        else:
            meters[i].end("work")
            meters[i].__exit__(None, None, None)
    return [m.report for m in meters]


SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@SETTINGS
@given(trace=traces, spans=windows)
def test_union_of_windows_equals_the_energy_of_the_combined_trace(trace, spans):
    reports = run_windows(trace, spans)
    merged = merge_reports(reports)
    covered = union([(s * INTERVAL_S, (s + n) * INTERVAL_S) for s, n in spans])
    expected = sum(exact_energy(trace, a, b) for a, b in covered)
    assert merged.energy_j == pytest.approx(expected, rel=1e-9, abs=1e-6)
    first = min(s for s, _ in spans) * INTERVAL_S
    last = max(s + n for s, n in spans) * INTERVAL_S
    assert merged.duration_s == pytest.approx(last - first)
    assert merged.channel("gpu:0").coverage == pytest.approx(
        sum(b - a for a, b in covered) / (last - first)
    )
    # the phase open over each whole window merges by the same rule
    work = merged.phases["work"]
    assert work.energy_j == pytest.approx(expected, rel=1e-9, abs=1e-6)
    assert work.duration_s == pytest.approx(sum(b - a for a, b in covered))


@SETTINGS
@given(trace=traces, spans=windows, order=st.randoms(use_true_random=False))
def test_merge_does_not_depend_on_order(trace, spans, order):
    reports = run_windows(trace, spans)
    shuffled = list(reports)
    order.shuffle(shuffled)
    a, b = merge_reports(reports), merge_reports(shuffled)
    assert a.energy_j == pytest.approx(b.energy_j, rel=1e-9, abs=1e-9)
    assert a.run_id == b.run_id
    assert (a.started_at, a.ended_at) == (b.started_at, b.ended_at)
    assert a.channel("gpu:0").coverage == pytest.approx(b.channel("gpu:0").coverage)
    assert set(a.phases) == set(b.phases)


@SETTINGS
@given(trace=traces, spans=windows, copies=st.lists(st.integers(0, 3), min_size=1, max_size=4))
def test_merge_is_idempotent_on_duplicates(trace, spans, copies):
    reports = run_windows(trace, spans)
    once = merge_reports(reports)
    dup = reports + [reports[i % len(reports)] for i in copies]
    twice = merge_reports(dup)
    assert twice.energy_j == pytest.approx(once.energy_j, rel=1e-12)
    assert twice.run_id == once.run_id
    # merging the merged report with its own parts changes nothing either
    assert merge_reports([once, *reports]).energy_j == pytest.approx(once.energy_j, rel=1e-12)


@SETTINGS
@given(trace=traces, spans=windows, nodes=st.integers(2, 3))
def test_different_nodes_add(trace, spans, nodes):
    reports = run_windows(trace, spans)
    single = merge_reports(reports).energy_j
    moved = []
    for n in range(nodes):
        for r in reports:
            c = r.model_copy(deep=True)
            c.node_id = f"node-{n}"
            c.run_id = f"{n:02d}{r.run_id[2:]}"
            for ch in c.channels:
                ch.node_id = f"node-{n}"
            moved.append(c)
    assert merge_reports(moved).energy_j == pytest.approx(nodes * single, rel=1e-9)
