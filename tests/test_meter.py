"""EnergyMeter lifecycle, phases, marks, thread safety, backend selection and failure handling."""

from __future__ import annotations

import itertools
import math
import sys
import threading
import time
import types
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bertwatt.backends.base import Availability, Backend, Unavailable
from bertwatt.clock import SystemClock
from bertwatt.errors import ConfigError
from bertwatt.meter import EnergyMeter, WindowEnergy
from bertwatt.testing import FakeBackend, FakeChannel, FakeClock, PowerTrace


def counter(name: str = "c", power_w: object = 100.0, **kw: object) -> FakeChannel:
    return FakeChannel(name, power_w, kind="counter", **kw)  # type: ignore[arg-type]


def power(name: str = "p", power_w: object = 100.0, **kw: object) -> FakeChannel:
    return FakeChannel(name, power_w, kind="power", **kw)  # type: ignore[arg-type]


class Absent:
    """A backend whose sensor is not on this machine (probe lists only what is missing)."""

    name = "absent"
    blocking = False

    def probe(self) -> Availability:
        return Availability(
            unavailable=(Unavailable(what="absent", reason="no such sensor", fix="plug it in"),)
        )

    def read(self) -> tuple[list[float], None]:  # pragma: no cover - never called
        raise AssertionError("read() of a backend with no channels")

    def close(self) -> None:
        pass


class ProbeRaises(Absent):
    name = "broken"

    def probe(self) -> Availability:
        raise RuntimeError("driver exploded")


def fake_meter(clock: FakeClock, *channels: FakeChannel, **kw: object):
    backend = FakeBackend(channels=list(channels) or [counter()], clock=clock)
    return EnergyMeter(backends=[backend], clock=clock, **kw), backend  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- lifecycle
def test_start_stop_returns_the_report(clock):
    meter, backend = fake_meter(clock)
    assert not meter.running
    assert meter.start() is meter
    assert meter.running
    clock.advance(4.0)
    report = meter.stop()
    assert not meter.running
    assert report is meter.report
    assert report.status == "complete"
    assert report.duration_s == pytest.approx(4.0)
    assert report.energy_j == pytest.approx(400.0, rel=1e-12)
    assert report.energy_kwh == pytest.approx(400.0 / 3.6e6)
    assert report.started_at == datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert backend.closed == 1
    assert "stopped" in repr(meter)


def test_lifecycle_misuse_is_config_error(clock):
    meter, _ = fake_meter(clock)
    with pytest.raises(ConfigError, match="not been stopped"):
        meter.report  # noqa: B018
    with pytest.raises(ConfigError, match="not running"):
        meter.stop()
    with pytest.raises(ConfigError):
        meter.mark()
    with pytest.raises(ConfigError):
        meter.begin("x")
    with pytest.raises(ConfigError):
        meter.snapshot()
    meter.start()
    with pytest.raises(ConfigError, match="already running"):
        meter.start()
    meter.stop()
    with pytest.raises(ConfigError):
        meter.mark()


def test_restart_after_stop_gives_fresh_numbers(clock):
    meter, backend = fake_meter(clock, counter(power_w=[(0, 100.0), (10, 300.0)]))
    with meter, meter.phase("first-only"):
        clock.advance(5.0)
    first = meter.report
    clock.advance(20.0)  # not measured
    with meter:
        clock.advance(2.0)
    second = meter.report
    assert first.energy_j == pytest.approx(500.0, rel=1e-12)
    assert second.energy_j == pytest.approx(600.0, rel=1e-12)
    assert second.duration_s == pytest.approx(2.0)
    assert "first-only" not in second.phases
    assert second.started_at > first.ended_at
    assert backend.probes == 2 and backend.closed == 2
    assert first.energy_j == pytest.approx(500.0)  # the first report is not touched


