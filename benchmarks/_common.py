"""Shared helpers for bertwatt's benchmark scripts (not part of the package).

Measurement hygiene follows pyperf: warm up first, repeat, report the median with its spread
(min, quartiles, max), and compare configurations as ratios measured in the same run, alternating
them so that drift of a noisy machine hits both alike.

Every benchmark script:

- prints its figures and its target, and exits 1 when the target is missed (0 when met);
- takes ``--quick`` for a short smoke run (fewer repeats; figures are then coarser);
- takes ``--json PATH`` to write its :class:`Result` for ``run_all.py``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import shlex
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent


# --------------------------------------------------------------------------- statistics
@dataclass(frozen=True)
class Spread:
    """Median and spread of repeated measurements (same unit as the inputs)."""

    n: int
    median: float
    min: float
    q1: float
    q3: float
    max: float

    def text(self, fmt: str = "{:.3g}", unit: str = "") -> str:
        """``median (IQR q1..q3, min..max, n=N)`` with ``fmt`` applied to every figure."""
        f = fmt.format
        return (
            f"{f(self.median)}{unit} (IQR {f(self.q1)}..{f(self.q3)}, "
            f"min..max {f(self.min)}..{f(self.max)}, n={self.n})"
        )


def spread(values: Sequence[float]) -> Spread:
    """Median, quartiles (inclusive method) and range of ``values``."""
    xs = sorted(float(v) for v in values)
    if not xs:
        raise ValueError("no values")
    if len(xs) == 1:
        q1 = q3 = xs[0]
    else:
        q1, _, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    return Spread(len(xs), statistics.median(xs), xs[0], q1, q3, xs[-1])


def bootstrap_median_interval(
    values: Sequence[float], *, level: float = 0.95, resamples: int = 4000, seed: int = 1
) -> tuple[float, float]:
    """Percentile bootstrap interval of the median of ``values`` (deterministic seed)."""
    rng = random.Random(seed)
    xs = list(values)
    n = len(xs)
    meds = sorted(statistics.median(rng.choices(xs, k=n)) for _ in range(resamples))
    lo = meds[int((1 - level) / 2 * resamples)]
    hi = meds[min(resamples - 1, int((1 + level) / 2 * resamples))]
    return lo, hi


# --------------------------------------------------------------------------- CPU clocks
def thread_cpu_clock(thread: threading.Thread) -> Callable[[], int]:
    """A function returning ``thread``'s CPU time (user + system) in ns, readable from any thread.

    Uses the thread's POSIX CPU-time clock (``pthread_getcpuclockid`` + ``clock_gettime``, see
    clock_getcpuclockid(3)); valid only while the thread is alive.
    """
    if thread.ident is None:
        raise RuntimeError(f"thread {thread.name} has not started")
    clock_id = time.pthread_getcpuclockid(thread.ident)
    return lambda: time.clock_gettime_ns(clock_id)


def task_schedstat_ns(native_id: int) -> int:
    """On-CPU ns of one thread of this process from ``/proc/self/task/<tid>/schedstat`` field 1.

    An independent cross-check of :func:`thread_cpu_clock` (proc(5): "time spent on the cpu").
    """
    with open(f"/proc/self/task/{native_id}/schedstat", encoding="ascii") as fh:
        return int(fh.read().split()[0])


def find_thread(name: str, *, timeout_s: float = 2.0) -> threading.Thread:
    """The live thread called ``name`` (bertwatt names its sampler ``bertwatt-sampler``)."""
    deadline = time.monotonic() + timeout_s
    while True:
        for t in threading.enumerate():
            if t.name == name and t.ident is not None:
                return t
        if time.monotonic() > deadline:
            names = [t.name for t in threading.enumerate()]
            raise RuntimeError(f"no live thread named {name!r}; threads: {names}")
        time.sleep(0.001)


def sampler_threads(*, timeout_s: float = 2.0) -> list[threading.Thread]:
    """bertwatt's live sampler threads: one per backend, named ``bertwatt-sampler-<backend>``."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = [
            t
            for t in threading.enumerate()
            if t.name.startswith("bertwatt-sampler") and t.ident is not None
        ]
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.001)
    if not found:
        names = [t.name for t in threading.enumerate()]
        raise RuntimeError(f"no live bertwatt sampler thread; threads: {names}")
    return found


def threads_cpu_clock(threads: list[threading.Thread]) -> Callable[[], int]:
    """A function returning the summed CPU time (ns) of ``threads`` (see thread_cpu_clock)."""
    clocks = [thread_cpu_clock(t) for t in threads]
    return lambda: sum(clock() for clock in clocks)


def threads_schedstat_ns(threads: list[threading.Thread]) -> int:
    """Summed on-CPU ns of ``threads`` from schedstat (see task_schedstat_ns)."""
    return sum(task_schedstat_ns(t.native_id) for t in threads if t.native_id is not None)


def bertwatt_threads() -> list[threading.Thread]:
    """Live threads started by bertwatt (their names start with ``bertwatt-``)."""
    return [t for t in threading.enumerate() if t.name.startswith("bertwatt-")]


