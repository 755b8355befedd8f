"""The software-vs-wall comparison (bertwatt.report.wall): pure inputs, exact figures."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bertwatt.report.wall import (
    MIN_COUNTER_STEPS,
    WallChannel,
    WallReport,
    compare_wall,
    component_energy,
    wall_energy,
)


def comp(name, j, counted=True, scope="gpu-board"):
    return WallChannel(name=name, scope=scope, counted=counted, kind="power", energy_j=j)


def wall_counter(j, res=3.6, cov=None, name="wall:plug"):
    return WallChannel(
        name=name,
        scope="system",
        counted=True,
        kind="counter",
        energy_j=j,
        resolution_j=res,
        coverage=cov,
    )


def wall_power(j, cov=None, parent="wall:plug"):
    return WallChannel(
        name=f"{parent}:power",
        scope="system",
        counted=False,
        kind="power",
        parent=parent,
        energy_j=j,
        coverage=cov,
    )


def test_run_and_phase_figures():
    run = [
        comp("gpu:0", 600.0),
        comp("cpu:package-0", 150.0, scope="cpu-package"),
        comp("cpu:core-0", 90.0, counted=False, scope="cpu-core"),
        wall_counter(1000.0),
        wall_power(990.0),
    ]
    phase = [
        comp("gpu:0", 60.0),
        comp("cpu:package-0", 15.0, scope="cpu-package"),
        wall_counter(100.0),
        wall_power(99.0),
    ]
    rep = compare_wall(run, {"train": phase})
    assert isinstance(rep, WallReport)
    r = rep.run
    assert r.component_j == 750.0 and r.wall_j == 1000.0
    assert r.ratio == pytest.approx(1000.0 / 750.0) and r.unseen_j == 250.0
    assert r.wall_basis == "energy counter wall:plug"
    assert r.wall_channels == ["wall:plug"]
    assert r.component_channels == ["cpu:package-0", "gpu:0"]  # core is inside the package
    p = rep.phases["train"]
    assert (p.component_j, p.wall_j, p.unseen_j) == (75.0, 100.0, 25.0)


def test_no_wall_meter_gives_none():
    assert compare_wall([comp("gpu:0", 1.0)], {"x": [comp("gpu:0", 1.0)]}) is None


def test_coarse_counter_falls_back_to_power():
    # Tasmota default: 1 Wh steps; 2 steps is far below MIN_COUNTER_STEPS
    j, basis, used = wall_energy([wall_counter(7200.0, res=3600.0), wall_power(6100.0)])
    assert j == 6100.0 and used == ["wall:plug:power"]
    assert "too coarse" in basis and "2 step(s) of 3600 J" in basis
    # a counter that did not move at all is never a zero when power saw energy
    j, basis, _ = wall_energy([wall_counter(0.0, res=3600.0), wall_power(400.0)])
    assert j == 400.0 and "0 step(s)" in basis


def test_fine_counter_is_kept():
    j, basis, _ = wall_energy([wall_counter(MIN_COUNTER_STEPS * 3.6, res=3.6), wall_power(70.0)])
    assert j == pytest.approx(72.0) and basis == "energy counter wall:plug"


def test_counter_with_lost_coverage_falls_back():
    j, basis, _ = wall_energy([wall_counter(500.0, cov=0.6), wall_power(900.0, cov=1.0)])
    assert j == 900.0 and "counter reset" in basis


def test_counter_without_reading_falls_back_and_nothing_gives_none():
    assert wall_energy([wall_counter(None), wall_power(50.0)])[0] == 50.0
    j, basis, used = wall_energy([wall_counter(None), wall_power(None)])
    assert j is None and used == [] and "gave no reading" in basis


def test_several_meters_add_up():
    ch = [
        wall_counter(100.0, name="wall:psu1"),
        wall_counter(120.0, name="wall:psu2"),
        comp("gpu:0", 150.0),
    ]
    r = compare_wall(ch).run
    assert r.wall_j == 220.0 and r.wall_channels == ["wall:psu1", "wall:psu2"]


def test_wall_below_components_is_noted_not_hidden():
    r = compare_wall([comp("cpu:0", 500.0, scope="cpu-package"), wall_counter(400.0)]).run
    assert r.unseen_j == -100.0
    assert any("less than the component" in n for n in r.notes)


def test_wall_alone():
    r = compare_wall([wall_counter(400.0)]).run
    assert r.component_j is None and r.ratio is None and r.unseen_j is None
    assert any("nothing to compare" in n for n in r.notes)
    assert component_energy([wall_counter(1.0)]) == (None, [])


@given(st.floats(0, 1e7), st.floats(0, 1e7), st.floats(1e-3, 1e4), st.floats(0, 1e7))
def test_properties(component, counter, res, power):
    rep = compare_wall(
        [comp("gpu:0", component), wall_counter(counter, res=res), wall_power(power)]
    )
    r = rep.run
    assert r.wall_j in (counter, power)
    assert r.unseen_j == pytest.approx(r.wall_j - component)
    if component > 0:
        assert r.ratio == pytest.approx(r.wall_j / component)
    if counter < MIN_COUNTER_STEPS * res:
        assert r.wall_j == power
    assert all(math.isfinite(x) for x in (r.wall_j, r.unseen_j))


def test_counter_refreshed_too_rarely_for_the_window_gives_way_to_power():
    c = WallChannel(
        name="wall:plug",
        scope="system",
        counted=True,
        kind="counter",
        energy_j=1000.0,
        resolution_j=0.01,
        update_period_s=1.0,
    )
    fb = wall_power(990.0)
    j, basis, _ = wall_energy([c, fb], duration_s=99.0)
    assert j == 990.0 and "refreshes every 1 s, too rarely for a 99 s window" in basis
    assert wall_energy([c, fb], duration_s=100.0)[0] == 1000.0
    assert wall_energy([c, fb])[0] == 1000.0  # no duration: the counter
    rep = compare_wall(
        [c, fb], {"short": [c, fb]}, run_duration_s=600.0, phase_durations_s={"short": 5.0}
    )
    assert rep.run.wall_j == 1000.0 and rep.phases["short"].wall_j == 990.0