def test_nested_phases(clock):
    meter, _ = fake_meter(clock, counter(power_w=[(0, 100.0), (3, 200.0), (6, 50.0)]))
    with meter, meter.phase("outer"):
        clock.advance(2.0)
        with meter.phase("inner"):
            clock.advance(3.0)  # 2..5
        clock.advance(3.0)  # ..8
    ph = meter.report.phases
    assert ph["outer"].energy_j == pytest.approx(300 + 600 + 100, rel=1e-12)
    assert ph["inner"].energy_j == pytest.approx(100 + 400, rel=1e-12)
    assert ph["inner"].intervals == [(pytest.approx(2.0), pytest.approx(5.0))]
    assert ph["outer"].duration_s == pytest.approx(8.0)


def test_overlapping_named_windows(clock):
    meter, _ = fake_meter(clock, counter(power_w=lambda t: 10.0 * t))
    exact = lambda a, b: 5.0 * (b * b - a * a)  # noqa: E731
    with meter:
        clock.advance(1.0)
        meter.begin("a")
        clock.advance(1.0)
        meter.begin("b")
        clock.advance(2.0)
        got_a = meter.end("a")  # a: 1..4
        clock.advance(2.0)
        got_b = meter.end("b")  # b: 2..6
    ph = meter.report.phases
    assert isinstance(got_a, WindowEnergy) and got_a.complete
    assert got_a.duration_s == pytest.approx(3.0)
    # the fake integrates callables with a 1 ms midpoint rule: exact for a linear trace
    assert ph["a"].energy_j == pytest.approx(exact(1, 4), rel=1e-9)
    assert ph["b"].energy_j == pytest.approx(exact(2, 6), rel=1e-9)
    assert got_a.energy_j == pytest.approx(ph["a"].energy_j, rel=1e-12)
    assert got_b.energy_j == pytest.approx(ph["b"].energy_j, rel=1e-12)


def test_repeated_phase_names_accumulate(clock):
    meter, _ = fake_meter(clock)
    per_step = []
    with meter:
        for k in range(3):
            clock.advance(1.0)
            with meter.phase("step"):
                clock.advance(0.5 + k)
            per_step.append(0.5 + k)
    ph = meter.report.phases["step"]
    assert ph.count == 3
    assert len(ph.intervals) == 3
    assert ph.intervals[0] == (pytest.approx(1.0), pytest.approx(1.5))
    assert ph.intervals[2][0] == pytest.approx(1.0 + 0.5 + 1.0 + 1.5 + 1.0)
    assert ph.duration_s == pytest.approx(sum(per_step))
    assert ph.energy_j == pytest.approx(100.0 * sum(per_step), rel=1e-12)
    assert ph.mean_power_w == pytest.approx(100.0)
    assert ph.channels == {"c": pytest.approx(100.0 * sum(per_step))}


def test_phase_misuse_is_config_error(clock):
    meter, _ = fake_meter(clock)
    with meter:
        meter.begin("x")
        with pytest.raises(ConfigError, match="already open"):
            meter.begin("x")
        with pytest.raises(ConfigError, match="not open"):
            meter.end("y")
        for bad in ("", "   ", None, 3):
            with pytest.raises(ConfigError):
                meter.begin(bad)  # type: ignore[arg-type]
        meter.end("x")
        with pytest.raises(ConfigError, match="not open"):
            meter.end("x")


def test_phase_still_open_at_stop_is_closed_with_a_warning(clock):
    meter, _ = fake_meter(clock)
    with meter:
        clock.advance(1.0)
        meter.begin("dangling")
        clock.advance(2.0)
    rep = meter.report
    assert rep.phases["dangling"].energy_j == pytest.approx(200.0, rel=1e-12)
    assert rep.phases["dangling"].count == 1
    assert rep.phases["dangling"].intervals == [(pytest.approx(1.0), pytest.approx(3.0))]
    assert any("'dangling' was still open" in w for w in rep.warnings)


def test_exception_in_the_block_propagates_and_the_report_is_still_made(clock):
    meter, backend = fake_meter(clock)
    with pytest.raises(KeyError, match="boom"), meter, meter.phase("work"):
        clock.advance(3.0)
        raise KeyError("boom")
    assert not meter.running
    assert meter.report.energy_j == pytest.approx(300.0, rel=1e-12)
    assert meter.report.phases["work"].energy_j == pytest.approx(300.0, rel=1e-12)
    assert meter.report.status == "complete"
    assert backend.closed == 1


