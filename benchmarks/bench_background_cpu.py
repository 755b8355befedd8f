"""Benchmark 3: background CPU of the meter during a CPU training loop.

Method: the torch training loop of ``_workload.py`` (a few seconds per run) is run in rounds;
each round runs, in an order that rotates from round to round:

- ``bare`` twice (no meter; the second gives the bare-vs-bare noise of process CPU time),
- ``auto``: inside ``EnergyMeter()`` with the backends auto-detected on this machine (no RAPL, no
  GPU here, so the labelled psutil-based CPU estimate),
- ``fake``: inside ``EnergyMeter(backends=[FakeBackend(...)])`` (one counter, one power channel),
- ``counters``: inside ``EnergyMeter(backends=[FakeBackend(...)])`` with two counter channels
  only (counters are read at window edges and about once a second between them).

The headline is the CPU time of the meter's sampler thread (``bertwatt-sampler``) during the loop,
as a fraction of the loop's wall time: read from outside the thread through its POSIX CPU-time
clock (``time.pthread_getcpuclockid`` + ``time.clock_gettime_ns``), cross-checked against
``/proc/self/task/<tid>/schedstat``. It is the meter's whole background cost: bertwatt runs no
other thread in these configurations (the script checks). The issue's definition, process CPU
time metered minus bare, is printed too, next to the same difference between two bare runs: on
this machine that difference is dominated by torch's own run-to-run variation, far above the
target, so it cannot resolve the figure; the per-thread clock can. Meter start and stop (one-off
costs on the caller's thread, outside the loop) are printed apart.

For attribution, each round also runs ``null``: the loop beside a plain thread that only wakes at
10 Hz (``Event.wait(0.1)``) and does nothing: the floor any sampling thread pays on this machine;
``null-lock``: the same thread sleeping in a held raw lock's ``acquire(True, 0.1)``, the wait the
sampler uses (its floor at 10 Hz); and ``auto-1s``: the auto-detected meter sampling every 1 s
instead of 0.1 s (not gated).
A diagnostic also times one read of every backend alone, on the caller's thread (a tick's work
without the wake-up).

Targets (issue #11): <= 0.01 % of loop time where every channel is a counter (``counters``);
<= 0.05 % with power or estimate channels (``auto``, ``fake``).
"""

from __future__ import annotations

import sys
import time

import _common as c
import _workload as wl

TARGET_PCT = 0.05
#: Where every channel is a counter (issue #11).
TARGET_COUNTERS_PCT = 0.01
QUICK_ROUNDS, FULL_ROUNDS = 2, 10


def _read_cost_us(config: str, n: int = 100, gap_s: float = 0.025) -> float:
    """Main-thread CPU of one read of every backend, ``gap_s`` apart, excluding any wake-up.

    Calls ``BackendGroup.sample`` of every backend (the one read-and-record path of a sampler
    tick and of a window edge) on the main thread. Reads are spaced by ``gap_s`` (more than
    the estimate's 20 ms minimum, below which it repeats its last value without reading psutil),
    and only the read is timed, so the figure is a tick's work without the thread's wake-up.
    """
    from bertwatt import EnergyMeter

    meter = EnergyMeter(backends=wl.CONFIGS[config]()).start()
    window = meter._window  # private: read only, to reach the sampler's per-tick function
    assert window is not None
    groups, clock = window.groups, meter.clock
    total = 0
    for _ in range(n):
        time.sleep(gap_s)
        t0 = time.thread_time_ns()
        for g in groups:
            g.sample(clock)
        total += time.thread_time_ns() - t0
    meter.stop()
    return total / 1e3 / n


