"""A repeat protocol for workloads shorter than the sensors can see.

NVML's energy counter moves about every 100 ms and the A100/H100 power reading sees 25 ms of each
100 ms (Yang, Adámek, Armour, SC24; see docs/accuracy.md). One window around a 5 ms kernel then
reads either nothing or a whole update's worth: errors of -100 % or several hundred percent. The
protocol of :func:`measure_repeated` turns that into an error bounded by the sensor period over
the trial length:

1. **Warm-up discarded.** ``warmup`` calls first, outside every window (caches, JIT, clocks);
   their times calibrate how many calls a trial needs.
2. **Enough iterations.** Each trial calls ``fn`` back to back until at least ``min_duration_s``
   has passed, so the edge error (at most one sensor period of power at each edge, of opposite
   signs) is at most ``sensor_period_s / min_duration_s`` of the trial's energy.
3. **A lead-in before each trial**, discarded: ``fn`` runs for two sensor periods before the
   window opens, with an edge (a reading) after the first, so the sensor's window at the opening
   edge sees the workload, not the idle gap, and a counter whose readings are placed at its
   steps (``bertwatt.characterise``) extrapolates the opening edge at the workload's power.
   Without it, the stale reading of the gap would bias every trial low.
4. **Sub-period phase shifts and randomised gaps.** Before trial *i* the protocol waits a random
   gap (``gap_s``) plus a stratified fraction of the sensor period, so the window edges fall at
   evenly spread phases of the sensor's update grid and the edge errors average out across
   trials instead of repeating.
5. **Mean and spread.** Per-call energy of each trial, their mean, standard deviation, median,
   min and max; a :class:`~bertwatt.errors.MeasurementWarning` when the spread exceeds 10 %.

The claim, :attr:`RepeatResult.error_bound_rel`, is ``sensor_period_s`` over the shortest trial:
with a steady per-call power the per-call energy of every trial is within it, and the mean is
usually far inside (``tests/test_repeat.py`` and ``benchmarks/bench_repeat_accuracy.py`` check
it in randomised simulations on the fake NVML). It bounds sampling error only: a board's gain
error (a few percent) is the same in every trial and no repetition removes it.
"""

from __future__ import annotations

import math
import random
import statistics
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bertwatt._checks import check_number
from bertwatt.errors import ConfigError, MeasurementWarning, SensorReadError

if TYPE_CHECKING:
    from bertwatt.backends import Backend
    from bertwatt.clock import Clock
    from bertwatt.meter import EnergyMeter

__all__ = ["RepeatResult", "Trial", "measure_repeated"]

#: The sensor period assumed by default: NVML's counter updates and power windows (100 ms).
DEFAULT_SENSOR_PERIOD_S = 0.1
#: Relative spread across trials above which a MeasurementWarning is raised (after pyperf).
SPREAD_WARNING = 0.10

_NS = 1_000_000_000
_RESOLVE_WAIT_S = 2.0  # how long to wait for a power channel's sample past the last edge


@dataclass(frozen=True)
class Trial:
    """One measured trial.

    Attributes:
        calls: how many times ``fn`` ran inside the window.
        duration_s: the window's length.
        energy_j: the window's energy over every counted channel.
        energy_per_call_j: ``energy_j / calls``.
        gap_s: the wait before this trial's lead-in (random gap plus phase shift).
    """

    calls: int
    duration_s: float
    energy_j: float
    energy_per_call_j: float
    gap_s: float