def test_marks_per_step_sum_to_the_phase_total(clock):
    trace = [(0, 80.0), (1.3, 220.0), (2.2, 40.0), (4.0, 300.0)]
    meter, _ = fake_meter(clock, counter(power_w=trace))
    steps = [0.37, 0.5, 0.91, 0.05, 1.2, 0.66, 0.33]
    with meter, meter.phase("train"):
        marks = [meter.mark()]
        for d in steps:
            clock.advance(d)
            marks.append(meter.mark())
    per_step = [meter.energy_between(a, b) for a, b in itertools.pairwise(marks)]
    assert all(w.complete for w in per_step)
    total = sum(w.energy_j for w in per_step)  # type: ignore[misc]
    assert total == pytest.approx(meter.report.phases["train"].energy_j, rel=1e-12)
    assert total == pytest.approx(PowerTrace(trace).energy_j(sum(steps)), rel=1e-12)
    assert sum(w.duration_s for w in per_step) == pytest.approx(sum(steps))
    whole = meter.energy_between(marks[0], marks[-1])
    assert whole.energy_j == pytest.approx(total, rel=1e-12)
    assert whole.channels == {"c": pytest.approx(total, rel=1e-12)}


def test_energy_between_rejects_bad_marks(clock):
    meter, _ = fake_meter(clock)
    with pytest.raises(ConfigError, match="not been started"):
        meter.energy_between(0, 0)
    with meter:
        a = meter.mark()
        clock.advance(1.0)
        b = meter.mark()
        for bad in [(-1, b), (a, b + 100), (True, b), (a, 1.0)]:
            with pytest.raises(ConfigError, match="not a mark"):
                meter.energy_between(*bad)  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="before start"):
            meter.energy_between(b, a)


def test_snapshot_while_running_and_after_stop(clock):
    meter, _ = fake_meter(clock)
    meter.start()
    clock.advance(3.05)
    snap = meter.snapshot()
    assert snap.duration_s == pytest.approx(3.05)
    assert snap.energy_j == pytest.approx(300.0, rel=1e-12)  # up to the latest sample (3.0 s)
    assert snap.channels == {"c": pytest.approx(300.0)}
    assert snap.complete
    clock.advance(0.95)
    meter.stop()
    clock.advance(100.0)
    after = meter.snapshot()
    assert after.duration_s == pytest.approx(4.0)
    assert after.energy_j == pytest.approx(400.0, rel=1e-12)


def test_partial_report_while_running(clock):
    meter, _ = fake_meter(clock)
    with meter:
        clock.advance(2.0)
        with meter.phase("open"):
            clock.advance(1.0)
            partial = meter.partial_report()
    assert partial.status == "running"
    assert partial.energy_j == pytest.approx(300.0, rel=1e-12)
    assert partial.phases["open"].energy_j == pytest.approx(100.0, rel=1e-12)
    assert meter.report.status == "complete"


def test_unwritable_output_warns_at_stop_and_keeps_the_report(clock, tmp_path):
    from bertwatt.errors import MeasurementWarning

    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    meter, _ = fake_meter(clock, output=blocker / "run.json")
    with pytest.warns(MeasurementWarning) as info, meter:
        clock.advance(1.0)
    assert str(blocker) in str(info[0].message)
    assert meter.report.energy_j == pytest.approx(100.0)


def test_output_is_checkpointed_and_replaced_at_stop(clock, tmp_path):
    from bertwatt.report.models import EnergyReport

    out = tmp_path / "runs" / "run.json"
    meter, _ = fake_meter(clock, output=out)
    with meter:
        clock.advance(2.0)
        meter.checkpoint()
        mid = EnergyReport.load(out)
        clock.advance(2.0)
    final = EnergyReport.load(out)
    assert mid.status == "running" and mid.energy_j == pytest.approx(200.0)
    assert final.status == "complete" and final.energy_j == pytest.approx(400.0)
    assert final == meter.report
    assert sorted(p.name for p in out.parent.iterdir()) == ["run.json"]


