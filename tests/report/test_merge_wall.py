"""report.wall across a merge: recomputed from the merged channels per node, never dropped."""

from __future__ import annotations

import pytest

from bertwatt.meter import EnergyMeter
from bertwatt.report import EnergyReport, merge_reports
from bertwatt.report.models import new_run_id
from bertwatt.testing import FakeBackend, FakeChannel, FakeClock


def wall_run(
    clock: FakeClock, gpu_w: float, wall_w: float | None, seconds: float = 10.0
) -> EnergyReport:
    chans = [FakeChannel("gpu:0", gpu_w, kind="counter", scope="gpu-board")]
    if wall_w is not None:
        chans.append(FakeChannel("wall:plug", wall_w, kind="power", scope="system", domain="wall"))
    backend = FakeBackend(channels=chans, clock=clock)
    with EnergyMeter(backends=[backend], clock=clock) as meter, meter.phase("train"):
        clock.advance(seconds)
    return meter.report


def on_node(report: EnergyReport, node: str) -> EnergyReport:
    r = report.model_copy(deep=True)
    r.run_id = new_run_id()
    r.node_id = node
    r.host.hostname = node
    r.host.node_id = node
    r.hosts = [r.host]
    for c in r.channels:
        c.host = node
        c.node_id = node
    return r


def test_one_report_merged_keeps_its_comparison():
    rep = wall_run(FakeClock(), 100.0, 250.0)
    assert rep.wall is not None
    merged = merge_reports([rep])
    assert merged.wall is not None
    assert merged.wall.run.wall_j == pytest.approx(rep.wall.run.wall_j)
    assert merged.wall.run.component_j == pytest.approx(1000.0)
    assert merged.wall.phases["train"].ratio == pytest.approx(2.5)
    assert merged.energy_j == pytest.approx(1000.0)  # the wall is never added


def test_sequential_runs_add_their_wall_and_component_energy():
    clock = FakeClock()
    a = wall_run(clock, 100.0, 250.0)
    clock.advance(5.0)
    b = wall_run(clock, 100.0, 300.0)
    merged = merge_reports([a, b])
    assert merged.energy_j == pytest.approx(2000.0)
    assert merged.wall is not None
    assert merged.wall.run.wall_j == pytest.approx(2500.0 + 3000.0)
    assert merged.wall.run.unseen_j == pytest.approx(5500.0 - 2000.0)
    assert merged.wall.phases["train"].wall_j == pytest.approx(5500.0)
    assert "never added" in merged.total_basis


def test_nodes_are_compared_with_their_own_wall_meter_only():
    clock = FakeClock()
    a = on_node(wall_run(clock, 100.0, 250.0), "node-a")
    b = on_node(wall_run(clock, 200.0, None), "node-b")
    merged = merge_reports([a, b])
    assert merged.energy_j == pytest.approx(1000.0 + 2000.0)
    w = merged.wall
    assert w is not None
    # node-b has no wall meter: its GPU is not compared with node-a's plug
    assert w.run.component_j == pytest.approx(1000.0)
    assert w.run.wall_j == pytest.approx(2500.0)
    assert w.run.component_channels == ["node-a/gpu:0"]
    assert any("left out (no wall meter): node-b" in n for n in w.run.notes)
    assert w.phases["train"].component_j == pytest.approx(1000.0)


def test_a_node_with_only_a_wall_meter_counts_it_in_the_merged_total():
    clock = FakeClock()
    backend = FakeBackend(
        channels=[FakeChannel("wall:plug", 300.0, kind="power", scope="system", domain="wall")],
        clock=clock,
    )
    with EnergyMeter(backends=[backend], clock=clock) as meter:
        clock.advance(10.0)
    a = on_node(meter.report, "node-a")
    b = on_node(wall_run(clock, 100.0, None), "node-b")
    merged = merge_reports([a, b])
    assert merged.energy_j == pytest.approx(3000.0 + 1000.0)
    assert "node-a: wall meter only" in merged.total_basis


def test_merging_reports_without_a_wall_meter_gives_none():
    clock = FakeClock()
    merged = merge_reports([wall_run(clock, 100.0, None), wall_run(clock, 50.0, None)])
    assert merged.wall is None
