"""Benchmark 2: enter + exit of an empty ``with EnergyMeter(backends=[FakeBackend(...)])``.

Method: real clock (``SystemClock``; the sampler thread starts and is joined), a FakeBackend
with one counter and one power channel. Each repetition times, with ``time.perf_counter_ns``,
constructing the meter, entering and leaving an empty ``with`` block (``stop()`` builds the
report). The backend is built outside the timed region. 20 warm-up repetitions are discarded
(the first one imports pydantic and the report model); the first-use ("cold") cost is measured
separately, in fresh processes, and printed for information, as is the warm cost with 8 counter
channels and 1 power channel. Main-thread CPU time (``time.thread_time_ns``) is recorded beside
wall time.

Target (issue #2): <= 5 ms (median, warm).
"""

from __future__ import annotations

import subprocess
import sys
import time

import _common as c

TARGET_MS = 5.0

_COLD = """
import time
t0 = time.perf_counter_ns()
from bertwatt import EnergyMeter
from bertwatt.testing import FakeBackend, FakeChannel
t1 = time.perf_counter_ns()
fb = FakeBackend(channels=[FakeChannel("gpu:0", 250.0, kind="counter"),
                           FakeChannel("cpu:package-0", 65.0, kind="power")])
t2 = time.perf_counter_ns()
with EnergyMeter(backends=[fb]):
    pass
t3 = time.perf_counter_ns()
print((t1 - t0) / 1e6, (t3 - t2) / 1e6)
"""


def _backend(gpus: int = 1):  # type: ignore[no-untyped-def]
    from bertwatt.testing import FakeBackend, FakeChannel

    return FakeBackend(
        channels=[
            *(FakeChannel(f"gpu:{i}", 250.0, kind="counter") for i in range(gpus)),
            FakeChannel("cpu:package-0", 65.0, kind="power"),
        ]
    )


def _time_with(n: int, warm: int, gpus: int) -> tuple[list[float], list[float]]:
    """Wall and main-thread CPU ms of ``n`` warm repetitions (after ``warm`` discarded ones)."""
    from bertwatt import EnergyMeter

    wall_ms: list[float] = []
    cpu_ms: list[float] = []
    for i in range(warm + n):
        fb = _backend(gpus)
        c0 = time.thread_time_ns()
        t0 = time.perf_counter_ns()
        with EnergyMeter(backends=[fb]) as meter:
            pass
        t1 = time.perf_counter_ns()
        c1 = time.thread_time_ns()
        if meter.report.duration_s <= 0:
            raise RuntimeError("the meter produced an empty window")
        if i >= warm:
            wall_ms.append((t1 - t0) / 1e6)
            cpu_ms.append((c1 - c0) / 1e6)
    return wall_ms, cpu_ms


def _profile_shares(n: int = 100) -> dict[str, float]:
    """Shares of main-thread time (cProfile, cumulative) of the meter's steps, warm, 1 GPU."""
    import cProfile
    import pstats

    from bertwatt import EnergyMeter

    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        with EnergyMeter(backends=[_backend()]):
            pass
    prof.disable()
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in stats.values())

    def cum(file_end: str, func: str) -> float:
        return max(
            (v[3] for k, v in stats.items() if k[0].endswith(file_end) and k[2] == func),
            default=0.0,
        )

    built = cum("report/build.py", "build_report")
    line, top = max(
        (
            (k[1], v[3])
            for k, v in stats.items()
            if k[0].endswith("report/build.py") and k[2] == "<genexpr>"
        ),
        key=lambda x: x[1],
        default=(0, 0.0),
    )
    return {
        "build_report": built / total,
        "top_genexpr_line": float(line),
        "top_genexpr": top / total,
        "thread_start": cum("threading.py", "start") / total,
    }


def main() -> int:
    args = c.parser(__doc__.splitlines()[0]).parse_args()
    c.header("enter + exit of an empty `with EnergyMeter(...)` on a FakeBackend")
    n = 40 if args.quick else 300
    c.wait_quiet(timeout_s=5 if args.quick else 120)
    load = c.ForeignLoad()
    wall_ms, cpu_ms = _time_with(n, 20, gpus=1)
    s_wall, s_cpu = c.spread(wall_ms), c.spread(cpu_ms)
    wall8, _ = _time_with(n // 4, 5, gpus=8)
    s_wall8 = c.spread(wall8)
    other = load.cores()

    shares = _profile_shares(30 if args.quick else 100)
    cold_import: list[float] = []
    cold_with: list[float] = []
    for _ in range(3 if args.quick else 7):
        out = subprocess.run(
            [sys.executable, "-c", _COLD], check=True, capture_output=True, text=True
        ).stdout.split()
        cold_import.append(float(out[0]))
        cold_with.append(float(out[1]))
    s_ci, s_cw = c.spread(cold_import), c.spread(cold_with)

    print(f"other processes used {other:.2f} cores on average during the warm repetitions")
    print(f"warm enter+exit, wall      : {s_wall.text('{:.3f}', ' ms')}")
    print(f"warm enter+exit, main CPU  : {s_cpu.text('{:.3f}', ' ms')}")
    print(f"(info) warm, 8 counter + 1 power channels: {s_wall8.text('{:.3f}', ' ms')}")
    print(
        f"(diagnostic, cProfile) share of enter+exit time in report/build.py build_report: "
        f"{100 * shares['build_report']:.0f} %, of which the generator expression at line "
        f"{shares['top_genexpr_line']:.0f}: {100 * shares['top_genexpr']:.0f} % of the total; "
        f"starting the sampler thread: {100 * shares['thread_start']:.0f} %"
    )
    print(f"(info) cold, first `with` in a fresh process: {s_cw.text('{:.1f}', ' ms')}")
    print(f"(info) cold, importing EnergyMeter + testing: {s_ci.text('{:.1f}', ' ms')}")
    result = c.Result(
        name="enter_exit",
        what="enter + exit of an empty `with EnergyMeter(...)` on fake sensors",
        figure=s_wall.median,
        unit="ms",
        target=TARGET_MS,
        passed=s_wall.median <= TARGET_MS,
        spread=(
            f"IQR {s_wall.q1:.2f}..{s_wall.q3:.2f} ms, min..max {s_wall.min:.2f}..{s_wall.max:.2f}"
            f" ms, n={n}; main-thread CPU median {s_cpu.median:.2f} ms; first use in a fresh "
            f"process {s_cw.median:.0f} ms; other processes {other:.2f} cores"
        ),
        rule="median wall time of warm repetitions <= target",
        details={
            "wall_ms": vars(s_wall),
            "main_thread_cpu_ms": vars(s_cpu),
            "wall_ms_8_counters_1_power": vars(s_wall8),
            "cold_first_with_ms": vars(s_cw),
            "cold_import_ms": vars(s_ci),
            "profile_shares": shares,
            "other_processes_cores": other,
        },
    )
    return c.finish(result, args)


if __name__ == "__main__":
    sys.exit(main())