# ----------------------------------------------------------------------------- threads
def test_thread_safety_with_a_running_sampler():
    backend = FakeBackend(channels=[counter()], clock=SystemClock())
    n_threads, n_iter = 4, 8
    results: dict[str, list[WindowEnergy]] = {}
    errors: list[BaseException] = []
    meter = EnergyMeter(backends=[backend], interval_s=0.005)

    def work(i: int) -> None:
        name = f"thread-{i}"
        got = results.setdefault(name, [])
        try:
            for _ in range(n_iter):
                meter.begin(name)
                time.sleep(0.01)
                got.append(meter.end(name))
                meter.mark()
        except BaseException as err:  # pragma: no cover - the assertion below reports it
            errors.append(err)

    with meter:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    assert not errors
    rep = meter.report
    assert rep.channel("c").samples > 10
    for i in range(n_threads):
        name = f"thread-{i}"
        ph = rep.phases[name]
        assert ph.count == n_iter
        assert all(b >= a for a, b in ph.intervals)
        assert all(w.complete for w in results[name])
        # end() returned each occurrence's energy: they add up to the phase total exactly
        assert sum(w.energy_j for w in results[name]) == pytest.approx(ph.energy_j, rel=1e-9)
        assert ph.energy_j == pytest.approx(100.0 * ph.duration_s, rel=0.25)
    assert rep.energy_j == pytest.approx(100.0 * rep.duration_s, rel=0.05)
    assert not any(t.name.startswith("bertwatt-") for t in threading.enumerate())


def test_partial_reports_while_other_threads_open_new_phases():
    # Checkpoints build partial reports on their own thread while the user's threads keep
    # opening phases (e.g. one per epoch or per request): neither side may fail.
    backend = FakeBackend(channels=[counter()], clock=SystemClock())
    meter = EnergyMeter(backends=[backend], interval_s=0.01)
    errors: list[str] = []
    done = threading.Event()

    def build_reports() -> None:
        while not done.is_set():
            try:
                meter.partial_report()
            except Exception as err:
                errors.append(f"{type(err).__name__}: {err}")
                return

    with meter:
        reporter = threading.Thread(target=build_reports)
        reporter.start()
        deadline = time.monotonic() + 1.0
        i = 0
        while time.monotonic() < deadline and not errors and i < 3000:
            meter.begin(f"request-{i}")
            meter.end(f"request-{i}")
            i += 1
        done.set()
        reporter.join(timeout=30)
    assert errors == []
    assert len(meter.report.phases) == i


# ----------------------------------------------------------------------------- backends
def test_explicit_backends_are_used_exactly(clock):
    meter, _ = fake_meter(clock, counter("gpu:0"))
    with meter:
        clock.advance(1.0)
    rep = meter.report
    assert [c.name for c in rep.channels] == ["gpu:0"]  # no automatic CPU estimate added
    assert rep.unavailable == []
    assert rep.measured


def test_auto_detection_on_a_machine_without_sensors():
    # This machine has no powercap tree and no NVIDIA driver: the CPU is estimated (and says
    # so) and both sensors are listed as unavailable, each with its reason and fix.
    with EnergyMeter(interval_s=0.05) as meter:
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            pass
    rep = meter.report
    cpu = [c for c in rep.channels if c.domain == "cpu" and c.counted]
    assert cpu and all(c.provenance.kind == "estimated" for c in cpu)
    assert all(c.provenance.assumptions for c in cpu)
    assert not rep.measured
    assert rep.energy_j is not None and rep.energy_j > 0
    whats = {u.what.split(":")[0]: u for u in rep.unavailable}
    for sensor in ("rapl", "nvml"):
        assert sensor in whats, rep.unavailable
        assert whats[sensor].reason and whats[sensor].fix
    assert any("estimated" in w for w in rep.warnings)
    assert "ESTIMATED" in rep.summary()


