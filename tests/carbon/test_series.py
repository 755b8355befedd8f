"""Series: validation, CSV parsing, and exact integration against an energy timeline."""

from __future__ import annotations

import itertools
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bertwatt.carbon import CarbonIntensity
from bertwatt.carbon.series import (
    merge_windows,
    normalize_points,
    parse_timestamp,
    read_series_csv,
    weighted_intensity,
)
from bertwatt.errors import CarbonDataError, ConfigError

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


# ---------------------------------------------------------------------- in-memory points
def test_points_accept_aware_naive_and_unix_timestamps() -> None:
    naive = T0.replace(tzinfo=None)
    paris = T0.astimezone(timezone(timedelta(hours=1)))
    pts = normalize_points(
        [(naive, 10), (paris + timedelta(hours=1), 20.5), (T0.timestamp() + 7200, 0)]
    )
    assert pts == (
        (T0.timestamp(), 10.0),
        (T0.timestamp() + 3600, 20.5),
        (T0.timestamp() + 7200, 0.0),
    )


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ([], "at least one"),
        ([(T0, 10), (T0, 20)], "not after the previous one"),
        ([(T0, 10), (T0 - timedelta(seconds=1), 20)], "strictly increase"),
        ([(T0, -1)], "finite number >= 0"),
        ([(T0, math.nan)], "finite number >= 0"),
        ([(T0, math.inf)], "finite number >= 0"),
        ([(T0, True)], "finite number >= 0"),
        ([(T0, "100")], "finite number >= 0"),
        ([("2025-01-01", 100)], "datetime or Unix seconds"),
        ([(math.nan, 100)], "datetime or Unix seconds"),
        ([(T0,)], "pair"),
        ("abc", "sequence"),
        (42, "sequence"),
    ],
)
def test_bad_points_are_config_errors(points: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        normalize_points(points)
    with pytest.raises(ConfigError):
        CarbonIntensity.series(points)  # type: ignore[arg-type]


def test_series_is_immutable_and_exposes_its_range() -> None:
    s = CarbonIntensity.series([(T0, 100.0), (T0 + timedelta(hours=1), 200.0)], zone="DE")
    assert s.start == T0 and s.end == T0 + timedelta(hours=1) and s.zone == "DE"
    with pytest.raises(AttributeError):
        s.points = ()  # type: ignore[misc]
    assert "2 values" in repr(s)


# ---------------------------------------------------------------------- CSV
def write(tmp_path: Path, text: str, name: str = "grid.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_naive_means_utc_and_offsets_are_honoured(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "timestamp,gco2e_per_kwh\n"
        "2025-03-01T12:00:00,100\n"  # naive: UTC
        "2025-03-01T14:00:00+01:00,200\n"  # 13:00 UTC
        "2025-03-01T14:00Z,300.5\n"
        "2025-03-01 15:00:00.5+00:00,0\n",
    )
    pts = read_series_csv(path)
    base = T0.timestamp()
    assert pts == ((base, 100.0), (base + 3600, 200.0), (base + 7200, 300.5), (base + 10800.5, 0.0))
    s = CarbonIntensity.from_csv(path)
    assert s.points == pts and str(path) in s.source


def test_csv_skips_blank_and_comment_lines_and_extra_columns(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "\ufeff# exported from my utility\n\nGco2e_Per_Kwh , timestamp,note\n"
        "100,2025-03-01T12:00:00Z,a\n\n# gap\n150,2025-03-01T13:00:00Z,b\n",
    )
    assert [v for _, v in read_series_csv(path)] == [100.0, 150.0]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "timestamp,gco2e_per_kwh\n2025-03-01T12:00Z,100\nyesterday,5\n",
            r"line 3: timestamp 'yesterday'",
        ),
        ("timestamp,gco2e_per_kwh\n2025-03-01T12:00Z,abc\n", r"line 2: gco2e_per_kwh 'abc'"),
        ("timestamp,gco2e_per_kwh\n2025-03-01T12:00Z,-3\n", r"line 2: gco2e_per_kwh '-3'"),
        ("timestamp,gco2e_per_kwh\n2025-03-01T12:00Z,inf\n", r"line 2: gco2e_per_kwh 'inf'"),
        (
            "timestamp,gco2e_per_kwh\n2025-03-01T12:00Z,1\n2025-03-01T11:00Z,2\n",
            r"line 3: timestamp '2025-03-01T11:00Z' is not after the one on line 2",
        ),
        (
            "timestamp,gco2e_per_kwh\n2025-03-01T13:00+01:00,1\n2025-03-01T12:00Z,2\n",
            r"line 3: .* is not after",
        ),
        ("timestamp,gco2e_per_kwh\n2025-03-01T12:00Z\n", r"line 2: 1 fields, the header has 2"),
        ("time,value\n2025-03-01T12:00Z,1\n", r"line 1: .*missing: timestamp, gco2e_per_kwh"),
        ("", "empty file"),
        ("timestamp,gco2e_per_kwh\n", "no data rows"),
    ],
)
def test_malformed_csv_names_the_line(tmp_path: Path, body: str, message: str) -> None:
    path = write(tmp_path, body)
    with pytest.raises(CarbonDataError, match=message) as info:
        CarbonIntensity.from_csv(path)
    assert str(path) in str(info.value)