@dataclass(frozen=True)
class RepeatResult:
    """What :func:`measure_repeated` measured: per-call energy, its mean and its spread.

    Attributes:
        energy_per_call_j: mean over trials of the per-call energy (J).
        stdev_j: sample standard deviation of the trials' per-call energies (0.0 for one trial).
        median_j, min_j, max_j: median and range of the trials' per-call energies.
        spread_rel: ``stdev_j / energy_per_call_j``.
        time_per_call_s: mean duration of one call inside the trials.
        trials: every trial, in order.
        warmup_calls: calls discarded before the first trial (lead-ins not counted).
        sensor_period_s: the sensor period the protocol was planned for.
        error_bound_rel: the protocol's claim: the sampling error of each trial's per-call
            energy is at most this fraction (``sensor_period_s`` over the shortest trial).
        source: the counted channels that measured it (``channels: gpu:0, ...``); their
            provenance (measured or estimated) is in the meter's report.
    """

    energy_per_call_j: float
    stdev_j: float
    median_j: float
    min_j: float
    max_j: float
    spread_rel: float
    time_per_call_s: float
    trials: tuple[Trial, ...]
    warmup_calls: int
    sensor_period_s: float
    error_bound_rel: float
    source: str

    def summary(self) -> str:
        """One line: mean ± standard deviation per call, trials, spread and the claimed bound."""
        calls = sum(t.calls for t in self.trials)
        return (
            f"{_si(self.energy_per_call_j)} ± {_si(self.stdev_j)} per call "
            f"(mean ± sd of {len(self.trials)} trials, {calls} calls, "
            f"{self.time_per_call_s * 1e3:.3g} ms per call; spread {self.spread_rel:.1%}; "
            f"sampling error <= {self.error_bound_rel:.1%} per trial; {self.source})"
        )


def _si(joules: float) -> str:
    for scale, unit in ((1.0, "J"), (1e-3, "mJ"), (1e-6, "uJ")):
        if abs(joules) >= scale:
            return f"{joules / scale:.4g} {unit}"
    return f"{joules / 1e-9:.4g} nJ"