def test_sensor_raising_mid_run_never_raises_and_keeps_earlier_energy(clock):
    chans = [counter("c"), power("p")]
    backend = FakeBackend(channels=chans, clock=clock).fail(at_s=5.0, kind="raise")
    with EnergyMeter(backends=[backend], clock=clock) as meter:
        clock.advance(10.0)
    rep = meter.report
    # last good sample at 4.9 s
    assert rep.channel("c").energy_j == pytest.approx(490.0, rel=1e-12)
    assert rep.channel("p").energy_j == pytest.approx(490.0, rel=1e-12)
    assert rep.channel("c").coverage == pytest.approx(0.49)
    assert rep.channel("c").failed_reads >= 1
    assert any("scripted failure" in e for e in rep.channel("c").events)
    assert any("c covered only 49%" in w for w in rep.warnings)


def test_sensor_returning_nan_mid_run_keeps_earlier_energy(clock):
    backend = FakeBackend(channels=[counter("c"), power("p")], clock=clock).fail(
        "p", at_s=5.0, kind="nan"
    )
    with EnergyMeter(backends=[backend], clock=clock) as meter:
        clock.advance(10.0)
    rep = meter.report
    assert rep.channel("p").energy_j == pytest.approx(490.0, rel=1e-12)
    # ticks at 5.0, 5.1 .. 10.0 s (51) and the stop edge read at 10.0 s
    assert rep.channel("p").failed_reads == 52
    assert rep.channel("c").energy_j == pytest.approx(1000.0, rel=1e-12)  # unaffected
    assert rep.energy_j == pytest.approx(1490.0, rel=1e-12)


def test_counter_that_recovers_counts_the_outage(clock):
    backend = FakeBackend(channels=[counter()], clock=clock).fail(
        at_s=3.0, until_s=6.0, kind="raise"
    )
    with EnergyMeter(backends=[backend], clock=clock) as meter:
        clock.advance(10.0)
    # the counter kept counting while it could not be read
    assert meter.report.energy_j == pytest.approx(1000.0, rel=1e-12)
    assert meter.report.channel("c").coverage == 1.0


def test_channel_named_twice_is_measured_once_and_reported_unavailable(clock):
    a = FakeBackend(name="a", channels=[counter("gpu:0", 100.0)], clock=clock)
    b = FakeBackend(
        name="b", channels=[counter("gpu:0", 999.0), counter("gpu:1", 30.0)], clock=clock
    )
    with EnergyMeter(backends=[a, b], clock=clock) as meter:
        clock.advance(10.0)
    rep = meter.report
    assert sorted(c.name for c in rep.channels) == ["gpu:0", "gpu:1"]
    assert rep.channel("gpu:0").backend == "a"
    assert rep.channel("gpu:0").energy_j == pytest.approx(1000.0)
    assert rep.channel("gpu:1").energy_j == pytest.approx(300.0)  # b's other channel still mapped
    dup = [u for u in rep.unavailable if u.what == "b:gpu:0"]
    assert len(dup) == 1 and "already measured" in dup[0].reason and dup[0].fix
    assert rep.energy_j == pytest.approx(1300.0)


def test_probe_raising_becomes_an_unavailable_entry(clock):
    good = FakeBackend(channels=[counter()], clock=clock)
    with EnergyMeter(backends=[ProbeRaises(), good], clock=clock) as meter:
        clock.advance(1.0)
    rep = meter.report
    (u,) = [u for u in rep.unavailable if u.what == "broken"]
    assert "RuntimeError" in u.reason and "driver exploded" in u.reason
    assert rep.energy_j == pytest.approx(100.0)


def test_probe_unavailable_entries_are_reported_with_their_fix(clock):
    extra = Unavailable(what="fake:dram-0", reason="permission denied", fix="chmod it")
    backend = FakeBackend(channels=[counter()], clock=clock, unavailable=[extra])
    with EnergyMeter(backends=[backend], clock=clock) as meter:
        clock.advance(1.0)
    (u,) = meter.report.unavailable
    assert (u.what, u.reason, u.fix) == ("fake:dram-0", "permission denied", "chmod it")
    assert "Fix: chmod it" in meter.report.summary()