def main() -> int:
    p = c.parser(__doc__.splitlines()[0])
    wl.add_loop_options(p, quick_rounds=QUICK_ROUNDS, full_rounds=FULL_ROUNDS)
    args = p.parse_args()
    c.header("background CPU of the meter during a CPU training loop")
    loop_s, _, _ = wl.loop_settings(args)
    loop = wl.Loop(loop_s)
    print(f"loop: {loop.steps} steps (~{loop_s:g} s), torch threads={loop.threads}")
    # one untimed metered run per configuration: first-use imports (pydantic, psutil)
    for name in ("auto", "fake", "counters"):
        wl.run_once(loop, name, wl.CONFIGS[name])
    order = ["bare", "auto", "bare", "fake", "counters", "null", "null-lock", "auto-1s"]
    done = wl.run_rounds(loop, order, args)
    runs = done.used
    print(done.note)

    figures: dict[str, dict[str, object]] = {}
    ok = True
    lines = []
    for name in ("auto", "fake", "counters", "null", "null-lock", "auto-1s"):
        rs = [x for rnd in runs for x in rnd if x.config == name]
        if name == "auto-1s":
            pct = c.spread([100 * x.sampler_cpu_s / x.wall_s for x in rs])  # type: ignore[operator]
            lines.append(f"auto-1s (EnergyMeter(interval_s=1.0)): {pct.text('{:.4f}', ' %')}")
            figures[name] = {"sampler_pct": vars(pct)}
            continue
        if name in ("null", "null-lock"):
            pct = c.spread([100 * x.sampler_cpu_s / x.wall_s for x in rs])  # type: ignore[operator]
            per_wake = c.spread(
                [1e6 * x.sampler_cpu_s / x.sampler_reads for x in rs if x.sampler_reads]  # type: ignore[operator]
                or [0.0]
            )
            how = "lock.acquire(True, 0.1)" if name == "null-lock" else "Event.wait(0.1)"
            lines.append(
                f"{name} (a thread that only wakes at 10 Hz, {how}): "
                f"{pct.text('{:.4f}', ' %')}\n"
                f"      CPU per wake-up {per_wake.text('{:.1f}', ' us')}"
            )
            figures[name] = {"thread_pct": vars(pct), "cpu_per_wake_us": vars(per_wake)}
            continue
        bad_threads = {x.bertwatt_threads for x in rs} - {1}
        if bad_threads:
            raise RuntimeError(f"{name}: bertwatt ran {bad_threads} threads, expected 1 sampler")
        pct = c.spread([100 * x.sampler_cpu_s / x.wall_s for x in rs])  # type: ignore[operator]
        sched = c.spread([100 * x.sampler_schedstat_s / x.wall_s for x in rs])  # type: ignore[operator]
        per_read = c.spread(
            [1e6 * x.sampler_cpu_s / x.sampler_reads for x in rs if x.sampler_reads]  # type: ignore[operator]
            or [0.0]
        )
        rate = c.spread([x.sampler_reads / x.wall_s for x in rs])  # type: ignore[operator]
        start = c.spread([1e3 * x.start_cpu_s for x in rs])  # type: ignore[operator]
        stop = c.spread([1e3 * x.stop_cpu_s for x in rs])  # type: ignore[operator]
        start_w = c.spread([1e3 * x.start_wall_s for x in rs])  # type: ignore[operator]
        # process CPU: metered minus the bare run of the same round (first bare in the round)
        diffs = []
        for rnd in runs:
            bare = next(x for x in rnd if x.config == "bare")
            m = next(x for x in rnd if x.config == name)
            diffs.append(100 * (m.process_cpu_s - bare.process_cpu_s) / bare.wall_s)
        proc = c.spread(diffs)
        ok = ok and pct.median <= (TARGET_COUNTERS_PCT if name == "counters" else TARGET_PCT)
        work = _read_cost_us(name)
        lines.append(
            f"{name:>4} ({rs[0].channels}): sampler thread {pct.text('{:.4f}', ' %')}\n"
            f"      schedstat cross-check {sched.text('{:.4f}', ' %')}\n"
            f"      reads/s {rate.median:.1f}, CPU per read {per_read.text('{:.1f}', ' us')}\n"
            f"      (diagnostic) one read, timed alone on the caller's thread: {work:.1f} us\n"
            f"      process CPU metered-bare: {proc.text('{:+.2f}', ' %')}\n"
            f"      start() CPU {start.text('{:.2f}', ' ms')} (wall {start_w.median:.1f} ms);"
            f" stop() CPU {stop.text('{:.2f}', ' ms')}"
        )
        figures[name] = {
            "sampler_pct": vars(pct),
            "schedstat_pct": vars(sched),
            "cpu_per_read_us": vars(per_read),
            "reads_per_s": vars(rate),
            "read_alone_us": work,
            "process_cpu_diff_pct": vars(proc),
            "start_cpu_ms": vars(start),
            "start_wall_ms": vars(start_w),
            "stop_cpu_ms": vars(stop),
            "channels": rs[0].channels,
        }
    noise = []
    for rnd in runs:
        bares = [x for x in rnd if x.config == "bare"]
        noise.append(100 * (bares[1].process_cpu_s - bares[0].process_cpu_s) / bares[0].wall_s)
    s_noise = c.spread(noise)
    walls = c.spread([x.wall_s for rnd in runs for x in rnd if x.config == "bare"])
    for line in lines:
        print(line)
    print(f"bare-vs-bare process CPU difference: {s_noise.text('{:+.2f}', ' %')}")
    s_foreign = c.spread([max(x.foreign_cores for x in rnd) for rnd in runs])
    print(f"bare loop wall time: {walls.text('{:.3f}', ' s')}")
    print(f"other processes' load per round: {s_foreign.text('{:.2f}', ' cores')}")
    auto = figures["auto"]["sampler_pct"]
    fake = figures["fake"]["sampler_pct"]
    counters = figures["counters"]["sampler_pct"]
    result = c.Result(
        name="background_cpu",
        what="background CPU of the meter during a CPU training loop",
        figure=auto["median"],  # type: ignore[index]
        unit="% of loop time",
        target=TARGET_PCT,
        passed=ok,
        spread=(
            f"auto (psutil estimate): median {auto['median']:.4f} %, min..max "  # type: ignore[index]
            f"{auto['min']:.4f}..{auto['max']:.4f} %; FakeBackend: median "  # type: ignore[index]
            f"{fake['median']:.4f} %, min..max {fake['min']:.4f}..{fake['max']:.4f} %; "  # type: ignore[index]
            f"counters only: median {counters['median']:.4f} % (target "  # type: ignore[index]
            f"{TARGET_COUNTERS_PCT:g} %), min..max {counters['min']:.4f}.."  # type: ignore[index]
            f"{counters['max']:.4f} %; "  # type: ignore[index]
            f"n={len(runs)} runs of {walls.median:.1f} s each; {done.note}"
        ),
        rule=(
            "median sampler-thread CPU / loop wall time <= 0.05 % (auto, fake) and <= 0.01 % "
            "(counters only); headline: auto-detected"
        ),
        details={
            "rounds_kept": len(done.clean),
            "rounds_run": len(done.all),
            "rounds_note": done.note,
            "loop_steps": loop.steps,
            "torch_threads": loop.threads,
            "bare_wall_s": vars(walls),
            "bare_vs_bare_process_cpu_pct": vars(s_noise),
            "foreign_load_cores": vars(s_foreign),
            **figures,
        },
    )
    return c.finish(result, args)


if __name__ == "__main__":
    sys.exit(main())
