"""Benchmark 7: memory of a simulated 72 h run on 8 GPUs at 10 Hz (FakeClock, no waiting).

Method: ``EnergyMeter(backends=[...], clock=FakeClock(), interval_s=0.1)`` over 72 simulated hours
(2,592,000 sampler ticks, each reading 8 GPU energy counters), with a phase ``epoch`` opened and
closed every simulated hour, then ``stop()`` (which builds the report). Two passes, each in a
fresh child process so neither disturbs the other:

- ``rss``: resident set size (``/proc/self/statm``) before the meter starts, after every simulated
  hour, and after ``stop()``; plus the kernel's high-water mark (``ru_maxrss``). Growth = the
  highest of these minus the RSS before start.
- ``tracemalloc``: peak of Python-traced memory from just before the meter is built to after
  ``stop()`` (``tracemalloc.reset_peak``), and what is still held afterwards (the report).
  tracemalloc slows Python about tenfold; that pass simulates ``--trace-hours`` (72 by default).

Backends: ``--backend fake`` (default): a FakeBackend with 8 counter channels ``gpu:0..7``;
``--backend nvml``: the real ``NVMLBackend`` on ``FakeNVML`` with 8 FakeGPUs (about ten times
slower per tick, because the fake computes exact counters with fractions).

``--quick`` simulates 2 h in both passes instead of 72 h: a smoke run, not the figure.
Memory is meant to be bounded by ``timeline_points`` (8192 stored points per channel, thinned as
they fill): the script prints RSS against simulated hours so that flatness can be seen.

Target (issue #2): <= 64 MiB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import tracemalloc
from typing import Any

import _common as c

TARGET_MIB = 64.0
GPUS = 8
INTERVAL_S = 0.1
MIB = 1024 * 1024


def _meter(backend: str, clock: Any) -> tuple[Any, Any]:
    """(meter, context manager keeping the backend's fakes installed)."""
    import contextlib

    from bertwatt import EnergyMeter

    if backend == "fake":
        from bertwatt.testing import FakeBackend, FakeChannel

        channels = [
            FakeChannel(f"gpu:{i}", [(0.0, 250.0 + 10 * i), (1800.0, 120.0)], kind="counter")
            for i in range(GPUS)
        ]
        be = FakeBackend(name="fake-gpus", channels=channels, clock=clock)
        return EnergyMeter(backends=[be], clock=clock, interval_s=INTERVAL_S), (
            contextlib.nullcontext()
        )
    from bertwatt.backends import NVMLBackend
    from bertwatt.testing import FakeGPU, FakeNVML

    fake = FakeNVML(
        [FakeGPU(power_w=[(0.0, 250.0 + 10 * i), (1800.0, 120.0)]) for i in range(GPUS)],
        clock=clock,
    )
    ctx = fake.install()
    ctx.__enter__()
    backend = NVMLBackend(all_devices=True)
    return EnergyMeter(backends=[backend], clock=clock, interval_s=INTERVAL_S), ctx


def child(mode: str, backend: str, hours: int) -> dict[str, Any]:
    """One pass (``rss`` or ``tracemalloc``); returns its figures."""
    from bertwatt.testing import FakeClock

    clock = FakeClock()
    import bertwatt.report.models  # noqa: F401  (imported before the baseline, as in a real run)

    if mode == "tracemalloc":
        tracemalloc.start()
        tracemalloc.reset_peak()
        traced0 = tracemalloc.get_traced_memory()[0]
    rss0 = c.rss_bytes()
    maxrss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    meter, ctx = _meter(backend, clock)
    rss_by_hour: list[tuple[int, float]] = [(0, 0.0)]
    t0 = time.perf_counter()
    meter.start()
    for h in range(1, hours + 1):
        meter.begin("epoch")
        clock.advance(3600.0)
        meter.end("epoch")
        rss_by_hour.append((h, (c.rss_bytes() - rss0) / MIB))
        if h % 6 == 0 or h == hours:
            print(
                f"   [{mode}] {h:>2} h simulated, RSS +{rss_by_hour[-1][1]:.1f} MiB, "
                f"{time.perf_counter() - t0:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    window = meter._window  # private: read only, for the sample and stored-point counts
    samples = [tl.samples for tl in window.timelines]
    stored = [len(tl.points()[0]) for tl in window.timelines]
    run_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    report = meter.stop()
    stop_s = time.perf_counter() - t1
    ctx.__exit__(None, None, None)
    out: dict[str, Any] = {
        "mode": mode,
        "backend": backend,
        "hours": hours,
        "ticks_per_s": hours * 3600 / INTERVAL_S / run_s,
        "run_s": run_s,
        "stop_s": stop_s,
        "samples_per_channel": samples,
        "stored_points_per_channel": stored,
        "report_energy_j": report.energy_j,
        "report_channels": len(report.channels),
        "epochs": report.phases["epoch"].count,
    }
    rss_end = c.rss_bytes()
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out["rss_before_mib"] = rss0 / MIB
    out["rss_by_hour_mib"] = rss_by_hour
    out["rss_after_stop_mib"] = (rss_end - rss0) / MIB
    out["maxrss_growth_mib"] = (maxrss - max(rss0, maxrss0)) / MIB if maxrss > maxrss0 else 0.0
    out["rss_growth_mib"] = max(
        max(v for _, v in rss_by_hour), out["rss_after_stop_mib"], out["maxrss_growth_mib"]
    )
    if mode == "tracemalloc":
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out["traced_peak_mib"] = (peak - traced0) / MIB
        out["traced_after_stop_mib"] = (current - traced0) / MIB
    return out


def main() -> int:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--backend", choices=("fake", "nvml"), default="fake")
    p.add_argument("--hours", type=int, default=None, help="simulated hours (default 72)")
    p.add_argument("--trace-hours", type=int, default=None, help="hours for the tracemalloc pass")
    p.add_argument("--child", choices=("rss", "tracemalloc"), help=argparse.SUPPRESS)
    args = p.parse_args()
    hours = args.hours or (2 if args.quick else 72)
    trace_hours = args.trace_hours or hours
    if args.child:
        print(json.dumps(child(args.child, args.backend, hours)))
        return 0
    c.header(f"memory of a simulated {hours} h run on {GPUS} GPUs at 10 Hz ({args.backend})")
    passes = {}
    for mode, h in (("rss", hours), ("tracemalloc", trace_hours)):
        argv = [sys.executable, sys.argv[0], "--child", mode, "--backend", args.backend]
        argv += ["--hours", str(h)]
        proc = subprocess.run(argv, check=True, stdout=subprocess.PIPE, text=True)
        passes[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    rss, tm = passes["rss"], passes["tracemalloc"]
    print(
        f"simulated: {hours} h x {GPUS} channels at {INTERVAL_S} s = "
        f"{rss['samples_per_channel'][0]:,} samples per channel "
        f"({rss['ticks_per_s']:,.0f} ticks/s, {rss['run_s']:.0f} s; "
        f"stop() {rss['stop_s']:.2f} s)"
    )
    print(f"stored points per channel at the end: {sorted(set(rss['stored_points_per_channel']))}")
    print("RSS growth vs simulated hours (MiB):")
    by_hour = rss["rss_by_hour_mib"]
    marks = [h for h in (0, 1, 2, 3, 6, 12, 24, 36, 48, 60, 72) if h <= hours]
    print("   " + "  ".join(f"{h}h:{v:+.1f}" for h, v in by_hour if h in marks))
    rss_growth, after_stop = rss["rss_growth_mib"], rss["rss_after_stop_mib"]
    print(
        f"RSS after stop(): {after_stop:+.1f} MiB; high-water mark growth "
        f"{rss['maxrss_growth_mib']:+.1f} MiB; RSS growth (max of all) {rss_growth:.1f} MiB"
    )
    print(
        f"tracemalloc ({tm['hours']} h): peak {tm['traced_peak_mib']:.1f} MiB, still held after "
        f"stop() (the report) {tm['traced_after_stop_mib']:.1f} MiB "
        f"({tm['ticks_per_s']:,.0f} ticks/s under tracemalloc)"
    )
    figure = max(rss["rss_growth_mib"], tm["traced_peak_mib"])
    last_half = [v for h, v in by_hour if h >= hours / 2]
    result = c.Result(
        name="memory_72h",
        what=f"memory of a simulated {hours} h run on {GPUS} GPUs at 10 Hz (fake clock)",
        figure=figure,
        unit="MiB",
        target=TARGET_MIB,
        passed=figure <= TARGET_MIB,
        spread=(
            f"RSS growth {rss_growth:.1f} MiB (after stop {after_stop:.1f};"
            f" from {hours / 2:g} h to {hours} h: {min(last_half):.1f}..{max(last_half):.1f} MiB); "
            f"tracemalloc peak {tm['traced_peak_mib']:.1f} MiB over {tm['hours']} h; "
            f"single run (deterministic workload)"
        ),
        rule="max(RSS growth incl. high-water mark, tracemalloc peak) <= target",
        details={"rss": rss, "tracemalloc": tm, "backend": args.backend},
    )
    return c.finish(result, args)


if __name__ == "__main__":
    sys.exit(main())