# ----------------------------------------------------------------------------- totals
def test_idle_baseline_and_energy_above_idle(clock):
    chans = [counter("c", [(0, 50.0), (2, 150.0)]), power("p", [(0, 400.0), (1, 20.0)])]
    backend = FakeBackend(channels=chans, clock=clock)
    with EnergyMeter(backends=[backend], clock=clock, baseline_s=2.0) as meter:
        clock.advance(10.0)
    rep = meter.report
    assert rep.duration_s == pytest.approx(10.0)
    assert rep.started_at == datetime(2026, 1, 1, 0, 0, 2, tzinfo=timezone.utc)
    assert rep.baseline is not None
    assert rep.baseline.duration_s == pytest.approx(2.0)
    assert rep.baseline.channels_w["c"] == pytest.approx(50.0, rel=1e-12)
    assert rep.channel("c").energy_j == pytest.approx(1500.0, rel=1e-12)
    p_idle = rep.baseline.channels_w["p"]
    assert rep.baseline.power_w == pytest.approx(50.0 + p_idle, rel=1e-12)
    assert rep.energy_j == pytest.approx(1500.0 + 200.0, rel=1e-12)
    assert rep.energy_above_idle_j == pytest.approx(1700.0 - (50.0 + p_idle) * 10.0, rel=1e-9)
    # the 400 W spike happened during the baseline, not in the measured window
    assert rep.channel("p").peak_power_w == pytest.approx(20.0)
    assert "idle baseline" in rep.summary()


def test_total_does_not_double_count_sub_zones(run):
    chans = [
        counter("cpu:package-0", 50.0, scope="cpu-package"),
        counter("cpu:core-0", 30.0, scope="cpu-core", counted=False, parent="cpu:package-0"),
        counter("platform:psys", 500.0, scope="platform", counted=False),
        power("gpu:0", 100.0, scope="gpu-board"),
    ]
    report, _ = run(chans, 10.0)
    assert report.energy_j == pytest.approx(1500.0, rel=1e-12)
    assert report.channel("cpu:core-0").energy_j == pytest.approx(300.0)
    assert report.channel("cpu:core-0").parent == "cpu:package-0"
    assert not report.channel("platform:psys").counted
    assert "cpu:core-0" not in report.total_basis
    assert "gpu:0" in report.total_basis and "cpu:package-0" in report.total_basis


def test_whole_system_channel_is_compared_never_added(clock):
    """Issue #10: a wall meter overlaps the components; the total stays the component sum."""
    chans = [
        power("wall:plug", 400.0, scope="system", domain="wall"),
        counter("cpu:package-0", 50.0, scope="cpu-package"),
        power("gpu:0", 100.0, scope="gpu-board"),
    ]
    meter, _ = fake_meter(clock, *chans)
    with meter, meter.phase("x"):
        clock.advance(10.0)
    rep = meter.report
    assert rep.energy_j == pytest.approx(1500.0, rel=1e-12)
    assert rep.phases["x"].energy_j == pytest.approx(1500.0, rel=1e-12)
    assert "wall:plug" in rep.total_basis and "never added" in rep.total_basis
    assert rep.timeline[-1][1] == pytest.approx(1500.0)
    assert rep.wall is not None
    assert rep.wall.run.wall_j == pytest.approx(4000.0, rel=1e-12)
    assert rep.wall.run.component_j == pytest.approx(1500.0, rel=1e-12)
    assert rep.wall.run.unseen_j == pytest.approx(2500.0, rel=1e-12)
    assert rep.wall.phases["x"].ratio == pytest.approx(4000.0 / 1500.0)


def test_whole_system_channel_alone_is_the_total(clock):
    meter, _ = fake_meter(clock, power("wall:plug", 400.0, scope="system", domain="wall"))
    with meter:
        clock.advance(10.0)
    rep = meter.report
    assert rep.energy_j == pytest.approx(4000.0, rel=1e-12)
    assert rep.total_basis.startswith("wall meter only")
    assert rep.timeline[-1][1] == pytest.approx(4000.0)


