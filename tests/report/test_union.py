"""Energy over the union of covered times (bertwatt.report.union), tested alone."""

from __future__ import annotations

import pytest

from bertwatt.report.union import Curve, Piece, merge_intervals, union_energy


def flat(start: float, seconds: float, power_w: float, key: int, coverage: float = 1.0) -> Piece:
    """A piece of constant power over [start, start + seconds] with a timeline every second."""
    pts = [(float(t), power_w * t, power_w) for t in range(int(seconds) + 1)]
    curve = Curve(start, seconds, power_w * seconds, pts)
    return Piece(key, [(start, start + seconds)], power_w * seconds, coverage, curve)


def test_curve_interpolates_and_clamps():
    c = Curve(100.0, 10.0, 50.0, [(0.0, 0.0), (5.0, 10.0), (10.0, 50.0)])
    assert c.at(90.0) == 0.0
    assert c.at(102.5) == pytest.approx(5.0)
    assert c.at(107.5) == pytest.approx(30.0)
    assert c.at(200.0) == 50.0


def test_curve_without_timeline_is_linear_and_ends_at_the_exact_total():
    c = Curve(0.0, 4.0, 8.0)
    assert c.at(1.0) == pytest.approx(2.0) and c.at(4.0) == 8.0


def test_curve_is_monotone_and_bounded_by_the_total():
    c = Curve(0.0, 3.0, 5.0, [(1.0, 4.0), (2.0, 3.0), (2.5, 9.0)])
    values = [c.at(t / 10) for t in range(31)]
    assert values == sorted(values) and max(values) == 5.0


def test_curve_points_between():
    c = Curve(10.0, 4.0, 4.0, [(1.0, 1.0), (2.0, 2.0), (3.0, 3.0)])
    assert c.points_between(11.0, 13.5) == ([12.0, 13.0], [2.0, 3.0])


def test_merge_intervals():
    assert merge_intervals([(5, 6), (0, 2), (1, 3), (3, 4)]) == [(0, 3), (3, 4), (5, 6)]
    assert merge_intervals([]) == []
    assert merge_intervals([(0, 10), (2, 3)]) == [(0, 10)]


def test_sequential_pieces_add_exactly():
    u = union_energy([flat(0, 10, 100.0, 0), flat(10, 5, 40.0, 1)])
    assert u.energy_j == 1200.0 and u.overlap_s == 0.0
    assert u.used_j == {0: 1000.0, 1: 200.0} and u.covered_s == 15.0


def test_a_gap_is_not_covered():
    u = union_energy([flat(0, 10, 100.0, 0), flat(20, 10, 100.0, 1)])
    assert u.energy_j == 2000.0 and u.covered_s == 20.0


def test_overlap_counts_once():
    u = union_energy([flat(0, 10, 100.0, 0), flat(5, 10, 100.0, 1)])
    assert u.energy_j == pytest.approx(1500.0) and u.overlap_s == 5.0
    assert sum(u.used_j.values()) == pytest.approx(1500.0)


def test_identical_pieces_count_once():
    u = union_energy([flat(0, 10, 100.0, 0), flat(0, 10, 100.0, 1)])
    assert u.energy_j == pytest.approx(1000.0)
    assert u.used_j == {0: pytest.approx(1000.0)}  # the first of equals, all of its time


def test_best_coverage_wins_where_pieces_overlap():
    u = union_energy([flat(0, 10, 100.0, 0, coverage=0.5), flat(0, 10, 120.0, 1)])
    assert u.energy_j == pytest.approx(1200.0) and set(u.used_j) == {1}
    assert u.measured_s == pytest.approx(10.0)


def test_a_contained_piece_adds_nothing():
    u = union_energy([flat(0, 20, 100.0, 0), flat(5, 5, 100.0, 1)])
    assert u.energy_j == pytest.approx(2000.0) and set(u.used_j) == {0}


def test_order_does_not_change_the_total():
    ps = [flat(0, 10, 100.0, 0), flat(5, 10, 100.0, 1), flat(30, 2, 7.0, 2)]
    a = union_energy(ps).energy_j
    b = union_energy(list(reversed(ps))).energy_j
    assert a == pytest.approx(b) == pytest.approx(1514.0)


def test_multi_interval_pieces_phase_like():
    c = Curve(0.0, 10.0, 1000.0, [(float(t), 100.0 * t) for t in range(11)])
    a = Piece(0, [(0.0, 2.0), (4.0, 6.0)], 400.0, 1.0, c)
    b = Piece(1, [(8.0, 9.0)], 100.0, 1.0, c)
    assert union_energy([a, b]).energy_j == 500.0  # disjoint: exact figures kept
