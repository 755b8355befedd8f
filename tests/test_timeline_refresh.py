"""Counters that refresh slower than they are read (wall meters: once a second, read every 0.1 s).

Between two refreshes the counter holds its value, then a whole refresh's energy lands between
two reads that may be 1 ms apart. Issue #10: such a step must be neither rejected by the default
plausibility bound nor shown as a power spike (no 950 W peak for a 95 W load).
"""

from __future__ import annotations

import math

import pytest

from bertwatt.backends.base import Channel, Provenance
from bertwatt.config import DEFAULT_MAX_POWER_W, MeterConfig
from bertwatt.timeline import ChannelTimeline, timeline_for

S = 1_000_000_000


def wall_counter(update_period_s: float | None = 1.0, **kw: object) -> Channel:
    return Channel(
        name="wall:plug",
        domain="wall",
        kind="counter",
        provenance=Provenance(
            kind="measured",
            source="test meter: energy counter",
            scope="system",
            update_period_s=update_period_s,
        ),
        **kw,  # type: ignore[arg-type]
    )


def held_counter_reads(
    tl: ChannelTimeline, watts: float, seconds: int, read_s: float = 0.1, phase_s: float = 0.05
) -> None:
    """Feed reads every ``read_s`` of a counter that refreshes once a second, ``phase_s`` after
    each whole second (the device's clock is not the meter's)."""
    n = round(seconds / read_s)
    for k in range(n + 1):
        t = k * read_s
        refreshes = math.floor(t - phase_s) + 1 if t >= phase_s else 0
        tl.add(round(t * S), watts * refreshes)


def test_a_held_counter_peak_is_its_real_power_not_a_spike():
    tl = timeline_for(wall_counter(), MeterConfig(interval_s=0.1))
    held_counter_reads(tl, 95.0, 30)
    assert tl.rejected == 0
    assert tl.energy_j == pytest.approx(95.0 * 30)
    # the read interval is 0.1 s: the old per-read figure was 950 W
    assert tl.peak_w == pytest.approx(95.0, rel=0.12)
    stored = [w for w in tl.points()[2] if math.isfinite(w)]
    assert stored and all(w <= 95.0 * 1.12 for w in stored)


def test_without_a_refresh_period_the_per_read_figure_is_kept():
    tl = ChannelTimeline(wall_counter(update_period_s=None))
    held_counter_reads(tl, 95.0, 10)
    assert tl.peak_w == pytest.approx(950.0, rel=1e-9)  # nothing to spread it over: said as is


def test_the_default_bound_does_not_reject_a_step_read_1_ms_after_the_last_read():
    """A 1 kW machine's 1 s step (1 kJ) read 1 ms after the previous read: 1 MW per read
    interval, far past the 50 kW default for scope system, yet real."""
    ch = wall_counter()
    tl = timeline_for(ch, MeterConfig(interval_s=0.1))
    assert tl.max_power_w == DEFAULT_MAX_POWER_W["system"]
    tl.add(0, 0.0)
    tl.add(S // 2, 0.0)
    tl.add(S // 2 + S // 1000, 1000.0)  # the refresh landed between these two reads
    tl.add(2 * S, 2000.0)
    assert tl.rejected == 0 and tl.energy_j == pytest.approx(2000.0)
    assert tl.peak_w == pytest.approx(1000.0, rel=0.01)


def test_a_glitch_is_still_rejected_with_a_refresh_period():
    tl = timeline_for(wall_counter(), MeterConfig(interval_s=0.1))
    tl.add(0, 0.0)
    tl.add(S, 100.0)
    tl.add(2 * S, 1e12)  # 1e12 J in 2 s: not a machine
    assert tl.rejected == 1 and tl.energy_j == pytest.approx(100.0)
    assert any("rejected counter jump" in e for e in tl.events)


def test_an_idle_counter_that_moves_rarely_shows_its_average_power():
    """A counter with 1 Wh steps at 36 W moves once every 100 s: each step is spread over the
    time since the last one, not over one read interval."""
    tl = timeline_for(wall_counter(update_period_s=1.0), MeterConfig(interval_s=0.5))
    for k in range(0, 601):
        t = k * 0.5
        tl.add(round(t * S), 3600.0 * math.floor(t / 100.0))
    assert tl.energy_j == pytest.approx(3600.0 * 3)
    assert tl.peak_w == pytest.approx(36.0, rel=1e-9)
    assert tl.rejected == 0