def test_extra_backends_join_explicit_backends(clock):
    """Issue #10: a wall meter is added next to the other backends, compared, never added."""
    gpu = FakeBackend(channels=[counter("gpu:0", 100.0, scope="gpu-board")], clock=clock)
    wall = FakeBackend(
        name="plug",
        channels=[power("wall:plug", 250.0, scope="system", domain="wall")],
        clock=clock,
    )
    meter = EnergyMeter(backends=[gpu], extra_backends=[wall], clock=clock)
    with meter, meter.phase("train"):
        clock.advance(10.0)
    rep = meter.report
    assert [c.name for c in rep.channels] == ["gpu:0", "wall:plug"]
    assert rep.energy_j == pytest.approx(1000.0)
    assert rep.wall is not None and rep.wall.run.wall_j == pytest.approx(2500.0)
    assert rep.wall.phases["train"].ratio == pytest.approx(2.5)
    summary = rep.summary()
    assert "software vs wall:" in summary
    assert summary.count("wall/components  x2.50") == 2  # the run and the phase, one line each


def test_extra_backends_join_auto_detection(clock, monkeypatch):
    """With auto-detection the wall meter joins whatever is found, and does not stand in for
    the CPU: the labelled CPU estimate is still added when no sensor measures the CPU."""
    monkeypatch.delenv("BERTWATT_WALLPLUG", raising=False)
    monkeypatch.setattr("bertwatt.backends.default_backends", lambda: [])
    wall = FakeBackend(
        name="plug",
        channels=[power("wall:plug", 250.0, scope="system", domain="wall")],
        clock=clock,
    )
    meter = EnergyMeter(extra_backends=[wall], clock=clock)
    with meter:
        clock.advance(10.0)
    names = [c.name for c in meter.report.channels]
    assert "wall:plug" in names
    assert any(c.provenance.kind == "estimated" for c in meter.report.channels), names


@pytest.mark.parametrize("bad", ["shelly+http://x", [object()], 3])
def test_extra_backends_must_be_backends(bad):
    with pytest.raises(ConfigError, match=r"extra_backends must be a list|is not a backend"):
        EnergyMeter(extra_backends=bad)


def test_the_same_backend_in_both_lists_is_refused(clock):
    b = FakeBackend(channels=[counter()], clock=clock)
    with pytest.raises(ConfigError, match="listed twice"):
        EnergyMeter(backends=[b], extra_backends=[b], clock=clock)


def test_live_figures_never_add_the_wall_either(clock):
    """energy_between() and snapshot() follow the report's rule: components, else the wall."""
    meter, _ = fake_meter(
        clock,
        power("wall:plug", 400.0, scope="system", domain="wall"),
        power("gpu:0", 100.0, scope="gpu-board"),
    )
    with meter:
        a = meter.mark()
        clock.advance(10.0)
        b = meter.mark()
        between = meter.energy_between(a, b)
        assert between.energy_j == pytest.approx(1000.0)
        assert between.channels["wall:plug"] == pytest.approx(4000.0)
        assert meter.snapshot().energy_j == pytest.approx(1000.0)
    alone, _ = fake_meter(clock, power("wall:plug", 400.0, scope="system", domain="wall"))
    with alone:
        a = alone.mark()
        clock.advance(10.0)
        assert alone.energy_between(a, alone.mark()).energy_j == pytest.approx(4000.0)


def test_nothing_measurable_gives_none_never_zero(clock):
    for backends in ([], [Absent()]):
        with EnergyMeter(backends=backends, clock=clock) as meter:
            clock.advance(1.0)
        rep = meter.report
        assert rep.energy_j is None and rep.energy_kwh is None and rep.mean_power_w is None
        assert any("no energy was measured" in w for w in rep.warnings)
        assert "not measured" in rep.summary()
    assert any(u.what == "absent" and u.fix == "plug it in" for u in rep.unavailable)


def test_only_uncounted_channels_gives_none(run):
    report, _ = run([counter("core", counted=False)], 2.0)
    assert report.channel("core").energy_j == pytest.approx(200.0)
    assert report.energy_j is None