def test_missing_csv(tmp_path: Path) -> None:
    with pytest.raises(CarbonDataError, match="cannot read intensity series"):
        read_series_csv(tmp_path / "nope.csv")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-03-01T12:00:00", T0),
        ("2025-03-01T12:00Z", T0),
        ("2025-03-01T12:00:00z", T0),
        ("2025-03-01T13:00:00+01:00", T0),
        ("2025-03-01T07:00:00-05:00", T0),
    ],
)
def test_parse_timestamp(text: str, expected: datetime) -> None:
    got = parse_timestamp(text)
    assert got == expected and got.tzinfo == timezone.utc


# ---------------------------------------------------------------------- integration
def test_merge_windows() -> None:
    assert merge_windows([(5, 6), (0, 2), (1, 3), (3, 4), (7, 7), (9, 8)]) == [(0, 4), (5, 6)]


def test_change_inside_a_constant_power_segment_is_split_exactly() -> None:
    # 100 W for an hour; 100 g/kWh for the first 1800 s, then 300 g/kWh.
    w = weighted_intensity([(0, 0), (3600, 360_000)], [(0, 3600)], [1800], [100, 300])
    assert w.e == pytest.approx(360_000, rel=1e-15)
    assert w.ew == pytest.approx(100 * 180_000 + 300 * 180_000, rel=1e-15)
    assert w.mean(0) == pytest.approx(200, rel=1e-15)


def test_uneven_power_and_several_changes() -> None:
    # 200 W for 1000 s, then 50 W for 2000 s. Intensity 100 until 500 s, 400 until 2000 s, 50 after.
    timeline = [(0, 0), (1000, 200_000), (3000, 300_000)]
    w = weighted_intensity(timeline, [(0, 3000)], [500, 2000], [100, 400, 50])
    expected = 100 * 100_000 + 400 * (100_000 + 50_000) + 50 * 50_000
    assert w.ew == pytest.approx(expected, rel=1e-15)
    assert w.e == pytest.approx(300_000, rel=1e-15)
    # Only the window 800-1200 s: 200 W x 200 s at 400, 50 W x 200 s at 400.
    w = weighted_intensity(timeline, [(800, 1200)], [500, 2000], [100, 400, 50])
    assert (w.e, w.ew) == pytest.approx((50_000, 400 * 50_000), rel=1e-15)


def test_before_first_and_after_last_change_point() -> None:
    w = weighted_intensity([(0, 0), (10, 10)], [(0, 10)], [-5, 5], [1, 2, 3])
    assert w.ew == pytest.approx(2 * 5 + 3 * 5)