def _check_count(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def _check_gap(gap_s: object) -> tuple[float, float]:
    try:
        first: object
        second: object
        first, second = gap_s  # type: ignore[misc]
    except (TypeError, ValueError):
        raise ConfigError(f"gap_s must be (low, high) seconds, got {gap_s!r}") from None
    low = check_number("gap_s low", first, low=0.0, unit="s")
    high = check_number("gap_s high", second, low=0.0, unit="s")
    if high < low:
        raise ConfigError(f"gap_s must be (low, high) with low <= high, got {gap_s!r}")
    return low, high


def measure_repeated(
    fn: Callable[[], object],
    *,
    trials: int = 5,
    warmup: int = 3,
    min_duration_s: float = 2.0,
    sensor_period_s: float = DEFAULT_SENSOR_PERIOD_S,
    gap_s: tuple[float, float] = (0.05, 0.25),
    seed: int | None = None,
    meter: EnergyMeter | None = None,
    backends: Sequence[Backend] | None = None,
    clock: Clock | None = None,
) -> RepeatResult:
    """Measure the energy of one call of a short ``fn`` by the repeat protocol.

    See the module docstring for the protocol and its claim. ``fn`` takes no arguments; wrap
    it (``lambda: model(x)``) and synchronise the device inside it when the work is
    asynchronous (the meter synchronises CUDA at window edges).

    Args:
        fn: the workload, called many times.
        trials: measured trials (>= 1; >= 3 for a meaningful spread).
        warmup: calls discarded before the first trial (>= 0).
        min_duration_s: each trial lasts at least this long (> 0).
        sensor_period_s: update period of the slowest sensor (NVML: 0.1 s); sets the lead-in,
            the phase shifts and the claimed bound.
        gap_s: ``(low, high)`` range of the random wait between trials, in seconds.
        seed: seed for the gaps and phases (``None``: unpredictable).
        meter: a meter to measure with; started (and stopped afterwards) if it is not running.
            ``None`` builds ``EnergyMeter(backends=backends, clock=clock)``.
        backends: backends for the meter built when ``meter`` is ``None`` (auto-detect if None).
        clock: clock for that meter (tests pass a FakeClock whose time ``fn`` advances).

    Returns:
        A :class:`RepeatResult`.

    Raises:
        ConfigError: for invalid arguments.
        SensorReadError: when no counted channel measured a trial (never a silent zero).
    """
    if not callable(fn):
        raise ConfigError(f"fn must be callable with no arguments, got {fn!r}")
    trials = _check_count("trials", trials, 1)
    warmup = _check_count("warmup", warmup, 0)
    min_duration_s = check_number(
        "min_duration_s", min_duration_s, low=0.0, low_inclusive=False, unit="s"
    )
    sensor_period_s = check_number(
        "sensor_period_s", sensor_period_s, low=0.0, low_inclusive=False, unit="s"
    )
    gap_low, gap_high = _check_gap(gap_s)
    if meter is not None and (backends is not None or clock is not None):
        raise ConfigError("pass meter=, or backends=/clock= for a new meter, not both")
    if meter is None:
        from bertwatt.meter import EnergyMeter

        meter = EnergyMeter(backends=backends, clock=clock)
    rng = random.Random(seed)
    owned = not meter.running
    if owned:
        meter.start()
    try:
        return _run(
            fn, meter, rng, trials, warmup, min_duration_s, sensor_period_s, gap_low, gap_high
        )
    finally:
        if owned:
            meter.stop(warn=False)


def _run(
    fn: Callable[[], object],
    meter: EnergyMeter,
    rng: random.Random,
    trials: int,
    warmup: int,
    min_duration_s: float,
    period_s: float,
    gap_low: float,
    gap_high: float,
) -> RepeatResult:
    now = meter.clock.monotonic_ns
    idle = threading.Event()  # never set: clock.wait on it is a sleep (a FakeClock advances)

    def run_for(seconds: float) -> int:
        start, calls = now(), 0
        deadline = start + round(seconds * _NS)
        while True:
            fn()
            calls += 1
            if now() >= deadline:
                return calls

    for _ in range(warmup):
        fn()
    offset = rng.random()  # stratified phases: (i + offset) / trials of a period
    order = list(range(trials))
    rng.shuffle(order)
    windows: list[tuple[int, int, int, float, float]] = []
    for i in range(trials):
        gap = rng.uniform(gap_low, gap_high) + ((order[i] + offset) / trials % 1.0) * period_s
        meter.clock.wait(idle, gap)
        run_for(period_s)  # lead-in, discarded: the opening edge's sensor window sees fn
        # a reading one period into the lead-in: a counter placed at its steps extrapolates the
        # opening edge at the power since then, the workload's alone
        meter.mark()
        run_for(period_s)
        a = meter.mark()
        t0 = now()
        calls = run_for(min_duration_s)
        t1 = now()
        windows.append((a, meter.mark(), calls, (t1 - t0) / _NS, gap))
    done: list[Trial] = []
    channels: set[str] = set()
    for i, (a, b, calls, duration_s, gap) in enumerate(windows):
        window = meter.energy_between(a, b)
        # A power channel resolves an edge with its next sample: wait a few sampling periods.
        waited = 0.0
        while not window.complete and waited < _RESOLVE_WAIT_S:
            step = max(meter.config.interval_s, 0.01)
            meter.clock.wait(idle, step)
            waited += step
            window = meter.energy_between(a, b)
        if window.energy_j is None:
            unresolved = [name for name, v in window.channels.items() if v is None]
            raise SensorReadError(
                f"trial {i + 1} of measure_repeated has no energy: no counted channel resolved "
                f"both edges (unresolved: {unresolved or 'no channels'})",
                fix="check `bertwatt sensors`, or pass backends= that measure this device",
            )
        channels.update(name for name, v in window.channels.items() if v is not None)
        done.append(Trial(calls, duration_s, window.energy_j, window.energy_j / calls, gap))
    per_call = [t.energy_per_call_j for t in done]
    mean = statistics.fmean(per_call)
    stdev = statistics.stdev(per_call) if len(per_call) > 1 else 0.0
    spread = stdev / mean if mean > 0 else math.inf
    shortest = min(t.duration_s for t in done)
    result = RepeatResult(
        energy_per_call_j=mean,
        stdev_j=stdev,
        median_j=statistics.median(per_call),
        min_j=min(per_call),
        max_j=max(per_call),
        spread_rel=spread,
        time_per_call_s=sum(t.duration_s for t in done) / sum(t.calls for t in done),
        trials=tuple(done),
        warmup_calls=warmup,
        sensor_period_s=period_s,
        error_bound_rel=period_s / shortest if shortest > 0 else math.inf,
        source="channels: " + ", ".join(sorted(channels)),
    )
    if len(done) > 1 and spread > SPREAD_WARNING:
        warnings.warn(
            f"measure_repeated: per-call energy varies by {spread:.1%} across {len(done)} "
            "trials (over 10%); the mean is unstable: run more trials or longer ones",
            MeasurementWarning,
            stacklevel=3,
        )
    return result
