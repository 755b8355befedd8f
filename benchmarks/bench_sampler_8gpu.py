"""Benchmark 5: sampler CPU time with 8 fake GPUs + RAPL at 10 Hz, real clock.

Method: the real backends on the fake sensors: ``NVMLBackend(all_devices=True)`` on ``FakeNVML``
(8 ``FakeGPU``, energy counters, installed as ``pynvml``), and ``RAPLBackend(root=...)`` on a
``FakePowercapTree`` of real files in a temporary directory (2 packages with core, uncore and
dram sub-zones, plus psys: 9 zones). ``EnergyMeter(backends=[nvml, rapl], interval_s=0.1)`` runs
on the real clock for ``--seconds`` (10 by default) per repetition while the main thread sleeps,
waking every 0.5 s to advance the RAPL counters (about 100 W per package; that work is on the
main thread, not the sampler's).

The figure is the CPU time of the meter's sampler thread (``bertwatt-sampler``) over the window,
read through its POSIX CPU-time clock (cross-checked against /proc schedstat), divided by the
window's wall time: the share of one core. It includes the fake ``pynvml``'s own work (it computes
exact counters with fractions on every call), which the real library would replace by its own
ctypes call into the driver; a diagnostic prints how much of one read of every backend, timed
alone on the main thread, is spent in the fake. For reference, the same is measured for a thread
that only wakes at 10 Hz and does nothing (the floor of any sampler on this machine).

Target (issue #2): <= 1 % of one core (median of repetitions).
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from typing import Any

import _common as c

TARGET_PCT = 1.0
GPUS = 8
INTERVAL_S = 0.1


def _fakes(root: str) -> tuple[Any, Any]:
    from bertwatt.testing import FakeGPU, FakeNVML, FakePowercapTree

    nvml = FakeNVML([FakeGPU(power_w=250.0 + 10 * i) for i in range(GPUS)])
    tree = FakePowercapTree(root)
    for pkg in (0, 1):
        tree.add_package(pkg, max_power_uw=250_000_000, subzones=("core", "uncore", "dram"))
    tree.add_psys()
    return nvml, tree


def _null_thread_pct(seconds: float) -> tuple[float, float]:
    """CPU share (%) and CPU per wake (us) of a thread that only wakes at 10 Hz."""
    stop = threading.Event()
    wakes = [0]

    def idle() -> None:
        while not stop.wait(INTERVAL_S):
            wakes[0] += 1

    th = threading.Thread(target=idle, name="null-sampler", daemon=True)
    th.start()
    clock = c.thread_cpu_clock(th)
    n0, t0, w0 = wakes[0], clock(), time.perf_counter()
    time.sleep(seconds)
    n1, t1, w1 = wakes[0], clock(), time.perf_counter()
    stop.set()
    th.join()
    return 100 * (t1 - t0) / 1e9 / (w1 - w0), (t1 - t0) / 1e3 / max(1, n1 - n0)


def _one_window(root: str, seconds: float) -> dict[str, Any]:
    from bertwatt import EnergyMeter
    from bertwatt.backends import NVMLBackend, RAPLBackend

    nvml, tree = _fakes(root)
    zones = [z for z in tree.zones if z.count(":") == 1]
    with nvml.install():
        meter = EnergyMeter(
            backends=[NVMLBackend(all_devices=True), RAPLBackend(root=root)],
            interval_s=INTERVAL_S,
        )
        meter.start()
        window = meter._window  # private: read only, for read counts and channel names
        assert window is not None
        channels = [tl.channel.name for tl in window.timelines]
        threads = [t.name for t in c.bertwatt_threads()]
        samplers = c.sampler_threads()  # one per backend
        clock = c.threads_cpu_clock(samplers)
        reads0 = [g.reads for g in window.groups]
        t0, s0, w0 = clock(), c.threads_schedstat_ns(samplers), time.perf_counter()
        end = w0 + seconds
        while (now := time.perf_counter()) < end:
            time.sleep(min(0.5, end - now))
            for z in zones:
                tree.add_energy(z, 50.0)  # ~100 W per zone at 0.5 s steps
        t1, s1, w1 = clock(), c.threads_schedstat_ns(samplers), time.perf_counter()
        reads = [g.reads - r for g, r in zip(window.groups, reads0, strict=True)]
        report = meter.stop()
    wall = w1 - w0
    return {
        "pct": 100 * (t1 - t0) / 1e9 / wall,
        "schedstat_pct": 100 * (s1 - s0) / 1e9 / wall,
        "cpu_per_tick_us": (t1 - t0) / 1e3 / max(1, max(reads)),
        "reads_per_s": [r / wall for r in reads],
        "channels": channels,
        "threads": threads,
        "unavailable": [f"{u.what}: {u.reason}" for u in report.unavailable],
        "energy_j": report.energy_j,
    }


def _read_breakdown(root: str, n: int = 50) -> dict[str, float]:
    """One read of every backend timed alone on the main thread, and the fake pynvml's share."""
    import cProfile
    import pstats

    from bertwatt import EnergyMeter
    from bertwatt.backends import NVMLBackend, RAPLBackend

    nvml, _tree = _fakes(root)
    with nvml.install():
        meter = EnergyMeter(
            backends=[NVMLBackend(all_devices=True), RAPLBackend(root=root)],
            interval_s=INTERVAL_S,
        ).start()
        window = meter._window  # private: read only, to reach the per-tick function
        assert window is not None
        groups = {g.backend.name: g for g in window.groups}
        out: dict[str, float] = {}
        for name, g in groups.items():
            total = 0
            for _ in range(n):
                time.sleep(0.02)
                t0 = time.thread_time_ns()
                g.sample(meter.clock)
                total += time.thread_time_ns() - t0
            out[f"{name}_read_us"] = total / 1e3 / n
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(n * 4):
            groups["nvml"].sample(meter.clock)
        prof.disable()
        meter.stop()
    st = pstats.Stats(prof)
    total_tt = sum(v[2] for v in st.stats.values())  # type: ignore[attr-defined]
    fake_tt = sum(
        v[2]
        for k, v in st.stats.items()  # type: ignore[attr-defined]
        if k[0].endswith(("testing/nvml.py", "fractions.py", "numbers.py"))
    )
    out["nvml_fake_share"] = fake_tt / total_tt if total_tt else float("nan")
    return out