def _busy_s() -> tuple[float, float, float]:
    """(machine busy CPU s, CPU s of this process and its reaped children, monotonic s) now.

    /proc/stat counts in USER_HZ (proc(5)).
    """
    with open("/proc/stat", encoding="ascii") as fh:
        f = [int(x) for x in fh.readline().split()[1:8]]
    user, nice, system, _idle, _iowait, irq, softirq = f
    hz = os.sysconf("SC_CLK_TCK")
    t = os.times()
    own = t.user + t.system + t.children_user + t.children_system
    return (user + nice + system + irq + softirq) / hz, own, time.monotonic()


class ForeignLoad:
    """CPU used by *other* processes since construction, in cores (machine busy minus ours and
    our finished child processes').

    Other work on a 2-core VM (another test run, a build) changes a loop's wall time by far
    more than the effects measured here, so every run records it.
    """

    def __init__(self) -> None:
        self._start = _busy_s()

    def cores(self) -> float:
        """Mean number of cores other processes kept busy since construction."""
        busy1, own1, t1 = _busy_s()
        busy0, own0, t0 = self._start
        return max(0.0, ((busy1 - busy0) - (own1 - own0)) / max(t1 - t0, 1e-9))


def wait_quiet(max_cores: float = 0.15, *, timeout_s: float = 300.0, probe_s: float = 2.0) -> float:
    """Wait until other processes use less than ``max_cores`` over ``probe_s``; returns the last
    figure (the caller records it; after ``timeout_s`` it goes on regardless)."""
    deadline = time.monotonic() + timeout_s
    while True:
        load = ForeignLoad()
        time.sleep(probe_s)
        cores = load.cores()
        if cores < max_cores or time.monotonic() > deadline:
            return cores
        print(f"   (waiting: other processes use {cores:.2f} cores)", flush=True)


def rss_bytes() -> int:
    """Current resident set size of this process, from ``/proc/self/statm``."""
    with open("/proc/self/statm", encoding="ascii") as fh:
        resident_pages = int(fh.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


# --------------------------------------------------------------------------- machine
def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    """The "model name" line of /proc/cpuinfo (or platform.processor())."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def source_state() -> str:
    """The repository's commit, and whether ``src/`` differs from it (figures depend on it)."""
    import subprocess

    def git(*argv: str) -> str:
        return subprocess.run(
            ["git", "-C", str(REPO), *argv], capture_output=True, text=True, check=False
        ).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "src")
    n = len(dirty.splitlines())
    return f"{head}" + (f" + {n} uncommitted change(s) under src/" if n else "")


def machine() -> dict[str, Any]:
    """The facts every figure is quoted with (no heavy imports: versions come from metadata)."""
    return {
        "source": source_state(),
        "date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "torch": _version("torch"),
        "numpy": _version("numpy"),
        "psutil": _version("psutil"),
        "bertwatt": _version("bertwatt"),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


# --------------------------------------------------------------------------- results
@dataclass
class Result:
    """One benchmark's outcome, printed and (with ``--json``) written for ``run_all.py``.

    Attributes:
        name: short id of the benchmark.
        what: the row's description (the issue's wording).
        figure: the headline figure, in ``unit``.
        unit: unit of ``figure`` and ``target``.
        target: the bound ``figure`` must not exceed.
        passed: whether the target was met (may use a rule other than figure <= target; see
            ``rule``).
        spread: human-readable spread of the headline figure.
        rule: how ``passed`` was decided.
        command: the exact command that measured it.
        details: every other figure, for the docs.
        quick: True when run with ``--quick``.
    """

    name: str
    what: str
    figure: float
    unit: str
    target: float
    passed: bool
    spread: str
    rule: str
    command: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    quick: bool = False
    machine: dict[str, Any] = field(default_factory=machine)


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the common ``--quick`` and ``--json`` options."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="short smoke run (coarser figures)")
    p.add_argument("--json", metavar="PATH", help="also write the result as JSON to PATH")
    return p


def command_line() -> str:
    """The command that is running, as it can be pasted (relative to the repository root)."""
    script = Path(sys.argv[0]).resolve()
    try:
        script_txt = str(script.relative_to(REPO))
    except ValueError:
        script_txt = str(script)
    args = [a for i, a in enumerate(sys.argv[1:]) if not _is_json_arg(sys.argv[1:], i)]
    return shlex.join([".venv/bin/python", script_txt, *args])


def _is_json_arg(argv: list[str], i: int) -> bool:
    a = argv[i]
    return a == "--json" or a.startswith("--json=") or (i > 0 and argv[i - 1] == "--json")


def finish(result: Result, args: argparse.Namespace) -> int:
    """Print the result, write JSON if asked, return the exit status (0 met, 1 missed)."""
    result.command = result.command or command_line()
    result.quick = bool(args.quick)
    verdict = "MET" if result.passed else "MISSED"
    print()
    print(f"== {result.what}")
    print(f"   figure : {result.figure:.6g} {result.unit}   spread: {result.spread}")
    print(f"   target : <= {result.target:g} {result.unit}   ({result.rule})  -> {verdict}")
    if args.quick:
        print("   (--quick: fewer repeats; use the full run for published figures)")
    if args.json:
        Path(args.json).write_text(json.dumps(asdict(result), indent=2, default=str) + "\n")
    return 0 if result.passed else 1


def header(title: str) -> None:
    """Print a title line and the machine facts."""
    m = machine()
    print(f"# {title}")
    print(
        f"# {m['date_utc']}  nproc={m['nproc']}  cpu={m['cpu_model']!r}  python={m['python']}  "
        f"torch={m['torch']}  load1={m['loadavg_1m']}  source={m['source']}"
    )
