"""Benchmark: stop() time and memory of a simulated 72 h run with per-step phases and a flapping
sensor (FakeClock, no waiting; issue #7 "Long runs").

Method: ``EnergyMeter(backends=[gpu, plug], clock=FakeClock(), interval_s=0.1)`` over 72 simulated
hours. ``gpu`` is a FakeBackend counter channel ``gpu:0`` (250 W); ``plug`` is a small backend
defined here whose power channel ``wall`` (400 W) fails every read during 2 s of every 7 s (a
flapping sensor: one gap per 7 s, 37,029 gaps in 72 h). The training loop opens and closes the
phase ``step`` around every 0.1 s step (10 steps/s, 2,592,000 steps, two window edges each)
and an ``epoch`` phase every simulated hour. Then ``stop()``, which builds the final report.

Figures (two passes, each in a fresh child process):

- ``rss``: ``stop()`` wall time (``time.perf_counter``), and resident set size growth
  (``/proc/self/statm`` before the meter starts, after every simulated hour and after stop();
  plus the kernel's high-water mark ``ru_maxrss``);
- ``tracemalloc``: peak of Python-traced memory from before the meter is built to after stop()
  (``--trace-hours``, 12 by default; tracemalloc slows Python several times, and memory is flat
  after the first hours: the RSS pass covers all 72 h).

``--quick`` simulates 2 h in both passes: a smoke run, not the figure.

Targets (issue #7): stop() under 2 s and memory under 64 MiB.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
import tracemalloc
from typing import Any

import _common as c

STOP_TARGET_S = 2.0
MEM_TARGET_MIB = 64.0
INTERVAL_S = 0.1
STEP_S = 0.1
FLAP_PERIOD_S = 7.0
FLAP_DOWN_S = 2.0
MIB = 1024 * 1024


class FlappingPlug:
    """A power backend whose reads fail for FLAP_DOWN_S of every FLAP_PERIOD_S (fake time)."""

    name = "plug"
    blocking = False

    def __init__(self, clock: Any) -> None:
        from bertwatt.backends.base import Channel, Provenance

        self.clock = clock
        self.t0 = clock.monotonic_ns()
        self.channel = Channel(
            name="wall",
            domain="system",
            kind="power",
            provenance=Provenance(kind="measured", source="benchmark plug", scope="other"),
        )

    def probe(self) -> Any:
        from bertwatt.backends.base import Availability

        return Availability(channels=(self.channel,))

    def read(self) -> tuple[list[float], dict[int, str] | None]:
        t = (self.clock.monotonic_ns() - self.t0) / 1e9
        if t % FLAP_PERIOD_S >= FLAP_PERIOD_S - FLAP_DOWN_S:
            return [math.nan], {0: "plug did not answer"}
        return [400.0], None

    def close(self) -> None:
        pass


def child(mode: str, hours: int) -> dict[str, Any]:
    """One pass (``rss`` or ``tracemalloc``); returns its figures."""
    import bertwatt.report.models  # noqa: F401  (imported before the baseline, as in a real run)
    from bertwatt import EnergyMeter
    from bertwatt.testing import FakeBackend, FakeChannel, FakeClock

    clock = FakeClock()
    if mode == "tracemalloc":
        tracemalloc.start()
        tracemalloc.reset_peak()
        traced0 = tracemalloc.get_traced_memory()[0]
    rss0 = c.rss_bytes()
    maxrss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    gpu = FakeBackend(
        name="gpu", channels=[FakeChannel("gpu:0", 250.0, kind="counter")], clock=clock
    )
    meter = EnergyMeter(backends=[gpu, FlappingPlug(clock)], clock=clock, interval_s=INTERVAL_S)
    steps_per_hour = round(3600 / STEP_S)
    rss_by_hour: list[tuple[int, float]] = [(0, 0.0)]
    t0 = time.perf_counter()
    meter.start()
    phase, advance = meter.phase, clock.advance
    for h in range(1, hours + 1):
        meter.begin("epoch")
        for _ in range(steps_per_hour):
            with phase("step"):
                advance(STEP_S)
        meter.end("epoch")
        rss_by_hour.append((h, (c.rss_bytes() - rss0) / MIB))
        if h % 6 == 0 or h == hours:
            print(
                f"   [{mode}] {h:>2} h simulated, RSS +{rss_by_hour[-1][1]:.1f} MiB, "
                f"{time.perf_counter() - t0:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    window = meter._window  # private: read only, for the kept marks and gap counts
    kept_marks = len(window.mark_t)
    gaps = [tl.gap_count for tl in window.timelines]
    kept_gaps = [len(tl.gaps) for tl in window.timelines]
    run_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    report = meter.stop(warn=False)
    stop_s = time.perf_counter() - t1
    out: dict[str, Any] = {
        "mode": mode,
        "hours": hours,
        "run_s": run_s,
        "stop_s": stop_s,
        "steps": report.phases["step"].count,
        "epochs": report.phases["epoch"].count,
        "marks_made": window.next_mark,
        "marks_kept": kept_marks,
        "gaps": gaps,
        "gaps_kept": kept_gaps,
        "report_energy_j": report.energy_j,
        "wall_coverage": report.channel("wall").coverage,
        "step_energy_j": report.phases["step"].energy_j,
    }
    rss_end = c.rss_bytes()
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out["rss_after_stop_mib"] = (rss_end - rss0) / MIB
    out["rss_by_hour_mib"] = rss_by_hour
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
    p.add_argument("--hours", type=int, default=None, help="simulated hours (default 72)")
    p.add_argument("--trace-hours", type=int, default=None, help="hours for the tracemalloc pass")
    p.add_argument("--child", choices=("rss", "tracemalloc"), help=argparse.SUPPRESS)
    args = p.parse_args()
    hours = args.hours or (2 if args.quick else 72)
    trace_hours = args.trace_hours or min(hours, 12)
    if args.child:
        print(json.dumps(child(args.child, hours)))
        return 0
    c.header(f"stop() and memory of a simulated {hours} h run, 10 steps/s, flapping sensor")
    passes = {}
    for mode, h in (("rss", hours), ("tracemalloc", trace_hours)):
        argv = [sys.executable, sys.argv[0], "--child", mode, "--hours", str(h)]
        proc = subprocess.run(argv, check=True, stdout=subprocess.PIPE, text=True)
        passes[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    rss, tm = passes["rss"], passes["tracemalloc"]
    print(
        f"simulated: {hours} h, {rss['steps']:,} steps, {rss['marks_made']:,} marks "
        f"({rss['marks_kept']:,} kept at the end), gaps {rss['gaps']} "
        f"(kept {rss['gaps_kept']}); simulation took {rss['run_s']:.0f} s"
    )
    print(f"stop(): {rss['stop_s']:.3f} s (target < {STOP_TARGET_S:g} s)")
    by_hour = rss["rss_by_hour_mib"]
    marks = [h for h in (0, 1, 2, 3, 6, 12, 24, 36, 48, 60, 72) if h <= hours]
    print("RSS growth vs simulated hours (MiB):")
    print("   " + "  ".join(f"{h}h:{v:+.1f}" for h, v in by_hour if h in marks))
    print(
        f"RSS growth (max incl. high-water mark) {rss['rss_growth_mib']:.1f} MiB; tracemalloc "
        f"({tm['hours']} h) peak {tm['traced_peak_mib']:.1f} MiB, held after stop() "
        f"{tm['traced_after_stop_mib']:.1f} MiB; stop() under tracemalloc {tm['stop_s']:.2f} s"
    )
    mem = max(rss["rss_growth_mib"], tm["traced_peak_mib"])
    passed = rss["stop_s"] < STOP_TARGET_S and mem < MEM_TARGET_MIB
    result = c.Result(
        name="long_run",
        what=f"stop() of a simulated {hours} h run, 10 steps/s, flapping sensor (fake clock)",
        figure=rss["stop_s"],
        unit="s",
        target=STOP_TARGET_S,
        passed=passed,
        spread=(
            f"memory {mem:.1f} MiB (target < {MEM_TARGET_MIB:g}): RSS growth "
            f"{rss['rss_growth_mib']:.1f} MiB, tracemalloc peak {tm['traced_peak_mib']:.1f} MiB "
            f"over {tm['hours']} h; single run (deterministic workload)"
        ),
        rule="stop() < 2 s and max(RSS growth incl. high-water mark, tracemalloc peak) < 64 MiB",
        details={"rss": rss, "tracemalloc": tm},
    )
    return c.finish(result, args)


if __name__ == "__main__":
    sys.exit(main())
