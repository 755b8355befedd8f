"""FinetuneSession and StepLog: phases partition the run, step records tile training, memory stays
bounded. Driven directly on a fake clock (no Trainer), so hypothesis can try many schedules."""

from __future__ import annotations

import math

import pytest
from hf_helpers import POWER_W, fake_sensor
from hypothesis import given, settings
from hypothesis import strategies as st

from bertwatt.integrations.plan import RunPlan
from bertwatt.integrations.session import FinetuneSession
from bertwatt.integrations.steps import StepLog
from bertwatt.integrations.tokens import WorkCounts
from bertwatt.meter import EnergyMeter
from bertwatt.testing import FakeBackend, FakeChannel, FakeClock

#: One event of a schedule: ("step", seconds, tokens) | ("eval", seconds) | ("save", seconds)
#: | ("gap", seconds) (time inside training but between steps).
event = st.one_of(
    st.tuples(st.just("step"), st.floats(0.01, 3.0), st.integers(0, 500)),
    st.tuples(st.just("eval"), st.floats(0.0, 2.0)),
    st.tuples(st.just("save"), st.floats(0.0, 1.0)),
    st.tuples(st.just("epoch"), st.just(0.0)),
)


def run_schedule(events, capacity, power=POWER_W, kind="counter"):
    clock = FakeClock()
    backend = FakeBackend(
        channels=[FakeChannel("cpu:0", power, kind=kind, domain="cpu")], clock=clock
    )
    meter = EnergyMeter(backends=[backend], clock=clock)
    session = FinetuneSession(meter, max_step_records=capacity)
    meter.start()
    clock.advance(0.7)  # setup, outside phases
    session.begin_train()
    epoch = 0
    step_seconds = 0.0
    for ev in events:
        if ev[0] == "step":
            clock.advance(ev[1])
            step_seconds += ev[1]
            tokens = ev[2]
            session.step(examples=1, tokens_padded=tokens, tokens_nonpadding=tokens // 2)
        elif ev[0] == "epoch":
            epoch += 1
            session.epoch_begin(f"epoch-{epoch}")
        else:
            mode = "eval" if ev[0] == "eval" else "checkpoint"
            session.set_mode(mode)
            clock.advance(ev[1])
            session.set_mode("train")
    session.end_train()
    clock.advance(0.3)  # teardown
    report = session.build_report(meter.stop())
    return report, session, step_seconds


@settings(max_examples=40, deadline=None)
@given(events=st.lists(event, min_size=1, max_size=60), capacity=st.sampled_from([2, 4, 6, 64]))
def test_step_records_tile_training_whatever_the_schedule(events, capacity):
    report, session, step_seconds = run_schedule(events, capacity)
    steps = sum(1 for e in events if e[0] == "step")
    assert report.steps == steps
    train = report.phases["train"].energy_j
    assert train == pytest.approx(step_seconds * POWER_W, abs=1e-6)
    parts = train + sum(
        report.phases[p].energy_j for p in ("eval", "checkpoint") if p in report.phases
    )
    assert parts + report.outside_phases_j == pytest.approx(report.energy_j)
    assert report.outside_phases_j == pytest.approx(1.0 * POWER_W)
    se = report.step_energy
    if steps == 0:
        assert se is None
        return
    assert se.records <= capacity
    assert sum(se.steps) == steps
    assert se.total_energy_j == pytest.approx(train, abs=1e-6)
    assert (
        sum(se.tokens_padded) == report.tokens_padded == sum(e[2] for e in events if e[0] == "step")
    )
    assert sum(se.duration_s) == pytest.approx(step_seconds, abs=1e-6)
    assert se.steps_per_record == session.snapshot().step_log.stride
    assert all(b > a for a, b in zip(se.first_step, se.first_step[1:], strict=False))
    epoch_sum = sum(m.energy_j for k, m in report.phase_metrics.items() if k.startswith("epoch-"))
    assert epoch_sum <= train + 1e-6


def test_power_channels_also_telescope():
    events = [("step", 0.05, 10)] * 7 + [("eval", 0.5)] + [("step", 0.37, 10)] * 5
    report, _, seconds = run_schedule(events, 64, kind="power")
    se = report.step_energy
    assert se.total_energy_j == pytest.approx(report.phases["train"].energy_j)
    assert se.total_energy_j == pytest.approx(seconds * POWER_W)


def test_merging_bounds_records_and_meter_marks():
    clock = FakeClock()
    backend = fake_sensor(clock)
    # a long sampling interval: nearly every read of the backend is a mark's edge read
    meter = EnergyMeter(backends=[backend], clock=clock, interval_s=3600.0)
    session = FinetuneSession(meter, max_step_records=16)
    meter.start()
    session.begin_train()
    for _ in range(1000):
        clock.advance(0.1)
        session.step_end()
    session.end_train()
    report = session.build_report(meter.stop())
    se = report.step_energy
    assert se.records <= 16 and sum(se.steps) == 1000
    assert session.snapshot().step_log.stride == 128
    assert se.total_energy_j == pytest.approx(100.0 * POWER_W)
    # about capacity + capacity/2 * log2(steps / capacity) marks, not one per step
    assert backend.reads < 16 + 8 * math.log2(1000 / 16) + 20
    assert any("merged" in n for n in se.notes)


def test_prediction_is_exact_for_uniform_steps():
    clock = FakeClock()
    meter = EnergyMeter(backends=[fake_sensor(clock)], clock=clock)
    session = FinetuneSession(meter, total_steps=40, predict_after_steps=15)
    meter.start()
    session.begin_train(RunPlan(expected_evals=4))
    for step in range(1, 41):
        clock.advance(0.25)
        session.step_end()
        if step % 10 == 0:
            session.set_mode("eval")
            clock.advance(1.0)
            session.set_mode("train")
    session.end_train()
    report = session.build_report(meter.stop())
    p = report.prediction
    assert p.at_step == 15
    assert p.actual_energy_j == pytest.approx(40 * 0.25 * POWER_W + 4 * POWER_W)
    assert p.predicted_energy_j == pytest.approx(p.actual_energy_j)
    assert p.error == pytest.approx(0.0, abs=1e-12)


def test_prediction_says_what_it_leaves_out():
    clock = FakeClock()
    meter = EnergyMeter(backends=[fake_sensor(clock)], clock=clock)
    session = FinetuneSession(meter, total_steps=20, predict_after_steps=4)
    meter.start()
    session.begin_train(RunPlan(expected_evals=2))
    for _ in range(20):
        clock.advance(0.5)
        session.step_end()
    session.end_train()
    p = session.build_report(meter.stop()).prediction
    assert any("none measured yet" in n for n in p.notes)


def test_phase_names_are_checked():
    from bertwatt.errors import ConfigError

    clock = FakeClock()
    session = FinetuneSession(EnergyMeter(backends=[fake_sensor(clock)], clock=clock))
    with pytest.raises(ConfigError), session.phase("epoch-3"):
        pass
    with pytest.raises(ConfigError, match="max_step_records"):
        FinetuneSession(EnergyMeter(), max_step_records=True)


def test_steplog_alone_keeps_sums_when_merging():
    clock = FakeClock()
    meter = EnergyMeter(backends=[fake_sensor(clock)], clock=clock)
    meter.start()
    log = StepLog(capacity=4)
    start = meter.mark()
    first, block = 1, WorkCounts()
    for i in range(1, 12):
        clock.advance(0.1 * i)
        block.add(WorkCounts(2, 1, 10 * i, 5 * i))
        if i - first + 1 >= log.stride:  # a block of `stride` steps closes at a mark
            end = meter.mark()
            log.close(first, i - first + 1, block, start, end, meter)
            start, first, block = end, i + 1, WorkCounts()
    log.resolve(meter)  # energies are read after the fact, from the marks
    meter.stop()
    steps, energy, counts, records = log.totals()
    assert records == len(log) <= 4
    closed = steps
    assert energy == pytest.approx(sum(0.1 * i for i in range(1, closed + 1)) * POWER_W)
    assert counts.tokens_padded == sum(10 * i for i in range(1, closed + 1))
    assert closed == first - 1 and log.stride == 4


def test_steps_after_the_meter_stopped_are_not_counted_and_nothing_raises():
    clock = FakeClock()
    meter = EnergyMeter(backends=[fake_sensor(clock)], clock=clock)
    session = FinetuneSession(meter)
    meter.start()
    session.begin_train()
    for _ in range(3):
        clock.advance(0.5)
        session.step(examples=2, tokens_padded=8)
    base = meter.stop(warn=False)  # stopped under a running training loop
    for _ in range(2):
        clock.advance(0.5)
        session.step(examples=2, tokens_padded=8)  # outside the window: not counted
    session.end_train()
    report = session.build_report(base)
    assert report.steps == 3 and report.examples == 6
    assert sum(report.step_energy.steps) == 3
    assert report.step_energy.total_energy_j == pytest.approx(1.5 * POWER_W)
