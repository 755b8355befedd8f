"""The repeat protocol against one window, for short kernels on simulated NVIDIA sensors.

Method (randomised, seeded, on the fake clock so each case is exact and takes no real time):
each case draws a GPU sensor (A100/H100 model: counter updating every 100 ms and instant power
seeing 25 ms of every 100 ms; Ampere model: counter every 100 ms, 1 s averaged power; or the A100
power path without a counter), a random sensor phase, a kernel of 1-30 ms (log-uniform) at
150-400 W, a host gap of 0-20 % of the kernel at the idle power of 40-80 W, and a random start.
The GPU is driven through :meth:`bertwatt.testing.nvml.FakeGPU.set_power`, so the true energy of
each call is known exactly. Each case measures

- ``single``: one call between two marks of a running meter, after an idle second;
- ``repeat``: :func:`bertwatt.measure_repeated` with its defaults (5 trials of >= 2 s).

and reports the relative error of each against the true energy per call, and whether the repeat
error is within the protocol's claimed bound (:attr:`RepeatResult.error_bound_rel`).

Run: ``python benchmarks/bench_repeat_accuracy.py [--cases N] [--seed S] [--write-docs]``.
``--write-docs`` rewrites the table in docs/accuracy.md between its markers.
"""

from __future__ import annotations

import argparse
import math
import random
import re
import statistics
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SENSORS = ("a100-counter", "ampere-counter", "a100-power")


@dataclass(frozen=True)
class Case:
    """One simulated short kernel and what each method measured for it."""

    sensor: str
    kernel_ms: float
    busy_w: float
    single_err: float
    repeat_err: float
    bound: float
    spread: float

    @property
    def within(self) -> bool:
        return abs(self.repeat_err) <= self.bound


def simulate(seed: int, sensor: str | None = None) -> Case:
    """Run one randomised case (``sensor`` forces one of :data:`SENSORS`)."""
    from bertwatt import EnergyMeter, measure_repeated
    from bertwatt.backends.nvml import NVMLBackend
    from bertwatt.errors import MeasurementWarning
    from bertwatt.testing.clock import FakeClock
    from bertwatt.testing.nvml import FakeGPU, FakeNVML, SensorModel

    rng = random.Random(seed)
    sensor = sensor or rng.choice(SENSORS)
    phase = rng.uniform(0.0, 0.1)
    reading = "average" if sensor.startswith("ampere") else "instant"
    model = SensorModel(power_reading=reading, phase_s=phase, energy_update_s=0.1)
    kernel_s = math.exp(rng.uniform(math.log(0.001), math.log(0.030)))
    host_s = rng.uniform(0.0, 0.2) * kernel_s
    busy_w, idle_w = rng.uniform(150.0, 400.0), rng.uniform(40.0, 80.0)
    true_per_call = busy_w * kernel_s + idle_w * host_s

    clock = FakeClock()
    gpu = FakeGPU(power_w=idle_w, sensor=model, supports_energy_counter=sensor.endswith("counter"))
    fake = FakeNVML([gpu], clock=clock)

    def kernel() -> None:
        t = fake.elapsed_s()
        gpu.set_power(busy_w, at_s=t)
        clock.advance(kernel_s)
        gpu.set_power(idle_w, at_s=t + kernel_s)
        clock.advance(host_s)

    with fake.install():
        clock.advance(rng.uniform(1.0, 2.0))
        meter = EnergyMeter(backends=[NVMLBackend()], clock=clock)
        meter.start()
        try:
            clock.advance(1.0 + rng.uniform(0.0, 0.1))
            a = meter.mark()
            kernel()
            b = meter.mark()
            clock.advance(0.25)  # a power channel resolves the edge with its next sample
            single = meter.energy_between(a, b).energy_j
            assert single is not None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", MeasurementWarning)
                result = measure_repeated(kernel, meter=meter, seed=rng.randrange(2**32))
        finally:
            meter.stop(warn=False)
    return Case(
        sensor=sensor,
        kernel_ms=kernel_s * 1e3,
        busy_w=busy_w,
        single_err=single / true_per_call - 1.0,
        repeat_err=result.energy_per_call_j / true_per_call - 1.0,
        bound=result.error_bound_rel,
        spread=result.spread_rel,
    )


def _pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def table(cases: list[Case]) -> str:
    """The markdown table of errors by sensor, over all cases."""
    lines = [
        "| sensor path | cases | one window: median abs. error | one window: worst "
        "| repeated: median abs. error | repeated: worst | claimed bound | within bound "
        "| error cut (median) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    groups = [(s, [c for c in cases if c.sensor == s]) for s in SENSORS] + [("all", cases)]
    for name, group in groups:
        if not group:
            continue
        single = [abs(c.single_err) for c in group]
        rep = [abs(c.repeat_err) for c in group]
        cut = statistics.median(single) / max(statistics.median(rep), 1e-12)
        within = sum(c.within for c in group)
        lines.append(
            f"| {name} | {len(group)} | {_pct(statistics.median(single))} | {_pct(max(single))} "
            f"| {_pct(statistics.median(rep))} | {_pct(max(rep))} "
            f"| {_pct(max(c.bound for c in group))} | {within}/{len(group)} | {cut:.0f}x |"
        )
    return "\n".join(lines)


def write_docs(text: str, command: str) -> None:
    """Replace the repeat table in docs/accuracy.md between its markers."""
    path = REPO / "docs" / "accuracy.md"
    doc = path.read_text(encoding="utf-8")
    begin, end = "<!-- repeat-accuracy:begin -->", "<!-- repeat-accuracy:end -->"
    block = f"{begin}\nMeasured with `{command}`:\n\n{text}\n{end}"
    new, n = re.subn(re.escape(begin) + ".*?" + re.escape(end), block, doc, flags=re.S)
    if n != 1:
        raise SystemExit(f"{path}: markers {begin} ... {end} not found")
    path.write_text(new, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=300)
    p.add_argument("--seed", type=int, default=20261130)
    p.add_argument("--write-docs", action="store_true")
    args = p.parse_args(argv)
    cases = [simulate(args.seed + i) for i in range(args.cases)]
    text = table(cases)
    print(text)
    if args.write_docs:
        cmd = f"python benchmarks/bench_repeat_accuracy.py --cases {args.cases} --seed {args.seed}"
        write_docs(text, cmd)
    missed = [c for c in cases if not c.within]
    for c in missed:
        print(f"outside the bound: {c}", file=sys.stderr)
    return 1 if len(missed) > 0.05 * len(cases) else 0


if __name__ == "__main__":
    sys.exit(main())