def main() -> int:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=None, help="real seconds per window")
    p.add_argument("--repeat", type=int, default=None, help="windows (default 5)")
    p.add_argument("--max-wait-s", type=float, default=None, help="wait for quiet (default 300)")
    p.add_argument("--max-other-cores", type=float, default=0.1, help="drop busier windows")
    args = p.parse_args()
    if args.max_wait_s is None:
        args.max_wait_s = 5.0 if args.quick else 300.0
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    repeat = args.repeat or (1 if args.quick else 5)
    c.header(f"sampler CPU with {GPUS} fake GPUs + RAPL at 10 Hz")
    runs: list[dict[str, Any]] = []
    every: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bertwatt-bench-") as tmp:
        _one_window(f"{tmp}/warm", 1.0)  # first-use imports
        while len(runs) < repeat and len(every) < 3 * repeat:
            if args.max_wait_s > 0:
                c.wait_quiet(timeout_s=args.max_wait_s)
            load = c.ForeignLoad()
            r = _one_window(f"{tmp}/w{len(every)}", seconds)
            r["foreign_cores"] = load.cores()
            every.append(r)
            kept = r["foreign_cores"] <= args.max_other_cores
            if kept:
                runs.append(r)
            print(
                f"window {len(every)} (want {repeat} clean): sampler {r['pct']:.3f} % of a core "
                f"(schedstat {r['schedstat_pct']:.3f} %), {r['cpu_per_tick_us']:.0f} us per tick, "
                f"reads/s {', '.join(f'{x:.1f}' for x in r['reads_per_s'])}; other processes "
                f"{r['foreign_cores']:.2f} cores" + ("" if kept else "  -> dropped"),
                flush=True,
            )
        if not runs:
            runs = every
            note = f"WARNING: no window ran without other processes using > {args.max_other_cores}"
        else:
            note = f"{len(runs)} of {len(every)} windows kept (other processes <= "
            note += f"{args.max_other_cores:g} cores)"
        print(note)
        breakdown = _read_breakdown(f"{tmp}/breakdown")
    null_pct, null_wake = _null_thread_pct(min(seconds, 5.0))
    first = runs[0]
    expected = ["bertwatt-sampler-nvml", "bertwatt-sampler-rapl"]
    if first["unavailable"] or sorted(first["threads"]) != expected:
        raise RuntimeError(f"unexpected set-up: {first['unavailable']} {first['threads']}")
    s = c.spread([r["pct"] for r in runs])
    tick = c.spread([r["cpu_per_tick_us"] for r in runs])
    print(f"channels ({len(first['channels'])}): {', '.join(first['channels'])}")
    print(f"sampler thread: {s.text('{:.3f}', ' % of one core')}")
    print(f"CPU per tick (all {len(first['channels'])} channels): {tick.text('{:.0f}', ' us')}")
    print(
        f"(diagnostic) one read timed alone on the main thread: nvml "
        f"{breakdown['nvml_read_us']:.0f} us (of which the fake pynvml ~"
        f"{100 * breakdown['nvml_fake_share']:.0f} % by cProfile), rapl "
        f"{breakdown['rapl_read_us']:.0f} us"
    )
    print(
        f"(reference) a thread that only wakes at 10 Hz: {null_pct:.3f} %, {null_wake:.0f} us/wake"
    )
    result = c.Result(
        name="sampler_8gpu_rapl",
        what="sampler CPU time with 8 fake GPUs + RAPL at 10 Hz",
        figure=s.median,
        unit="% of one core",
        target=TARGET_PCT,
        passed=s.median <= TARGET_PCT,
        spread=(
            f"min..max {s.min:.3f}..{s.max:.3f} %, n={len(runs)} windows of {seconds:g} s "
            f"({note}); "
            f"{tick.median:.0f} us per tick for {len(first['channels'])} channels (fake pynvml "
            f"included); wake-only thread {null_pct:.3f} %"
        ),
        rule="median sampler-thread CPU / wall time <= target",
        details={
            "windows": runs,
            "windows_note": note,
            "pct": vars(s),
            "cpu_per_tick_us": vars(tick),
            "read_breakdown": breakdown,
            "null_thread_pct": null_pct,
            "null_thread_us_per_wake": null_wake,
        },
    )
    return c.finish(result, args)


if __name__ == "__main__":
    sys.exit(main())