def test_jump_and_decrease_in_the_timeline() -> None:
    # A 50 J step at t=4 (zero-length segment), then the cumulative energy dips (ignored).
    timeline = [(0, 0), (4, 40), (4, 90), (8, 80), (10, 100)]
    w = weighted_intensity(timeline, [(0, 10)], [4], [10, 20])
    assert w.e == pytest.approx(40 + 50 + 20)
    assert w.ew == pytest.approx(10 * 40 + 20 * 50 + 20 * 20)


def test_no_energy_falls_back_to_time_weighting() -> None:
    w = weighted_intensity([(0, 0), (10, 0)], [(0, 10)], [2], [10, 20])
    assert w.e == 0 and w.mean(-1) == pytest.approx((10 * 2 + 20 * 8) / 10)
    assert weighted_intensity([], [(0, 10)], [], [7]).mean(7) == 7


def _reference(timeline, windows, bounds, values) -> tuple[float, float]:
    """Integrate on the union of every breakpoint; independent of the sweep in the library."""
    cuts = sorted({t for t, _ in timeline} | set(bounds) | {x for w in windows for x in w})

    def energy_at(t: float) -> float:
        for (t0, e0), (t1, e1) in itertools.pairwise(timeline):
            if t0 <= t <= t1 and t1 > t0:
                return e0 + (e1 - e0) * (t - t0) / (t1 - t0)
        return timeline[0][1] if t < timeline[0][0] else timeline[-1][1]

    ew = e = 0.0
    for a, b in itertools.pairwise(cuts):
        mid = (a + b) / 2
        if not any(x <= mid < y for x, y in windows):
            continue
        if not timeline[0][0] <= mid <= timeline[-1][0]:
            continue
        de = energy_at(b) - energy_at(a)
        v = values[sum(1 for c in bounds if c <= mid)]
        ew += v * de
        e += de
    return ew, e


@st.composite
def cases(draw):  # type: ignore[no-untyped-def]
    n = draw(st.integers(1, 8))
    gaps = draw(st.lists(st.integers(1, 100), min_size=n, max_size=n))
    powers = draw(st.lists(st.integers(0, 500), min_size=n, max_size=n))
    t, e, timeline = 0, 0, [(0.0, 0.0)]
    for g, p in zip(gaps, powers, strict=True):
        t += g
        e += g * p
        timeline.append((float(t), float(e)))
    bounds = sorted(set(draw(st.lists(st.integers(-50, t + 50), max_size=6))))
    values = draw(
        st.lists(st.integers(0, 1000), min_size=len(bounds) + 1, max_size=len(bounds) + 1)
    )
    wins = draw(
        st.lists(st.tuples(st.integers(-10, t + 10), st.integers(0, 50)), min_size=1, max_size=4)
    )
    windows = [(float(a), float(a + w)) for a, w in wins]
    return timeline, merge_windows(windows), [float(b) for b in bounds], [float(v) for v in values]


@settings(max_examples=300, deadline=None)
@given(cases())
def test_sweep_matches_a_brute_force_reference(case) -> None:  # type: ignore[no-untyped-def]
    timeline, windows, bounds, values = case
    assume(windows)
    w = weighted_intensity(timeline, windows, bounds, values)
    ew, e = _reference(timeline, windows, bounds, values)
    assert w.e == pytest.approx(e, rel=1e-9, abs=1e-6)
    assert w.ew == pytest.approx(ew, rel=1e-9, abs=1e-6)
    if w.e > 0:
        assert min(values) - 1e-9 <= w.mean(0) <= max(values) + 1e-9


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 10**6), st.floats(0, 5000, allow_nan=False)),
        min_size=1,
        max_size=20,
    )
)
def test_series_points_roundtrip_or_raise(raw: list[tuple[int, float]]) -> None:
    ordered = sorted(set(raw), key=lambda p: p[0])
    unique = {t for t, _ in raw}
    try:
        pts = normalize_points(raw)
    except ConfigError:
        assert len(unique) != len(raw) or raw != ordered
    else:
        assert [p[0] for p in pts] == sorted(unique)
        assert all(v >= 0 for _, v in pts)
