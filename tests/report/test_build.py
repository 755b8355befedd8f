"""Building reports from a meter window: figures, timelines, warnings, host, partial reports."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
from datetime import timedelta

import pytest

from bertwatt.meter import EnergyMeter
from bertwatt.report.build import (
    baseline_report,
    build_report,
    channel_energy,
    channel_report,
    channel_warnings,
    host_info,
    phase_report,
    total_of,
    total_timeline,
    window_warnings,
)
from bertwatt.report.snapshot import (
    BaselineSnapshot,
    ChannelSnapshot,
    PhaseSnapshot,
    ProvenanceSnapshot,
    WindowSnapshot,
)
from bertwatt.testing import FakeBackend, FakeChannel, FakeClock


def meter_on(clock: FakeClock, *channels: FakeChannel, **kw: object) -> EnergyMeter:
    backend = FakeBackend(channels=list(channels), clock=clock)
    return EnergyMeter(backends=[backend], clock=clock, **kw)  # type: ignore[arg-type]


def test_times_host_and_unavailable_entries(sample_report):
    r = sample_report
    assert r.ended_at - r.started_at == timedelta(seconds=r.duration_s)
    assert r.started_at.utcoffset() == timedelta(0)
    assert r.interval_s == 0.1
    assert r.host.hostname == socket.gethostname()
    assert r.host.pid == os.getpid()
    assert r.host.python and r.host.os and r.host.bertwatt_version
    assert r.hosts == [r.host]
    assert all(c.host == r.host.hostname for c in r.channels)
    assert all(u.host == r.host.hostname for u in r.unavailable)


def test_total_timeline_is_monotonic_and_ends_at_the_total(sample_report):
    tl = sample_report.timeline
    assert len(tl) == 1001
    assert tl[0] == (0.0, pytest.approx(0.0))
    assert tl[-1] == (pytest.approx(sample_report.duration_s), sample_report.energy_j)
    energies = [e for _, e in tl]
    assert energies == sorted(energies)
    # halfway (4 s into the window, 5 s on the fake's clock): gpu 60 W until 3 s then 250 W,
    # plus the estimated cpu at 40 W
    assert tl[500][0] == pytest.approx(4.0)
    assert tl[500][1] == pytest.approx(120.0 + 250.0 * 2.0 + 40.0 * 4.0, rel=1e-9)


def test_channel_timelines_are_thinned_and_relative_to_the_window(clock):
    m = meter_on(clock, FakeChannel("c", 10.0, kind="counter"), FakeChannel("p", 5.0))
    with m:
        clock.advance(300.0)  # 3001 samples per channel
    for ch in m.report.channels:
        assert 400 <= len(ch.timeline) <= 501
        offsets = [t for t, _, _ in ch.timeline]
        assert offsets[0] == 0.0 and offsets == sorted(offsets)
        assert offsets[-1] <= 300.0
    c = m.report.channel("c")
    assert c.timeline[0][2] is None  # a counter has no power at its first reading
    assert all(p == pytest.approx(10.0) for _, _, p in c.timeline[1:])
    assert all(e == pytest.approx(10.0 * t) for t, e, _ in c.timeline)


def test_short_window_of_power_samples_is_flagged(clock):
    m = meter_on(clock, FakeChannel("p", 5.0))
    with m:
        clock.advance(0.5)
    assert any("fewer than 10 sampling intervals" in w for w in m.report.warnings)
    m = meter_on(clock, FakeChannel("p", 5.0))
    with m:
        clock.advance(1.0)
    assert not any("fewer than 10 sampling intervals" in w for w in m.report.warnings)


def test_low_coverage_is_flagged_only_for_counted_channels(clock):
    chans = [FakeChannel("a", 10.0), FakeChannel("b", 10.0, counted=False)]
    backend = FakeBackend(channels=chans, clock=clock).fail(at_s=2.0, until_s=8.0)
    with EnergyMeter(backends=[backend], clock=clock) as m:
        clock.advance(10.0)
    assert any(w.startswith("a covered only 39%") for w in m.report.warnings)
    assert not any(w.startswith("b covered") for w in m.report.warnings)
    assert m.report.channel("b").coverage == pytest.approx(0.39)


def test_mean_power_is_over_covered_time(clock):
    backend = FakeBackend(channels=[FakeChannel("a", 10.0)], clock=clock).fail(
        at_s=2.0, until_s=8.0
    )
    with EnergyMeter(backends=[backend], clock=clock) as m:
        clock.advance(10.0)
    a = m.report.channel("a")
    assert a.energy_j == pytest.approx(39.0)
    assert a.mean_power_w == pytest.approx(10.0)  # not 3.9 W: the gap is not idle time
    assert m.report.mean_power_w == pytest.approx(3.9)  # the total over the whole window


def test_zero_length_phase(clock):
    m = meter_on(clock, FakeChannel("c", 10.0, kind="counter"))
    with m:
        clock.advance(1.0)
        m.begin("blink")
        m.end("blink")
        clock.advance(1.0)
    ph = m.report.phases["blink"]
    assert ph.duration_s == 0.0 and ph.energy_j == 0.0
    assert ph.mean_power_w is None and ph.coverage == 0.0


def test_estimated_channel_is_flagged(sample_report):
    assert any(
        w.startswith("cpu:package-0 is estimated (bertwatt.testing fake power)")
        for w in sample_report.warnings
    )
    # a sub-zone that is not added to the total does not raise the same flag
    assert not any(w.startswith("cpu:core-0 is estimated") for w in sample_report.warnings)


def test_warnings_are_not_repeated(clock):
    m = meter_on(clock, FakeChannel("c", 10.0, kind="counter"))
    with m:
        m.begin("x")
        m.begin("y")
        clock.advance(2.0)
    open_warnings = [w for w in m.report.warnings if "still open" in w]
    assert len(open_warnings) == 2
    assert len(m.report.warnings) == len(set(m.report.warnings))


def test_partial_report_runs_to_now_and_counts_open_phases(clock):
    m = meter_on(clock, FakeChannel("c", 10.0, kind="counter"))
    with m:
        clock.advance(1.0)
        m.begin("open")
        clock.advance(2.55)
        partial = m.partial_report()
    assert partial.status == "running"
    assert partial.duration_s == pytest.approx(3.55)
    # up to the latest sample (3 s: between edges, counters are read about once a second)
    assert partial.energy_j == pytest.approx(30.0)
    assert partial.phases["open"].count == 1
    assert partial.phases["open"].intervals == [(pytest.approx(1.0), pytest.approx(3.55))]
    assert partial.phases["open"].energy_j == pytest.approx(20.0)


# ----------------------------------------------------------------------------- pure building
# build_report and each of its parts run on hand-made snapshots: plain data, no meter.
S = 1_000_000_000


def prov(scope: str = "other", kind: str = "measured", **kw: object) -> ProvenanceSnapshot:
    return ProvenanceSnapshot(kind=kind, source="test sensor", scope=scope, **kw)  # type: ignore[arg-type]


def chan(name: str = "c", **kw: object) -> ChannelSnapshot:
    fields: dict[str, object] = {
        "name": name,
        "backend": "fake",
        "domain": "other",
        "kind": "counter",
        "counted": True,
        "parent": None,
        "provenance": prov(),
        "info": {},
        "samples": 11,
        "rejected": 0,
        "failed_reads": 0,
        "wraps": 0,
        "peak_w": 100.0,
        "events": (),
        "t_ns": [k * S for k in range(11)],
        "energy_j": [100.0 * k for k in range(11)],
        "power_w": [math.nan] + [100.0] * 10,
        "last_energy_j": 1000.0,
        "start_j": 0.0,
        "end_j": 1000.0,
        "covered_ns": 10 * S,
    }
    fields.update(kw)
    return ChannelSnapshot(**fields)  # type: ignore[arg-type]


def snap(*channels: ChannelSnapshot, **kw: object) -> WindowSnapshot:
    fields: dict[str, object] = {
        "run_id": "ab" * 16,
        "node_id": "node-a",
        "final": True,
        "start_wall_ns": 1_767_225_600 * S,
        "t_start_ns": 0,
        "t_end_ns": 10 * S,
        "interval_s": 0.1,
        "channels": channels or (chan(),),
        "host": {"hostname": "node-a", "os": "Linux", "python": "3.11", "pid": 42},
    }
    fields.update(kw)
    return WindowSnapshot(**fields)  # type: ignore[arg-type]


def test_total_of_adds_counted_channels_and_never_adds_the_wall():
    """Issue #10: a wall meter is compared with the components, never added to them."""
    a, b = chan("a"), chan("b", counted=False)
    assert total_of([a, b], {"a": 5.0, "b": 7.0}) == (5.0, "sum of a")
    plug = chan("plug", provenance=prov("system"))
    total, basis = total_of([a, plug], {"a": 5.0, "plug": 9.0})
    assert total == 5.0 and basis.startswith("sum of a; wall meter plug compared apart")
    assert "never added" in basis
    total, basis = total_of([plug], {"plug": 9.0})
    assert total == 9.0 and basis.startswith("wall meter only (no component sensor)")
    assert total_of([b], {"b": 7.0}) == (None, "no counted channel was measured")
    assert total_of([a], {}) == (None, "no counted channel was measured")