def test_sensor_that_never_answers_gives_none_not_zero(run):
    # Not a single reading came back: nothing was measured, so the total must not be 0 J.
    report, _ = run([counter()], 5.0, faults=lambda b: b.fail(kind="raise"))
    assert report.channel("c").samples == 0
    assert report.channel("c").coverage == 0.0
    assert report.energy_j is None


def test_empty_window_is_explained_not_a_silent_zero(clock):
    meter, _ = fake_meter(clock)
    meter.start()
    rep = meter.stop()
    assert rep.duration_s == 0.0
    assert rep.mean_power_w is None
    assert rep.energy_j is None or any("window" in w for w in rep.warnings), rep.warnings


# ----------------------------------------------------------------------------- CUDA sync
class _FakeCuda:
    def __init__(self, initialized: bool, fail: bool = False) -> None:
        self.initialized = initialized
        self.fail = fail
        self.calls = 0

    def is_initialized(self) -> bool:
        return self.initialized

    def is_available(self) -> bool:
        return True

    def synchronize(self) -> None:
        self.calls += 1
        if self.fail:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")


@pytest.mark.parametrize(
    ("sync_cuda", "initialized", "fail", "expected"),
    [
        (None, True, False, 5),  # start, begin, end, mark, stop
        (None, False, False, 0),
        (False, True, False, 0),
        (True, False, False, 5),
        (None, True, True, 5),  # a failing synchronize never ends the measurement
    ],
)
def test_cuda_is_synchronised_at_window_edges(
    clock, monkeypatch, sync_cuda, initialized, fail, expected
):
    cuda = _FakeCuda(initialized, fail)
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    meter, _ = fake_meter(clock, sync_cuda=sync_cuda)
    with meter:
        with meter.phase("x"):
            clock.advance(1.0)
        meter.mark()
    assert cuda.calls == expected
    assert meter.report.energy_j == pytest.approx(100.0)


# ----------------------------------------------------------------------------- bad arguments
_bad_seconds = st.one_of(
    st.just(math.nan),
    st.just(math.inf),
    st.just(-math.inf),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
)
BAD_KWARGS = {
    "interval_s": st.one_of(_bad_seconds, st.floats(max_value=0.00099), st.floats(3600.5, 1e300)),
    "checkpoint_interval_s": st.one_of(
        _bad_seconds, st.floats(max_value=0.0099), st.floats(86400.5, 1e300)
    ),
    "baseline_s": st.one_of(_bad_seconds, st.floats(max_value=-1e-9), st.floats(3600.5, 1e300)),
    "slow_read_timeout_s": st.one_of(
        _bad_seconds, st.floats(max_value=-1e-9), st.floats(600.5, 1e300)
    ),
    "timeline_points": st.one_of(
        st.integers(max_value=63), st.integers(min_value=10_000_001), st.floats(), st.booleans()
    ),
    "output": st.sampled_from(["", 5, 1.5, b"x", ["a"]]),
    "sync_cuda": st.sampled_from(["yes", 1, 0, "auto"]),
    "edge_reads": st.sampled_from(["no", 1, 0, None]),
    "pue": st.one_of(
        st.floats(max_value=0.999), st.floats(min_value=3.001), st.just(math.nan), st.booleans()
    ),
    "backends": st.sampled_from(["rapl", 5, [object()], ["nvml"], [None]]),
    "clock": st.sampled_from([object(), "clock", 1.0]),
}


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(BAD_KWARGS)).flatmap(lambda k: st.tuples(st.just(k), BAD_KWARGS[k])))
def test_bad_energy_meter_arguments_are_config_errors(kwarg):
    name, value = kwarg
    with pytest.raises(ConfigError) as info:
        EnergyMeter(**{name: value})
    assert isinstance(info.value, ValueError)
    assert str(info.value)


def test_same_backend_object_twice_is_config_error():
    b = FakeBackend()
    with pytest.raises(ConfigError, match="listed twice"):
        EnergyMeter(backends=[b, b])


def test_fake_backend_satisfies_the_backend_protocol():
    assert isinstance(FakeBackend(), Backend)
    assert isinstance(Absent(), Backend)
