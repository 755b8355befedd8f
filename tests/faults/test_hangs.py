"""Hangs and crashes of user code: no backend answer, hang or sharing can reach the measured code.

Each fake hangs on a ``threading.Event`` that the ``hangs`` fixture sets at teardown, so no thread
is left blocked after a test. Timeouts are short options (0.2-0.5 s); a hang is 60 s, so a meter
that waited for one would miss every bound here by a minute, while the bounds leave seconds of
slack for a loaded 2-core machine.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Collection, Iterator
from typing import Any

import pytest

from bertwatt.backends.base import Availability, Channel, Provenance
from bertwatt.clock import SystemClock
from bertwatt.meter import EnergyMeter
from bertwatt.testing import FakeBackend, FakeChannel, FakeClock

HANG_S = 60.0
NAN = math.nan
#: Scheduling delay a loaded 2-core machine may add to a bound (two CPU-bound processes beside the
#: suite delayed stop() by up to 0.9 s). Every fault here is a 60 s hang, so a meter that waited
#: for one misses these bounds by a minute, slack or not.
SLACK_S = 1.5


class Hangs:
    """One release switch for every hang of a test."""

    def __init__(self) -> None:
        self.released = threading.Event()

    def wait(self) -> None:
        self.released.wait(HANG_S)


@pytest.fixture
def hangs() -> Iterator[Hangs]:
    h = Hangs()
    yield h
    h.released.set()


def power_channel(name: str) -> Channel:
    return Channel(
        name=name,
        domain="other",
        kind="power",
        provenance=Provenance(kind="measured", source="test fake", scope="other"),
    )


class Scripted:
    """A backend of power channels whose probe(), read() and close() misbehave on request.

    Args:
        answer: ``f(n_read) -> what read() returns`` (default: 100 W on every channel).
        probe_hangs / close_hangs: block in that call until ``hangs`` is released.
        read_hangs_from: block in read() from that read on (0: the first read).
        read_delay_s: every read takes this long.
    """

    def __init__(
        self,
        hangs: Hangs,
        name: str = "scripted",
        *,
        channels: int = 1,
        blocking: bool = False,
        answer: Callable[[int], Any] | None = None,
        probe_hangs: bool = False,
        read_hangs_from: int | None = None,
        close_hangs: bool = False,
        read_delay_s: float = 0.0,
    ) -> None:
        self.hangs = hangs
        self.name = name
        self.blocking = blocking
        self.channels = tuple(power_channel(f"{name}:{i}") for i in range(channels))
        self.answer = answer or (lambda n: ([100.0] * channels, None))
        self.probe_hangs = probe_hangs
        self.read_hangs_from = read_hangs_from
        self.close_hangs = close_hangs
        self.read_delay_s = read_delay_s
        self.reads = 0
        self.probes = 0
        self.closed = 0

    def probe(self) -> Availability:
        self.probes += 1
        if self.probe_hangs:
            self.hangs.wait()
        return Availability(channels=self.channels)

    def read(self) -> Any:
        n = self.reads
        self.reads += 1
        if self.read_hangs_from is not None and n >= self.read_hangs_from:
            self.hangs.wait()
        if self.read_delay_s:
            time.sleep(self.read_delay_s)
        return self.answer(n)

    def close(self) -> None:
        self.closed += 1
        if self.close_hangs:
            self.hangs.wait()


def healthy(
    clock: Any = None, name: str = "good", power_w: float = 100.0, kind: str = "counter"
) -> FakeBackend:
    """A healthy backend; a counter by default, whose energy is exact whatever the scheduling."""
    return FakeBackend(
        name=name,
        channels=[FakeChannel(name, power_w, kind=kind)],  # type: ignore[arg-type]
        clock=clock or SystemClock(),
    )


def bertwatt_threads(before: Collection[threading.Thread] = ()) -> list[str]:
    """Live sampler threads not in ``before`` (an earlier test's may still be ending)."""
    return [
        t.name
        for t in threading.enumerate()
        if t.name.startswith("bertwatt-sampler") and t not in before
    ]


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.monotonic()
    out = fn()
    return out, time.monotonic() - t0


# --- 1. a broken answer is a gap with its reason, never an exception ----------------------------

GARBAGE: dict[str, Callable[[int], Any]] = {
    "[None] as values": lambda n: ([None], None),
    "a bare string as errors": lambda n: ([NAN], "sensor on fire"),
    "too many values": lambda n: ([1.0, 2.0], None),
    "no values": lambda n: ([], None),
    "a string value": lambda n: (["12"], None),
    "a bool value": lambda n: ([True], None),
    "None instead of a pair": lambda n: None,
    "a bare float": lambda n: 100.0,
    "a triple": lambda n: ([1.0], None, "x"),
    "a string as values": lambda n: ("100", None),
    "a dict as values": lambda n: ({0: 100.0}, None),
    "an error for a channel that is not there": lambda n: ([NAN], {5: "no"}),
    "a string key in errors": lambda n: ([NAN], {"0": "no"}),
    "values that cannot be listed": lambda n: (iter_raises(), None),
}


def iter_raises() -> Any:
    class Bad:
        def __iter__(self) -> Any:
            raise RuntimeError("no")

    return Bad()


@pytest.mark.parametrize("what", list(GARBAGE))
def test_a_malformed_answer_never_reaches_user_code(what: str, hangs: Hangs) -> None:
    clock = FakeClock()
    bad = Scripted(hangs, "bad", answer=GARBAGE[what])
    good = healthy(clock)
    with EnergyMeter(backends=[bad, good], clock=clock) as meter:
        with meter.phase("train"):
            clock.advance(2.0)
        meter.mark()
        clock.advance(1.0)
    rep = meter.report
    assert rep.channel("good").energy_j == pytest.approx(300.0, rel=1e-9)
    assert rep.phases["train"].energy_j == pytest.approx(200.0, rel=1e-9)
    b = rep.channel("bad:0")
    assert b.samples == 0 and b.failed_reads > 0
    assert b.energy_j is None or b.energy_j == 0.0 or not rep.channel("bad:0").coverage
    assert any("bad" in e for e in b.events), b.events


def test_the_reason_of_a_malformed_answer_is_reported(hangs: Hangs) -> None:
    clock = FakeClock()
    bad = Scripted(hangs, "bad", answer=lambda n: ([NAN], "sensor on fire"))
    with EnergyMeter(backends=[bad, healthy(clock)], clock=clock) as meter:
        clock.advance(1.0)
    (event,) = meter.report.channel("bad:0").events
    assert "bad.read() returned errors 'sensor on fire', not a mapping" in event


def test_a_value_of_the_wrong_type_fails_only_its_channel(hangs: Hangs) -> None:
    clock = FakeClock()
    two = Scripted(hangs, "two", channels=2, answer=lambda n: ([None, 50.0], None))
    with EnergyMeter(backends=[two], clock=clock) as meter:
        clock.advance(2.0)
    rep = meter.report
    assert rep.channel("two:1").energy_j == pytest.approx(100.0, rel=1e-9)
    assert rep.channel("two:0").samples == 0
    assert "two.read() returned None for channel 0, not a number" in rep.channel("two:0").events[0]


def test_a_backend_that_turns_broken_mid_run_leaves_a_gap_and_recovers(hangs: Hangs) -> None:
    clock = FakeClock()
    t0 = clock.now_s
    # garbage from 1 s to 3 s into the window, fine before and after
    flaky = Scripted(
        hangs,
        "flaky",
        answer=lambda n: [None] if 1.0 <= clock.now_s - t0 < 3.0 else ([100.0], None),
    )
    with EnergyMeter(backends=[flaky], clock=clock) as meter:
        clock.advance(8.0)
    ch = meter.report.channel("flaky:0")
    assert ch.failed_reads > 0 and ch.samples > 40
    assert ch.coverage < 0.8  # the broken stretch is a gap, not bridged by a guess
    assert ch.energy_j == pytest.approx(100.0 * ch.coverage * meter.report.duration_s, rel=0.02)


def test_a_broken_backend_on_the_real_clock_stops_with_the_meter(hangs: Hangs) -> None:
    before = threading.enumerate()
    bad = Scripted(hangs, "bad", answer=lambda n: ([None], "x"))
    meter = EnergyMeter(backends=[bad, healthy()], interval_s=0.02)
    with pytest.raises(KeyError, match="user's own error"), meter:
        with meter.phase("p"):
            time.sleep(0.1)
            meter.mark()
        raise KeyError("user's own error")
    assert bertwatt_threads(before) == []
    assert meter.report.channel("good").energy_j > 0
    assert meter.report.channel("bad:0").failed_reads > 0


def test_a_backend_raising_system_exit_on_the_sampler_thread_is_a_failed_read(
    hangs: Hangs,
) -> None:
    def answer(n: int) -> Any:
        if n >= 1:
            raise SystemExit(3)
        return [100.0], None

    before = threading.enumerate()
    bad = Scripted(hangs, "bad", answer=answer)
    with EnergyMeter(backends=[bad, healthy()], interval_s=0.02) as meter:
        time.sleep(0.2)
    assert meter.report.channel("bad:0").failed_reads > 0
    assert any("SystemExit" in e for e in meter.report.channel("bad:0").events)
    assert bertwatt_threads(before) == []


# --- 2. one slow or hung backend never delays another ------------------------------------------


def test_a_slow_backend_delays_neither_another_backend_nor_the_marks(hangs: Hangs) -> None:
    slow = Scripted(hangs, "slow", read_delay_s=0.3)
    good = healthy(kind="power")
    meter = EnergyMeter(backends=[slow, good], interval_s=0.02, edge_timeout_s=0.1)
    meter.start()
    time.sleep(0.2)
    mark_s = []
    for _ in range(10):
        mark_s.append(timed(meter.mark)[1])
        time.sleep(0.05)
    rep = meter.stop()
    g = rep.channel("good")
    # beside a 0.3 s backend, the healthy 100 W power channel kept its own pace (sharing a thread
    # with it, it would be read every 0.3 s: 7 % of the samples)
    assert g.samples >= 0.3 * rep.duration_s / 0.02
    assert g.energy_j == pytest.approx(100.0 * g.coverage * rep.duration_s, rel=0.05)
    assert g.coverage > 0.5
    # one edge waited for the slow read (at most edge_timeout_s), the others hardly at all
    assert sorted(mark_s)[-3] < 0.1 and max(mark_s) < 0.1 + SLACK_S
    assert any("'slow' did not answer a window edge within 0.1 s" in w for w in rep.warnings)
    assert rep.channel("slow:0").samples >= 2


def test_a_hung_backend_is_isolated_and_its_gap_reported(hangs: Hangs) -> None:
    stuck = Scripted(hangs, "stuck", read_hangs_from=5)
    good = healthy()
    meter = EnergyMeter(
        backends=[stuck, good], interval_s=0.02, edge_timeout_s=0.1, slow_read_timeout_s=0.3
    )
    meter.start()
    time.sleep(0.4)
    edges = [timed(meter.mark)[1] for _ in range(20)]
    rep, stop_s = timed(meter.stop)
    assert sum(edges) < 1.5  # 20 edges that each waited 0.1 s would take 2 s
    assert stop_s < 0.3 + 1.0 + SLACK_S
    g = rep.channel("good")
    # sharing a thread with the hung backend, it would have no sample after the hang
    assert g.samples >= 0.25 * rep.duration_s / 0.02
    assert g.energy_j == pytest.approx(100.0 * rep.duration_s, rel=0.05)
    s = rep.channel("stuck:0")
    assert s.coverage < 0.6
    assert any("'stuck' did not answer within 0.3 s of stop()" in w for w in rep.warnings)
    assert any("had not returned" in e for e in s.events)


def test_a_recovered_backend_is_read_at_edges_again(hangs: Hangs) -> None:
    once = FakeBackend(
        name="gpu", channels=[FakeChannel("g", 100.0, kind="counter")], clock=SystemClock()
    ).hang(at_s=0.0, for_s=HANG_S)
    meter = EnergyMeter(backends=[once], interval_s=0.01, edge_timeout_s=0.2, probe_timeout_s=0.3)
    with meter:  # the first read hangs: start() gives up on it after probe_timeout_s
        meter.mark()  # not read at the edge while it hangs
        once.release()
        group = meter._window.groups[0]  # type: ignore[union-attr]
        deadline = time.monotonic() + 10.0  # ten prompt reads, however busy the machine
        while not group.at_edges and time.monotonic() < deadline:
            time.sleep(0.01)
        before = once.reads
        meter.mark()
        after = once.reads
    assert after > before  # the edge read it again
    notes = [w for w in meter.report.warnings if "'gpu'" in w]
    assert any("did not answer a window edge" in w or "first read()" in w for w in notes)
    assert any("answers promptly again" in w for w in notes)


# --- 3. every call into a backend is bounded ---------------------------------------------------


def test_default_probe_timeout_is_at_most_ten_seconds() -> None:
    assert EnergyMeter().config.probe_timeout_s <= 10.0


def test_a_hung_probe_does_not_block_start(hangs: Hangs) -> None:
    stuck = Scripted(hangs, "stuck", probe_hangs=True)
    meter = EnergyMeter(backends=[stuck, healthy()], interval_s=0.02, probe_timeout_s=0.3)
    _, start_s = timed(meter.start)
    time.sleep(0.1)
    rep = meter.stop()
    assert start_s < 0.3 + SLACK_S
    (entry,) = [u for u in rep.unavailable if u.what == "stuck"]
    assert "probe() did not return within 0.3 s" in entry.reason
    assert entry.fix and "probe_timeout_s" in entry.fix
    assert rep.channel("good").energy_j > 0
    # when the probe returns after all, the abandoned backend is closed (nobody uses it)
    hangs.released.set()
    deadline = time.monotonic() + 5.0
    while not stuck.closed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stuck.closed == 1


def test_a_first_read_that_hangs_does_not_block_start(hangs: Hangs) -> None:
    stuck = Scripted(hangs, "stuck", read_hangs_from=0)
    meter = EnergyMeter(
        backends=[stuck, healthy()], interval_s=0.02, probe_timeout_s=0.3, slow_read_timeout_s=0.2
    )
    _, start_s = timed(meter.start)
    time.sleep(0.2)
    marks_s = timed(lambda: [meter.mark() for _ in range(5)])[1]
    rep, stop_s = timed(meter.stop)
    assert start_s < 0.3 + SLACK_S
    assert marks_s < 0.5 + SLACK_S  # its edges are not waited for
    assert stop_s < 0.2 + 1.0 + SLACK_S
    assert any("first read() did not return within" in w for w in rep.warnings)
    assert rep.channel("stuck:0").samples == 0
    assert rep.channel("good").energy_j > 0


def test_a_close_that_hangs_does_not_block_stop(hangs: Hangs) -> None:
    stuck = Scripted(hangs, "stuck", close_hangs=True)
    meter = EnergyMeter(backends=[stuck, healthy()], interval_s=0.02, slow_read_timeout_s=0.2)
    meter.start()
    time.sleep(0.1)
    rep, stop_s = timed(meter.stop)
    assert stop_s < 0.2 + 1.0 + SLACK_S
    assert stuck.closed == 1
    assert any("'stuck': close() did not return within 0.2 s" in w for w in rep.warnings)
    assert rep.channel("stuck:0").energy_j > 0  # what it measured is kept


def test_hung_blocking_backends_do_not_add_up_in_stop(hangs: Hangs) -> None:
    plugs = [
        Scripted(hangs, f"plug{i}", blocking=True, read_hangs_from=2, close_hangs=True)
        for i in range(3)
    ]
    gpu = Scripted(hangs, "gpu", read_hangs_from=3)
    meter = EnergyMeter(backends=[*plugs, gpu, healthy()], interval_s=0.02, slow_read_timeout_s=1.0)
    meter.start()
    time.sleep(0.2)
    rep, stop_s = timed(meter.stop)
    # one bound for all of them: 1 s per hung backend would be 4 s, twice the timeout 2 s + more
    assert stop_s < 1.0 + 1.0 + SLACK_S
    hung = [w for w in rep.warnings if "did not answer within 1 s of stop()" in w]
    assert len(hung) == 4
    assert rep.channel("good").energy_j == pytest.approx(100.0 * rep.duration_s, rel=0.1)


def test_stop_is_bounded_even_with_a_zero_timeout(hangs: Hangs) -> None:
    plug = Scripted(hangs, "plug", blocking=True, read_hangs_from=1)
    meter = EnergyMeter(backends=[plug, healthy()], interval_s=0.02, slow_read_timeout_s=0.0)
    meter.start()
    time.sleep(0.1)
    _, stop_s = timed(meter.stop)
    assert stop_s < 1.0 + SLACK_S


# --- 4. nested meters sharing one backend object -----------------------------------------------


def test_nested_meters_share_a_backend_and_only_the_last_closes_it() -> None:
    clock = FakeClock()
    gpu = FakeBackend(name="gpu", channels=[FakeChannel("g", 100.0, kind="counter")], clock=clock)
    with EnergyMeter(backends=[gpu], clock=clock) as outer:
        clock.advance(1.0)
        with EnergyMeter(backends=[gpu], clock=clock) as inner:
            clock.advance(2.0)
        assert gpu.closed == 0  # the inner stop() did not close it under the outer meter
        assert gpu.probes == 1  # nor probe it again
        clock.advance(3.0)
    assert gpu.closed == 1
    assert inner.report.energy_j == pytest.approx(200.0, rel=1e-12)
    assert outer.report.energy_j == pytest.approx(600.0, rel=1e-12)
    assert outer.report.channel("g").coverage == pytest.approx(1.0)
    # once nobody uses it, a new meter probes it again
    with EnergyMeter(backends=[gpu], clock=clock):
        clock.advance(1.0)
    assert (gpu.probes, gpu.closed) == (2, 2)


def test_overlapping_meters_on_threads_share_a_backend() -> None:
    gpu = FakeBackend(name="gpu", channels=[FakeChannel("g", 100.0, kind="counter")])
    outer = EnergyMeter(backends=[gpu], interval_s=0.02).start()
    inner = EnergyMeter(backends=[gpu], interval_s=0.02).start()
    time.sleep(0.2)
    outer_first = outer.stop()  # the outer one stops first here: still not closed
    assert gpu.closed == 0
    time.sleep(0.1)
    rep = inner.stop()
    assert gpu.closed == 1
    assert rep.energy_j == pytest.approx(100.0 * rep.duration_s, rel=0.05)
    assert outer_first.energy_j == pytest.approx(100.0 * outer_first.duration_s, rel=0.05)


# --- fork() inside a metered block: the child's copy stops at once -----------------------------


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_fork_child_stops_its_copy_of_the_sampler_at_once() -> None:
    import os

    import bertwatt.report.models  # noqa: F401 - imported before the fork, not timed in the child

    good = healthy()
    # a child that waited for the parent's threads would take edge_timeout_s + 5 s
    meter = EnergyMeter(backends=[good], interval_s=0.02, slow_read_timeout_s=5.0)
    meter.start()
    time.sleep(0.1)
    pid = os.fork()
    if pid == 0:  # the child: no sampler thread exists here; edges and stop() must not wait
        code = 1
        try:
            t0 = time.monotonic()
            meter.mark()
            meter.stop(warn=False)
            code = 0 if time.monotonic() - t0 < 2.0 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    time.sleep(0.1)
    rep = meter.stop()
    assert os.waitstatus_to_exitcode(status) == 0
    assert good.closed == 1  # closed once, by the parent
    assert rep.channel("good").energy_j == pytest.approx(100.0 * rep.duration_s, rel=0.05)


# --- an interrupted start() leaves nothing running and nothing held ------------------------------


class InterruptingClock(SystemClock):
    """A real clock whose wait() is interrupted (Ctrl-C during the idle baseline)."""

    def wait(self, event: threading.Event, timeout_s: float) -> bool:
        raise KeyboardInterrupt


def test_ctrl_c_during_start_stops_the_threads_and_releases_the_backend() -> None:
    before = threading.enumerate()
    gpu = FakeBackend(name="gpu", channels=[FakeChannel("g", 100.0, kind="counter")])
    meter = EnergyMeter(backends=[gpu], baseline_s=1.0, clock=InterruptingClock())
    with pytest.raises(KeyboardInterrupt):
        meter.start()
    assert not meter.running
    deadline = time.monotonic() + 5.0
    while (bertwatt_threads(before) or not gpu.closed) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert bertwatt_threads(before) == [] and gpu.closed == 1
    with EnergyMeter(backends=[gpu], interval_s=0.02):  # not held as "in use" by the failed start
        time.sleep(0.05)
    assert (gpu.probes, gpu.closed) == (2, 2)


@pytest.mark.parametrize("name", [None, "", "  ", 3])
def test_a_backend_without_a_usable_name_is_refused_at_construction(name: object) -> None:
    from bertwatt.errors import ConfigError

    backend = FakeBackend()
    backend.name = name  # type: ignore[assignment]
    with pytest.raises(ConfigError, match="name must be a non-empty string"):
        EnergyMeter(backends=[backend])


def test_a_probe_returning_garbage_is_unavailable_with_the_reason(hangs: Hangs) -> None:
    class Garbage(Scripted):
        def probe(self) -> Any:
            return {"channels": ["gpu:0"]}

    clock = FakeClock()
    with EnergyMeter(backends=[Garbage(hangs, "junk"), healthy(clock)], clock=clock) as meter:
        clock.advance(1.0)
    (entry,) = [u for u in meter.report.unavailable if u.what == "junk"]
    assert "probe() returned {'channels': ['gpu:0']}, not an Availability" in entry.reason
    assert meter.report.channel("good").energy_j == pytest.approx(100.0)


# --- auto-detection: a hung sensor does not cost the CPU estimate its probe time -----------------


def test_a_hung_sensor_in_auto_detection_keeps_the_cpu_estimate(
    monkeypatch: pytest.MonkeyPatch, hangs: Hangs
) -> None:
    import bertwatt.backends

    stuck = Scripted(hangs, "nvml", probe_hangs=True)
    monkeypatch.setattr(bertwatt.backends, "default_backends", lambda: [stuck])
    from bertwatt.backends.estimate import EstimateBackend

    # a first probe imports psutil and reads the TDP table (up to 1.5 s beside two CPU-bound
    # processes): done once here, so the meter's estimate probe is quick
    EstimateBackend().probe()
    meter = EnergyMeter(probe_timeout_s=1.0, interval_s=0.05)
    _, start_s = timed(meter.start)
    time.sleep(0.2)
    rep = meter.stop()
    assert start_s < 1.0 + SLACK_S
    assert [u.what for u in rep.unavailable] == ["nvml"], rep.unavailable
    assert rep.channel("cpu:estimate").samples > 0


def test_the_estimate_probed_alongside_is_closed_when_a_sensor_measures_the_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import bertwatt.backends
    from bertwatt.backends.estimate import EstimateBackend

    made: list[object] = []
    closed: list[object] = []
    create = bertwatt.backends.create

    def create_and_keep(name: str, **options: Any) -> Any:
        made.append(create(name, **options))
        return made[-1]

    monkeypatch.setattr(bertwatt.backends, "create", create_and_keep)
    monkeypatch.setattr(EstimateBackend, "close", lambda self: closed.append(self))
    cpu = FakeBackend(
        name="rapl",
        channels=[FakeChannel("cpu:package-0", 30.0, kind="counter", scope="cpu-package")],
    )
    monkeypatch.setattr(bertwatt.backends, "default_backends", lambda: [cpu])
    with EnergyMeter(interval_s=0.05) as meter:
        time.sleep(0.1)
    assert [c.name for c in meter.report.channels] == ["cpu:package-0"]
    (estimate,) = made
    deadline = time.monotonic() + 10.0
    while estimate not in closed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [c for c in closed if c is estimate] == [estimate]