def test_channel_energy_is_none_without_samples_and_never_negative():
    assert channel_energy(chan()) == 1000.0
    assert channel_energy(chan(samples=0)) is None
    assert channel_energy(chan(start_j=5.0, end_j=4.0)) == 0.0


def test_channel_report_figures_points_and_stuck_label():
    s = snap(chan(covered_ns=5 * S, stuck_ns=((2 * S, 9 * S),), stuck_count=1))
    r = channel_report(s.channels[0], s)
    assert r.energy_j == 1000.0 and r.coverage == 0.5
    assert r.mean_power_w == pytest.approx(200.0)  # over covered time only
    assert r.node_id == "node-a" and r.host == "node-a"
    assert r.timeline[0] == (0.0, 0.0, None) and r.timeline[-1] == (10.0, 1000.0, 100.0)
    assert any("stuck sensor suspected" in n and "7.0 s" in n for n in r.provenance.notes)
    assert r.provenance.method.startswith("energy counter read every 0.1 s")


def test_channel_warnings_each_doubt_once():
    s = snap()
    assert channel_warnings(s.channels[0], s) == []
    bad = chan(
        samples=3,
        rejected=2,
        max_power_w=500.0,
        covered_ns=S,
        stuck_ns=((0, 3 * S),),
        provenance=prov(kind="estimated", update_period_s=2.0),
    )
    got = channel_warnings(bad, snap(bad))
    assert got[0].startswith("c covered only 10%")
    assert got[1] == "c: 2 implausible reading(s) rejected (plausibility bound 500 W)"
    assert got[2].startswith("c: stuck sensor suspected: the counter did not move for 3.0 s")
    assert "updates every 2 s" in got[2]
    assert got[3].startswith("c: the window (10 s) is shorter than 10 sensor update periods")
    assert got[4] == "c is estimated (test sensor), not measured"
    silent = chan(samples=0)
    assert channel_warnings(silent, snap(silent))[0].startswith("c delivered no reading")


