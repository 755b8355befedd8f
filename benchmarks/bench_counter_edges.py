"""Counter-path window edges on a simulated A100: how far off a window's energy is.

Method (randomised, seeded, on the fake clock so each case is exact and takes no real time):
each case draws a true power trace (constant; square waves of 0.2-30 s periods and duty cycles
0.1-0.9; 5-50 ms spikes; ramps: ``tests/test_uncertainty.py``'s generator), a window of
0.5-120 s (log-uniform) after a lead of 2-3 s, and an A100 sensor model of the fake ``pynvml``
(``bertwatt.testing.SensorModel``): an energy counter moving every 100 ms at a random phase, and
a board gain error drawn from +/-5 %. The real meter, sampler, NVML backend, timelines and report
builder measure the window (``EnergyMeter(backends=[NVMLBackend()])``, defaults otherwise), and
the figure is compared with the exact integral of the trace over the window. The error is
reported with the gain taken out (it is the sensor's, not the edges'); the interval's coverage is
checked against the true energy.

It uses public names only, so it runs against any checkout: put that checkout's ``src`` first on
``PYTHONPATH`` to measure it (docs/accuracy.md compares this one with the one before
self-characterisation).

Run: ``python benchmarks/bench_counter_edges.py [--trials N] [--seed S]``.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
A100 = "NVIDIA A100-SXM4-40GB"


@dataclass(frozen=True)
class Case:
    """One simulated window: the truth and what bertwatt reported."""

    trace: str
    duration_s: float
    truth_j: float
    energy_j: float
    low_j: float
    high_j: float
    basis: str

    @property
    def rel_error(self) -> float:
        """Error of the figure with the board's gain taken out."""
        return (self.energy_j - self.truth_j) / self.truth_j

    @property
    def covered(self) -> bool:
        """Whether the reported interval holds the true energy."""
        return self.low_j <= self.truth_j <= self.high_j


def _random_trace(rng: random.Random, span_s: float) -> tuple[str, list[tuple[float, float]]]:
    tests = str(REPO / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    from test_uncertainty import _random_trace as trace

    return trace(rng, span_s)


def simulate(rng: random.Random) -> Case:
    """One random window on the counter path through the real meter."""
    from bertwatt import EnergyMeter
    from bertwatt.backends.nvml import NVMLBackend
    from bertwatt.testing import FakeClock, FakeGPU, FakeNVML, PowerTrace, SensorModel

    duration = math.exp(rng.uniform(math.log(0.5), math.log(120.0)))
    lead = 2.0 + rng.uniform(0.0, 1.0)
    name, steps = _random_trace(rng, lead + duration + 2.0)
    gain = 1.0 + rng.uniform(-0.05, 0.05)
    sensor = SensorModel(
        power_reading="instant", gain=gain, energy_update_s=0.1, phase_s=rng.uniform(0, 0.099)
    )
    gpu = FakeGPU(A100, power_w=steps, sensor=sensor, power_limit_w=1000.0)
    clock = FakeClock(start_s=1000.0 + rng.uniform(0.0, 1.0))
    fake = FakeNVML([gpu], clock=clock)
    with fake.install():
        clock.advance(lead)
        t0 = fake.elapsed_s()
        with EnergyMeter(backends=[NVMLBackend()], clock=clock) as m:
            clock.advance(duration)
        t1 = fake.elapsed_s()
    r = m.report
    assert r.energy_j is not None and r.energy_interval_j is not None
    true = PowerTrace(steps)
    return Case(
        trace=name,
        duration_s=t1 - t0,
        truth_j=true.energy_j(t1) - true.energy_j(t0),
        energy_j=r.energy_j / gain,
        low_j=r.energy_interval_j[0],
        high_j=r.energy_interval_j[1],
        basis=r.channels[0].interval_basis or "",
    )


def run_cases(trials: int, seed: int) -> list[Case]:
    """``trials`` random windows from ``seed``."""
    rng = random.Random(seed)
    return [simulate(rng) for _ in range(trials)]


def table(cases: list[Case]) -> str:
    """Errors and coverage by window length, as a markdown table."""
    lines = [
        "| window length | windows | median abs error | 90th percentile | max abs error "
        "| interval covers |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, lo, hi in (
        ("< 2 s", 0.0, 2.0),
        ("2-10 s", 2.0, 10.0),
        (">= 10 s", 10.0, math.inf),
        ("all", 0.0, math.inf),
    ):
        sel = [c for c in cases if lo <= c.duration_s < hi]
        if not sel:
            continue
        err = sorted(abs(c.rel_error) for c in sel)
        lines.append(
            f"| {label} | {len(sel)} | {100 * statistics.median(err):.3f} % | "
            f"{100 * err[int(0.9 * len(err))]:.3f} % | {100 * err[-1]:.3f} % | "
            f"{100 * sum(c.covered for c in sel) / len(sel):.1f} % |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    import bertwatt

    print(f"bertwatt from {Path(bertwatt.__file__).parent}")
    print(table(run_cases(args.trials, args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
