"""Phases across threads, fork() inside a metered block, bad output paths, early checkpoints,
run identity, and long runs of many phases (issue #7, #8)."""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bertwatt.clock import SystemClock
from bertwatt.errors import ConfigError
from bertwatt.host import node_identity
from bertwatt.meter import FIRST_CHECKPOINT_S, EnergyMeter
from bertwatt.testing import FakeBackend, FakeChannel, FakeClock
from bertwatt.window import KEEP_FIRST, KEEP_RECENT, MAX_INTERVALS


def fake_meter(clock: FakeClock, watts: float = 100.0, **kw: Any) -> EnergyMeter:
    backend = FakeBackend(channels=[FakeChannel("c", watts, kind="counter")], clock=clock)
    return EnergyMeter(backends=[backend], clock=clock, **kw)


class Worker:
    """A thread that runs the callables it is given, one at a time, and hands back results."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[Callable[[], Any] | None] = queue.Queue()
        self._results: queue.Queue[tuple[bool, Any]] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                self._results.put((True, job()))
            except BaseException as err:  # handed back to the test thread
                self._results.put((False, err))

    def __call__(self, job: Callable[[], Any]) -> Any:
        self._jobs.put(job)
        ok, value = self._results.get(timeout=30)
        if not ok:
            raise value
        return value

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=30)


# ------------------------------------------------------------------ threads
def test_same_phase_from_two_threads_is_shared_and_counted_once(clock):
    meter = fake_meter(clock)
    a, b = Worker(), Worker()
    try:
        with meter:
            clock.advance(1.0)
            a(lambda: meter.begin("work"))  # 1 s
            clock.advance(1.0)
            b(lambda: meter.begin("work"))  # 2 s: no ConfigError in the second thread
            clock.advance(1.0)
            ea = a(lambda: meter.end("work"))  # 3 s
            clock.advance(1.0)
            eb = b(lambda: meter.end("work"))  # 4 s
            clock.advance(1.0)
    finally:
        a.close()
        b.close()
    ph = meter.report.phases["work"]
    # one interval from the first begin to the last end: 3 s at 100 W, not 2 x 200 J
    assert ph.count == 1
    assert ph.intervals == [(pytest.approx(1.0), pytest.approx(4.0))]
    assert ph.energy_j == pytest.approx(300.0, rel=1e-12)
    assert ph.duration_s == pytest.approx(3.0)
    # each thread's end() gives its own occurrence
    assert ea.energy_j == pytest.approx(200.0, rel=1e-12)
    assert eb.energy_j == pytest.approx(200.0, rel=1e-12)


def test_shared_phase_spans_the_earliest_begin_and_the_latest_end_given_with_at(clock):
    meter = fake_meter(clock)
    w = Worker()
    try:
        with meter:
            clock.advance(1.0)
            early = meter.mark()  # 1 s
            clock.advance(1.0)
            w(lambda: meter.begin("x"))  # 2 s
            meter.begin("x", at=early)  # joins, from an earlier edge
            clock.advance(1.0)
            late = meter.mark()  # 3 s
            clock.advance(1.0)
            w(lambda: meter.end("x", at=late))  # at 4 s, ending at the 3 s edge
            meter.end("x", at=late)
            clock.advance(1.0)
    finally:
        w.close()
    ph = meter.report.phases["x"]
    assert ph.intervals == [(pytest.approx(1.0), pytest.approx(3.0))]
    assert ph.energy_j == pytest.approx(200.0, rel=1e-12)


def test_reopening_a_phase_in_the_same_thread_is_still_an_error(clock):
    meter = fake_meter(clock)
    w = Worker()
    try:
        with meter:
            w(lambda: meter.begin("x"))
            with pytest.raises(ConfigError, match="already open in this thread"):
                w(lambda: meter.begin("x"))
            meter.begin("x")  # another thread (this one) may join it
            meter.end("x")
            w(lambda: meter.end("x"))
            with pytest.raises(ConfigError, match="not open"):
                meter.end("x")
    finally:
        w.close()


def test_phase_ended_by_another_thread_closes_the_oldest_occurrence(clock):
    meter = fake_meter(clock)
    w = Worker()
    try:
        with meter:
            w(lambda: meter.begin("io"))
            clock.advance(2.0)
            e = meter.end("io")  # the opener never ends it itself (a hand-off)
    finally:
        w.close()
    assert e.energy_j == pytest.approx(200.0, rel=1e-12)
    assert meter.report.phases["io"].count == 1


def test_many_threads_hammering_one_phase_never_raise_or_double_count():
    backend = FakeBackend(channels=[FakeChannel("c", 100.0, kind="counter")], clock=SystemClock())
    meter = EnergyMeter(backends=[backend], interval_s=0.01)
    errors: list[BaseException] = []

    def loop() -> None:
        try:
            for _ in range(150):
                with meter.phase("step"):
                    pass
        except BaseException as err:
            errors.append(err)

    with meter:
        threads = [threading.Thread(target=loop) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    assert errors == []
    r = meter.report
    ph = r.phases["step"]
    assert 1 <= ph.count <= 900
    assert r.energy_j is not None and ph.energy_j is not None
    assert ph.energy_j <= r.energy_j * (1 + 1e-9)
    assert ph.duration_s <= r.duration_s + 1e-9


# ------------------------------------------------------------------ fork
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_child_never_writes_the_parents_output(tmp_path: Path, clock: FakeClock):
    out = tmp_path / "report.json"
    meter = fake_meter(clock, output=out)
    meter.start()
    clock.advance(1.0)
    pid = os.fork()
    if pid == 0:  # the child: leave the metered block as user code would, then report back
        code = 1
        try:
            clock.advance(1.0)
            meter.checkpoint()
            report = meter.stop(warn=False)
            forked = any("fork() child" in w for w in report.warnings)
            code = 0 if forked and not out.exists() else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert not out.exists()
    clock.advance(1.0)
    report = meter.stop(warn=False)
    written = json.loads(out.read_text())
    assert written["host"]["pid"] == os.getpid()
    assert written["run_id"] == report.run_id
    assert not any("fork() child" in w for w in report.warnings)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_while_the_sampler_thread_runs_does_not_hang_the_child(tmp_path: Path):
    out = tmp_path / "report.json"
    backend = FakeBackend(channels=[FakeChannel("c", 100.0, kind="counter")], clock=SystemClock())
    meter = EnergyMeter(backends=[backend], interval_s=0.001, output=out)
    meter.start()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads: on purpose
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            with meter.phase("child"):
                time.sleep(0.05)
            meter.stop(warn=False)
            code = 0 if not out.exists() else 2
        finally:
            os._exit(code)
    deadline = time.monotonic() + 60
    status = None
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung in stop()")
    meter.stop(warn=False)
    assert status is not None and os.waitstatus_to_exitcode(status) == 0
    assert json.loads(out.read_text())["host"]["pid"] == os.getpid()


# ------------------------------------------------------------------ output paths
@pytest.mark.parametrize("path", ["report\x00.json", Path("dir") / "a\x00b"])
def test_output_path_with_a_nul_byte_fails_at_construction(path: object):
    with pytest.raises(ConfigError, match="NUL byte"):
        EnergyMeter(backends=[], output=path)  # type: ignore[arg-type]


# ------------------------------------------------------------------ checkpoints and identity
def test_first_checkpoint_is_written_within_seconds_not_after_the_interval(tmp_path: Path):
    out = tmp_path / "r.json"
    backend = FakeBackend(channels=[FakeChannel("c", 100.0, kind="counter")], clock=SystemClock())
    meter = EnergyMeter(backends=[backend], output=out, checkpoint_interval_s=600.0)
    t0 = time.monotonic()
    meter.start()
    try:
        while not out.exists() and time.monotonic() - t0 < 30:
            time.sleep(0.05)
        first_s = time.monotonic() - t0
        assert out.exists()
        checkpoint = json.loads(out.read_text())
    finally:
        report = meter.stop(warn=False)
    assert FIRST_CHECKPOINT_S - 0.2 <= first_s < 30
    assert checkpoint["status"] == "running"
    assert checkpoint["run_id"] == report.run_id
    assert json.loads(out.read_text())["status"] == "complete"


def test_run_id_is_new_at_each_start_and_node_id_is_the_host(clock):
    meter = fake_meter(clock)
    with meter:
        clock.advance(1.0)
        partial = meter.partial_report()
    first = meter.report
    with meter:
        clock.advance(1.0)
    second = meter.report
    assert partial.run_id == first.run_id != second.run_id
    assert len(first.run_id) == 32 and int(first.run_id, 16) >= 0
    assert first.kind == "energy"
    from bertwatt.distributed import node_identity as distributed_node_identity

    assert node_identity() == distributed_node_identity()  # BERTWATT_NODE_ID, boot id, host
    assert first.node_id == first.host.node_id == node_identity()
    assert all(c.node_id == first.node_id for c in first.channels)


def test_run_info_goes_on_checkpoints_and_the_final_report(clock):
    meter = fake_meter(clock, run={"command": ["python", "train.py"], "cwd": "/tmp"})
    with meter:
        clock.advance(1.0)
        assert meter.partial_report().run.command == ["python", "train.py"]  # type: ignore[union-attr]
        meter.run = {"command": ["python", "train.py"], "cwd": "/tmp", "exit_code": 0}
    assert meter.report.run is not None and meter.report.run.exit_code == 0
    with pytest.raises(ConfigError, match="run must be a mapping"):
        fake_meter(clock, run=["python"])


# ------------------------------------------------------------------ long runs
def test_marks_are_dropped_on_long_runs_and_phases_stay_exact(clock):
    meter = fake_meter(clock, interval_s=0.5)
    steps = 12_000
    with meter:
        first = meter.mark()
        for _ in range(steps):
            with meter.phase("step"):
                clock.advance(0.01)
            clock.advance(0.01)
        w = meter._window
        assert w is not None
        kept = len(w.mark_t)
        timeline_marks = max(len(tl.marks) for tl in w.timelines)
        last = meter.mark()
        assert meter.energy_between(first, last).energy_j == pytest.approx(100.0 * 0.02 * steps)
        with pytest.raises(ConfigError, match="no longer kept"):
            meter.energy_between(KEEP_FIRST + 10, last)
    assert kept <= KEEP_FIRST + KEEP_RECENT + 4096 + 8
    assert timeline_marks <= KEEP_FIRST + KEEP_RECENT + 4096 + 8
    ph = meter.report.phases["step"]
    assert ph.count == steps
    assert ph.energy_j == pytest.approx(100.0 * 0.01 * steps, rel=1e-9)
    assert ph.duration_s == pytest.approx(0.01 * steps, rel=1e-9)
    assert len(ph.intervals) == min(steps, MAX_INTERVALS)
    assert any(f"occurred {steps} times" in w for w in meter.report.warnings)


def test_phase_on_a_blocking_backend_is_folded_once_its_edges_resolve(clock):
    plug = FakeBackend(
        channels=[FakeChannel("wall", 100.0, scope="system")], clock=clock, blocking=True
    )
    with EnergyMeter(backends=[plug], clock=clock, interval_s=1.0) as meter:
        clock.advance(0.5)
        with meter.phase("p"):  # 0.5 .. 1.2: both edges pending until the sample at 2 s
            clock.advance(0.7)
        w = meter._window
        assert w is not None and w.phases["p"].unfolded
        partial = meter.partial_report()  # as known now: up to the sample at 1 s
        clock.advance(1.0)  # the sample at 2 s resolves the end edge
        meter.mark()  # edges fold at the next mark (or report)
        assert not w.phases["p"].unfolded
    assert partial.phases["p"].energy_j == pytest.approx(50.0, rel=1e-9)
    assert meter.report.phases["p"].energy_j == pytest.approx(70.0, rel=1e-9)


def test_a_channel_that_stops_delivering_does_not_hold_every_later_edge(clock):
    from bertwatt.timeline import _MAX_PENDING

    dead = FakeBackend(name="dead", channels=[FakeChannel("d", 50.0)], clock=clock)
    dead.fail(at_s=1.05, until_s=None)  # answers nothing after 1 s, for the rest of the run
    live = FakeBackend(name="live", channels=[FakeChannel("c", 100.0, kind="counter")], clock=clock)
    meter = EnergyMeter(backends=[dead, live], clock=clock, interval_s=0.5)
    steps = 3 * _MAX_PENDING
    with meter:
        for _ in range(steps):
            with meter.phase("step"):
                clock.advance(0.01)
        w = meter._window
        assert w is not None
        pending = max(len(tl._pending) for tl in w.timelines)
        unfolded = len(w.phases["step"].unfolded)
        kept = len(w.mark_t)
    assert pending <= _MAX_PENDING + 1
    assert unfolded <= _MAX_PENDING + 1
    assert kept <= KEEP_FIRST + KEEP_RECENT + 4096 + 8
    r = meter.report
    ph = r.phases["step"]
    assert ph.count == steps
    assert ph.channels["c"] == pytest.approx(100.0 * 0.01 * steps, rel=1e-9)
    # only its first second (edges read it every 0.01 s until it died at 1.05 s)
    assert 50.0 <= ph.channels["d"] <= 50.0 * 1.05 + 1e-9
    assert r.channel("d").energy_j == pytest.approx(ph.channels["d"], rel=1e-9)
    assert any("resolved at it" in e for e in r.channel("d").events)


def test_flapping_sensor_coverage_is_the_same_for_window_and_phases(clock):
    # 1.5 s of failures every 3 s: dozens of gaps, phase edges inside and outside them.
    backend = FakeBackend(channels=[FakeChannel("p", 100.0)], clock=clock)
    for k in range(40):
        backend.fail(at_s=3.0 * k + 1.0, until_s=3.0 * k + 2.5)
    meter = EnergyMeter(backends=[backend], clock=clock, interval_s=0.1)
    with meter, meter.phase("all"):
        for _ in range(120):
            with meter.phase("step"):
                clock.advance(0.7)
            clock.advance(0.3)
    r = meter.report
    c = r.channel("p")
    assert 0.3 < c.coverage < 0.8
    assert c.coverage == pytest.approx(r.phases["all"].coverage, abs=1e-9)
    assert c.energy_j == pytest.approx(100.0 * c.coverage * r.duration_s, rel=1e-9)
    step = r.phases["step"]
    assert step.energy_j == pytest.approx(100.0 * step.coverage * step.duration_s, rel=1e-9)


def test_gap_list_is_bounded_and_coverage_stays_exact():
    from bertwatt.timeline import _MAX_GAPS, ChannelTimeline

    s = 1_000_000_000
    tl = ChannelTimeline(FakeChannel("p", 100.0).channel, gap_ns=s)
    t = 0
    n = 3 * _MAX_GAPS
    for _ in range(n):  # 0.5 s sampled, then 3 s of failed reads
        tl.add(t, 100.0)
        tl.add(t + s // 2, 100.0)
        tl.fail(t + 2 * s, "timeout")
        t += s // 2 + 3 * s
    tl.add(t, 100.0)
    assert tl.gap_count == n
    assert len(tl.gaps) <= _MAX_GAPS
    assert tl.covered_to(t) == n * (s // 2)
    assert tl.covered_between(t - 4 * s, t) == s // 2
    assert tl.energy_j == pytest.approx(50.0 * n)


if sys.platform == "win32":  # pragma: no cover
    pytest.skip("fork and POSIX paths", allow_module_level=True)