def test_window_warnings():
    assert window_warnings(snap()) == []
    short = snap(chan(kind="power"), t_end_ns=S // 2)
    assert "fewer than 10 sampling intervals" in window_warnings(short)[0]
    assert window_warnings(snap(t_end_ns=0)) == [
        "the window lasted 0 s: there was nothing to measure"
    ]
    assert "missed 3 tick(s)" in window_warnings(snap(missed_ticks=3))[0]


def test_phase_report_sums_and_lists_at_most_the_kept_intervals():
    chans = (chan("a"), chan("b", counted=False))
    p = PhaseSnapshot(
        name="step",
        count=3,
        duration_ns=3 * S,
        intervals=((1 * S, 2 * S), (4 * S, 5 * S)),
        energy_j={"a": 300.0, "b": 50.0},
        covered_ns={"a": 3 * S // 2, "b": 3 * S},
    )
    r, note = phase_report(p, chans, snap(*chans))
    assert r.count == 3 and r.intervals == [(1.0, 2.0), (4.0, 5.0)]
    assert r.energy_j == 300.0 and r.mean_power_w == pytest.approx(100.0)
    assert r.coverage == 0.5  # counted channels only
    assert r.channels == {"a": 300.0, "b": 50.0}
    assert note is not None and "occurred 3 times" in note and "the first 2" in note


def test_baseline_report_gives_idle_power_and_energy_above_it():
    assert baseline_report(snap(), 1000.0) == (None, None)
    s = snap(baseline=BaselineSnapshot(duration_ns=2 * S, energy_j={"c": 40.0}))
    b, above = baseline_report(s, 1000.0)
    assert b is not None and b.power_w == 20.0 and b.channels_w == {"c": 20.0}
    assert above == pytest.approx(1000.0 - 20.0 * 10)


def test_total_timeline_follows_the_components_or_the_wall_alone():
    plug = chan(
        "plug",
        provenance=prov("system"),
        energy_j=[50.0 * k for k in range(11)],
        last_energy_j=500.0,
        end_j=500.0,
    )
    tl = total_timeline(snap(chan(), plug), 1000.0)
    assert len(tl) == 1001 and tl[-1] == (10.0, 1000.0)
    assert tl[500] == (5.0, pytest.approx(500.0))  # the component's curve, not the plug's
    tl = total_timeline(snap(plug), 500.0)
    assert tl[-1] == (10.0, 500.0) and tl[500] == (5.0, pytest.approx(250.0))
    assert total_timeline(snap(chan(samples=0)), None) == []


def test_host_info_from_plain_facts():
    gpu = chan("gpu:0", info={"gpu_name": "Fake GPU"})
    h = host_info(snap(gpu))
    assert (h.hostname, h.pid, h.node_id, h.gpu_names) == ("node-a", 42, "node-a", ["Fake GPU"])


def test_build_report_from_a_snapshot_fills_identity_fields():
    r = build_report(snap(run={"command": ["python", "x.py"]}))
    assert (r.kind, r.run_id, r.node_id, r.status) == ("energy", "ab" * 16, "node-a", "complete")
    assert r.energy_j == 1000.0 and r.run is not None and r.run.command == ["python", "x.py"]
    assert build_report(snap(final=False)).status == "running"


def test_report_package_imports_no_sensor_code():
    code = (
        "import sys, bertwatt.report.build, bertwatt.report.snapshot;"
        "bad = [m for m in sys.modules if m.startswith(('bertwatt.backends', 'bertwatt.sampler',"
        " 'bertwatt.timeline', 'bertwatt.window', 'bertwatt.meter'))];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
