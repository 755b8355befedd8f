"""The CPU training loop used by the overhead benchmarks, and one measured run of it.

The loop: a small multilayer perceptron (256 -> 512 -> 512 -> 10, ReLU) trained with SGD and
cross-entropy on a fixed random batch of 64, on the CPU with torch's default thread count. Its
step count is calibrated once so that one run lasts about ``loop_s`` seconds; every run then starts
from the same initial weights and does exactly that many steps, so runs do the same arithmetic and
their wall times compare directly.

:func:`run_once` runs the loop bare or inside a meter and returns, for the loop only (meter start
and stop are outside it and timed apart): wall time, process CPU time, and the CPU time of the
meter's sampler thread, read from the thread's POSIX CPU clock (see ``_common.thread_cpu_clock``).
Configurations: ``bare`` (no meter), ``auto`` (``EnergyMeter()``, auto-detected backends),
``fake`` (a FakeBackend), ``auto-1s`` (``EnergyMeter(interval_s=1.0)``), and ``null`` /
``null-lock``: the loop beside a thread that only wakes at 10 Hz (through ``Event.wait``, or
through a raw lock's timed ``acquire`` as the sampler does), the floor any sampler thread pays on
this machine.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import _common as c


@dataclass
class Run:
    """One run of the loop. Times in seconds."""

    config: str
    wall_s: float
    process_cpu_s: float
    sampler_cpu_s: float | None = None
    sampler_schedstat_s: float | None = None
    start_cpu_s: float | None = None
    stop_cpu_s: float | None = None
    start_wall_s: float | None = None
    stop_wall_s: float | None = None
    sampler_reads: int | None = None
    bertwatt_threads: int | None = None
    channels: str = ""
    foreign_cores: float = 0.0


class Loop:
    """The training loop, built once per process."""

    def __init__(self, loop_s: float, seed: int = 0) -> None:
        import torch

        self.torch = torch
        torch.manual_seed(seed)
        self.model = torch.nn.Sequential(
            torch.nn.Linear(256, 512),
            torch.nn.ReLU(),
            torch.nn.Linear(512, 512),
            torch.nn.ReLU(),
            torch.nn.Linear(512, 10),
        )
        self.opt = torch.optim.SGD(self.model.parameters(), lr=1e-3)
        self.x = torch.randn(64, 256)
        self.y = torch.randint(0, 10, (64,))
        self.loss_fn = torch.nn.CrossEntropyLoss()
        self._initial = {k: v.clone() for k, v in self.model.state_dict().items()}
        self.loop_s = loop_s
        self.steps = 50
        self.run()  # warm-up (allocator, kernels)
        self.calibrate()
        self.run()  # warm-up at full length

    def calibrate(self) -> None:
        """Set the step count so that one run lasts about ``loop_s`` under the current load.

        Called once at construction and again before every round (``run_round``): on a machine
        whose other load comes and goes, a step count fixed once made runs last from 0.1 s to
        19 s. Runs within one round still do the same arithmetic.
        """
        self.steps = 50
        self.reset()
        t0 = time.perf_counter()
        self.run()
        per_step = (time.perf_counter() - t0) / self.steps
        self.steps = max(50, round(self.loop_s / per_step))

    def reset(self) -> None:
        """Restore the initial weights, so that every run does the same arithmetic."""
        self.model.load_state_dict(self._initial)

    def run(self) -> None:
        """Train ``self.steps`` steps."""
        model, opt, x, y, loss_fn = self.model, self.opt, self.x, self.y, self.loss_fn
        for _ in range(self.steps):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()

    @property
    def threads(self) -> int:
        """torch intra-op threads."""
        return int(self.torch.get_num_threads())


def fake_backends() -> list[Any]:
    """The FakeBackend configuration: one GPU-like counter channel and one power channel."""
    from bertwatt.testing import FakeBackend, FakeChannel

    return [
        FakeBackend(
            channels=[
                FakeChannel("gpu:0", 250.0, kind="counter"),
                FakeChannel("cpu:package-0", 65.0, kind="power"),
            ]
        )
    ]


def counter_backends() -> list[Any]:
    """Every channel a counter: two GPU-like energy counters (no power channel, no estimate)."""
    from bertwatt.testing import FakeBackend, FakeChannel

    return [
        FakeBackend(
            channels=[
                FakeChannel("gpu:0", 250.0, kind="counter"),
                FakeChannel("gpu:1", 250.0, kind="counter"),
            ]
        )
    ]


def run_once(loop: Loop, config: str, make_backends: Callable[[], list[Any] | None]) -> Run:
    """Run the loop once: ``config == "bare"`` without a meter, else inside one.

    ``make_backends`` returns the meter's ``backends=`` (None: auto-detection).
    """
    loop.reset()
    gc.collect()
    if config == "bare":
        load = c.ForeignLoad()
        w0, p0 = time.perf_counter(), time.process_time()
        loop.run()
        w1, p1 = time.perf_counter(), time.process_time()
        return Run(config, w1 - w0, p1 - p0, foreign_cores=load.cores())
    if config in ("null", "null-lock"):
        return _run_null(loop, lock=config == "null-lock")

    from bertwatt import EnergyMeter

    meter = EnergyMeter(backends=make_backends(), interval_s=INTERVALS.get(config, 0.1))
    s0, sw0 = time.thread_time(), time.perf_counter()
    meter.start()
    s1, sw1 = time.thread_time(), time.perf_counter()
    samplers = c.sampler_threads()  # one per backend
    cpu_clock = c.threads_cpu_clock(samplers)
    n_threads = len(c.bertwatt_threads())
    window = meter._window  # private: read only, to count the sampler's reads
    assert window is not None
    reads0 = sum(g.reads for g in window.groups)
    t0_ns, sched0 = cpu_clock(), c.threads_schedstat_ns(samplers)
    load = c.ForeignLoad()
    w0, p0 = time.perf_counter(), time.process_time()
    loop.run()
    w1, p1 = time.perf_counter(), time.process_time()
    t1_ns, sched1 = cpu_clock(), c.threads_schedstat_ns(samplers)
    foreign = load.cores()
    reads = sum(g.reads for g in window.groups) - reads0
    names = ",".join(tl.channel.name for tl in window.timelines)
    e0, ew0 = time.thread_time(), time.perf_counter()
    report = meter.stop()
    e1, ew1 = time.thread_time(), time.perf_counter()
    if report.duration_s <= 0:
        raise RuntimeError("the meter produced an empty window")
    return Run(
        config,
        w1 - w0,
        p1 - p0,
        sampler_cpu_s=(t1_ns - t0_ns) / 1e9,
        sampler_schedstat_s=(sched1 - sched0) / 1e9,
        start_cpu_s=s1 - s0,
        stop_cpu_s=e1 - e0,
        start_wall_s=sw1 - sw0,
        stop_wall_s=ew1 - ew0,
        sampler_reads=reads,
        bertwatt_threads=n_threads,
        channels=names,
        foreign_cores=foreign,
    )


def _run_null(loop: Loop, interval_s: float = 0.1, *, lock: bool = False) -> Run:
    """The loop beside a thread that only wakes every ``interval_s`` and does nothing.

    Its CPU time is the floor any sampling thread pays on this machine for waking up at that
    rate (timer, context switch, re-acquiring the GIL), measured like the sampler's. It sleeps in
    ``Event.wait(interval_s)``, or with ``lock`` in a held raw lock's ``acquire(True,
    interval_s)``, the sampler's own wait.
    """
    stop = threading.Event()
    wakes = [0]
    held = threading.Lock()
    held.acquire()

    def idle() -> None:
        if lock:
            acquire = held.acquire
            while not stop.is_set():
                acquire(True, interval_s)
                wakes[0] += 1
            return
        while not stop.wait(interval_s):
            wakes[0] += 1

    th = threading.Thread(target=idle, name="null-sampler", daemon=True)
    th.start()
    cpu_clock = c.thread_cpu_clock(th)
    assert th.native_id is not None
    n0, t0_ns, sched0 = wakes[0], cpu_clock(), c.task_schedstat_ns(th.native_id)
    load = c.ForeignLoad()
    w0, p0 = time.perf_counter(), time.process_time()
    loop.run()
    w1, p1 = time.perf_counter(), time.process_time()
    n1, t1_ns, sched1 = wakes[0], cpu_clock(), c.task_schedstat_ns(th.native_id)
    stop.set()
    th.join()
    return Run(
        "null-lock" if lock else "null",
        w1 - w0,
        p1 - p0,
        sampler_cpu_s=(t1_ns - t0_ns) / 1e9,
        sampler_schedstat_s=(sched1 - sched0) / 1e9,
        sampler_reads=n1 - n0,
        bertwatt_threads=0,
        channels="(none: lock.acquire loop)" if lock else "(none: Event.wait loop)",
        foreign_cores=load.cores(),
    )


CONFIGS: dict[str, Callable[[], list[Any] | None]] = {
    "bare": lambda: None,
    "auto": lambda: None,
    "fake": fake_backends,
    "counters": counter_backends,
    "null": lambda: None,
    "null-lock": lambda: None,
    "auto-1s": lambda: None,
}

#: Sampling interval per configuration (default 0.1 s, the meter's default).
INTERVALS = {"auto-1s": 1.0}


def run_round(loop: Loop, seq: list[str], *, max_wait_s: float) -> tuple[list[Run], float]:
    """Wait (up to ``max_wait_s``) for other processes to go quiet, warm up, run ``seq`` in order.

    Returns the runs and the other processes' load measured just before the round (cores).
    """
    before = c.wait_quiet(timeout_s=max_wait_s) if max_wait_s > 0 else 0.0
    loop.calibrate()  # the step count for this round's load
    loop.reset()
    loop.run()  # untimed warm-up: after the quiet wait the CPU and caches are cold
    return [run_once(loop, name, CONFIGS[name]) for name in seq], before


@dataclass
class Rounds:
    """The rounds of a loop benchmark: those kept for the figures, and every one run."""

    clean: list[list[Run]]
    all: list[list[Run]]
    max_other_cores: float
    wanted: int

    @property
    def enough(self) -> bool:
        """Whether enough rounds ran without other load (all asked for, or at least 3)."""
        return len(self.clean) >= min(3, self.wanted)

    @property
    def used(self) -> list[list[Run]]:
        """The clean rounds if there are enough, else every round (then flagged)."""
        return self.clean if self.enough else self.all

    @property
    def note(self) -> str:
        """How many rounds were kept, and why."""
        n_all, n_clean = len(self.all), len(self.clean)
        if n_clean == n_all:
            return f"all {n_all} rounds kept (other processes <= {self.max_other_cores:g} cores)"
        if self.enough:
            return (
                f"{n_clean} of {n_all} rounds kept (dropped: another process used more than "
                f"{self.max_other_cores:g} cores during one of its runs)"
            )
        return (
            f"WARNING: only {n_clean} of {n_all} rounds ran without other processes using more "
            f"than {self.max_other_cores:g} cores; figures use all rounds and are contaminated"
        )


def run_rounds(loop: Loop, order: list[str], args: Any) -> Rounds:
    """Run rounds of ``order`` (rotated by one per kept round) until enough are clean.

    A round is clean when other processes used at most ``args.max_other_cores`` during each of
    its runs. Dropped rounds are re-run with the same rotation, up to three times as many
    rounds as asked for in total.
    """
    _, rounds, max_wait = loop_settings(args)
    clean: list[list[Run]] = []
    every: list[list[Run]] = []
    while len(clean) < rounds and len(every) < 3 * rounds:
        k = len(clean) % len(order)
        seq = order[k:] + order[:k]
        got, before = run_round(loop, seq, max_wait_s=max_wait)
        every.append(got)
        ok = max(x.foreign_cores for x in got) <= args.max_other_cores
        if ok:
            clean.append(got)
        line = describe_round(len(every) - 1, rounds, got, before)
        print(line + ("" if ok else "  -> dropped"), flush=True)
    return Rounds(clean, every, args.max_other_cores, rounds)


def add_loop_options(p: Any, *, quick_rounds: int, full_rounds: int) -> None:
    """The loop benchmarks' options: run length, rounds, and how long to wait for quiet."""
    p.add_argument("--loop-s", type=float, default=None, help="seconds per loop run")
    p.add_argument("--rounds", type=int, default=None, help=f"default {full_rounds}")
    p.add_argument(
        "--max-wait-s",
        type=float,
        default=None,
        help="before each round, wait up to this long for other processes to go quiet "
        "(default 300, --quick 5; 0 disables)",
    )
    p.add_argument(
        "--max-other-cores",
        type=float,
        default=0.1,
        help="drop (and re-run) a round when other processes used more cores than this during "
        "one of its runs (default 0.1)",
    )
    p.set_defaults(_quick_rounds=quick_rounds, _full_rounds=full_rounds)


def loop_settings(args: Any) -> tuple[float, int, float]:
    """(loop seconds, rounds, max wait seconds) from the parsed options."""
    loop_s = args.loop_s or (1.0 if args.quick else 2.0)
    rounds = args.rounds or (args._quick_rounds if args.quick else args._full_rounds)
    wait = args.max_wait_s if args.max_wait_s is not None else (5.0 if args.quick else 300.0)
    return loop_s, rounds, wait


def describe_round(r: int, rounds: int, got: list[Run], before: float) -> str:
    """One line per round: each run's wall time (and sampler CPU), and other processes' load."""
    parts = []
    for x in got:
        txt = f"{x.config} {x.wall_s:.3f}s"
        if x.sampler_cpu_s is not None:
            txt += f" thr {x.sampler_cpu_s * 1e3:.2f}ms"
        parts.append(txt)
    foreign = max(x.foreign_cores for x in got)
    return (
        f"round {r + 1} (until {rounds} clean): "
        + "  ".join(parts)
        + f"  | other procs: {before:.2f} cores before, max {foreign:.2f} during"
    )
