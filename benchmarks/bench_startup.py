"""Benchmark: what a default window costs at start-up and stop (issue #11, "Cost near zero").

Method: each figure is timed with ``time.perf_counter_ns`` around the code named, after
``from bertwatt import EnergyMeter`` (the import is benchmark bench_import.py's):

- **fresh**: construct + start + stop of a default ``with EnergyMeter(): pass`` (auto-detected
  backends: on this machine no RAPL, no NVML, so the labelled CPU estimate) in a fresh process,
  one figure per process; then, in the same process, the first read of ``meter.report`` (the
  report built and the pydantic models loaded);
- **repeated**: the same in one process after 5 discarded warm-up windows: construct + start +
  stop, and the first ``meter.report`` read of each new window;
- **2 fake GPUs**: ``NVMLBackend`` on the fake ``pynvml`` of ``bertwatt.testing.nvml`` (2 GPUs
  with energy counters), the time of leaving the ``with`` block (stop) and of an explicit
  ``meter.stop()`` (which builds and returns the report), repeated.

Targets (issue #11): construct + start + stop <= 5 ms fresh and <= 1 ms repeated; first read of
the report <= 100 ms fresh and <= 5 ms repeated. The headline figure is the fresh
construct + start + stop median; every other figure is checked and printed beside it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import warnings

import _common as c

TARGETS_MS = {
    "fresh_window": 5.0,
    "repeated_window": 1.0,
    "fresh_first_read": 100.0,
    "repeated_first_read": 5.0,
}

_FRESH = """
import json, time, warnings
warnings.simplefilter("ignore")
from bertwatt import EnergyMeter
t0 = time.perf_counter_ns()
with EnergyMeter() as meter:
    pass
t1 = time.perf_counter_ns()
report = meter.report
t2 = time.perf_counter_ns()
assert report.duration_s >= 0
print(json.dumps([(t1 - t0) / 1e6, (t2 - t1) / 1e6]))
"""


def _repeated(n: int) -> tuple[list[float], list[float]]:
    from bertwatt import EnergyMeter

    window_ms: list[float] = []
    read_ms: list[float] = []
    for i in range(n + 5):
        t0 = time.perf_counter_ns()
        with EnergyMeter() as meter:
            pass
        t1 = time.perf_counter_ns()
        report = meter.report
        t2 = time.perf_counter_ns()
        assert report.duration_s >= 0
        if i >= 5:
            window_ms.append((t1 - t0) / 1e6)
            read_ms.append((t2 - t1) / 1e6)
    return window_ms, read_ms


def _two_gpus(n: int) -> tuple[list[float], list[float]]:
    """(exit of the with block, explicit stop()) in ms, with 2 fake GPUs."""
    from bertwatt import EnergyMeter
    from bertwatt.backends.nvml import NVMLBackend
    from bertwatt.testing.nvml import FakeGPU, FakeNVML

    fake = FakeNVML([FakeGPU(power_w=250.0), FakeGPU(power_w=250.0)])
    exit_ms: list[float] = []
    stop_ms: list[float] = []
    with fake.install():
        for i in range(n + 3):
            meter = EnergyMeter(backends=[NVMLBackend(all_devices=True)])
            meter.start()
            t0 = time.perf_counter_ns()
            meter.__exit__(None, None, None)
            t1 = time.perf_counter_ns()
            assert len(meter.report.channels) == 2
            meter.start()
            t2 = time.perf_counter_ns()
            meter.stop(warn=False)
            t3 = time.perf_counter_ns()
            if i >= 3:
                exit_ms.append((t1 - t0) / 1e6)
                stop_ms.append((t3 - t2) / 1e6)
    return exit_ms, stop_ms


def main() -> int:
    args = c.parser(__doc__.splitlines()[0]).parse_args()
    c.header("start-up and stop of a default EnergyMeter window")
    warnings.simplefilter("ignore")
    c.wait_quiet(timeout_s=5 if args.quick else 120)
    load = c.ForeignLoad()
    fresh_window: list[float] = []
    fresh_read: list[float] = []
    for _ in range(5 if args.quick else 21):
        out = subprocess.run(
            [sys.executable, "-c", _FRESH], check=True, capture_output=True, text=True
        ).stdout
        w, r = json.loads(out.strip().splitlines()[-1])
        fresh_window.append(w)
        fresh_read.append(r)
    rep_window, rep_read = _repeated(20 if args.quick else 200)
    gpu_exit, gpu_stop = _two_gpus(10 if args.quick else 60)
    other = load.cores()
    spreads = {
        "fresh_window": c.spread(fresh_window),
        "repeated_window": c.spread(rep_window),
        "fresh_first_read": c.spread(fresh_read),
        "repeated_first_read": c.spread(rep_read),
    }
    s_exit, s_stop = c.spread(gpu_exit), c.spread(gpu_stop)
    print(f"other processes used {other:.2f} cores on average")
    missed = []
    for key, s in spreads.items():
        ok = s.median <= TARGETS_MS[key]
        if not ok:
            missed.append(key)
        verdict = "met" if ok else "MISSED"
        print(
            f"{key:22s}: {s.text('{:.3f}', ' ms')}  (target <= {TARGETS_MS[key]:g} ms: {verdict})"
        )
    print(f"2 fake GPUs, leaving the with block : {s_exit.text('{:.3f}', ' ms')}")
    print(f"2 fake GPUs, explicit stop()        : {s_stop.text('{:.3f}', ' ms')}")
    head = spreads["fresh_window"]
    result = c.Result(
        name="startup",
        what="construct + start + stop of a default `with EnergyMeter(): pass`, fresh process",
        figure=head.median,
        unit="ms",
        target=TARGETS_MS["fresh_window"],
        passed=not missed,
        spread=(
            f"IQR {head.q1:.2f}..{head.q3:.2f} ms, n={len(fresh_window)}; repeated "
            f"{spreads['repeated_window'].median:.3f} ms (<= 1); first report read fresh "
            f"{spreads['fresh_first_read'].median:.0f} ms (<= 100), repeated "
            f"{spreads['repeated_first_read'].median:.2f} ms (<= 5); 2 fake GPUs: exit "
            f"{s_exit.median:.2f} ms, stop() {s_stop.median:.2f} ms; other processes "
            f"{other:.2f} cores" + (f"; MISSED: {', '.join(missed)}" if missed else "")
        ),
        rule="every median <= its target (fresh/repeated window, fresh/repeated first read)",
        command=".venv/bin/python benchmarks/bench_startup.py" + (" --quick" if args.quick else ""),
        details={
            **{k: vars(s) for k, s in spreads.items()},
            "two_gpus_exit_ms": vars(s_exit),
            "two_gpus_stop_ms": vars(s_stop),
            "other_processes_cores": other,
        },
    )
    return c.finish(result, args)


if __name__ == "__main__":
    sys.exit(main())
