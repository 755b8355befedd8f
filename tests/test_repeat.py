"""measure_repeated and ``bertwatt repeat``: the protocol's steps, and its claim in simulation."""

from __future__ import annotations

import importlib.util
import json
import statistics
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import bertwatt
from bertwatt import EnergyMeter, measure_repeated
from bertwatt.backends.nvml import NVMLBackend
from bertwatt.errors import ConfigError, MeasurementWarning, SensorReadError
from bertwatt.repeat import RepeatResult
from bertwatt.testing import FakeBackend, FakeChannel
from bertwatt.testing.clock import FakeClock
from bertwatt.testing.nvml import FakeGPU, FakeNVML, SensorModel

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location(
        "bench_repeat_accuracy", ROOT / "benchmarks" / "bench_repeat_accuracy.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_repeat_accuracy", mod)  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


class Rig:
    """A fake A100 driven by a kernel function that advances the fake clock."""

    def __init__(
        self,
        *,
        kernel_s: float = 0.004,
        busy_w: float = 300.0,
        idle_w: float = 60.0,
        sensor: SensorModel | str | None = "a100",
    ) -> None:
        self.clock = FakeClock()
        self.gpu = FakeGPU(power_w=idle_w, sensor=sensor)
        self.fake = FakeNVML([self.gpu], clock=self.clock)
        self.kernel_s, self.busy_w, self.idle_w = kernel_s, busy_w, idle_w
        self.calls = 0
        self.starts: list[float] = []

    def kernel(self) -> None:
        t = self.fake.elapsed_s()
        self.starts.append(t)
        self.calls += 1
        self.gpu.set_power(self.busy_w, at_s=t)
        self.clock.advance(self.kernel_s)
        self.gpu.set_power(self.idle_w, at_s=t + self.kernel_s)

    @property
    def true_j(self) -> float:
        return self.busy_w * self.kernel_s


def test_measure_repeated_is_public_and_lazy():
    assert "measure_repeated" in bertwatt.__all__
    assert bertwatt.measure_repeated is measure_repeated


def test_protocol_steps_on_a_fake_a100():
    rig = Rig()
    with rig.fake.install():
        meter = EnergyMeter(backends=[NVMLBackend()], clock=rig.clock)
        result = measure_repeated(
            rig.kernel, meter=meter, trials=4, warmup=3, seed=7, min_duration_s=1.0
        )
    assert isinstance(result, RepeatResult)
    assert not meter.running  # started and stopped by measure_repeated
    assert result.warmup_calls == 3 and len(result.trials) == 4
    for trial in result.trials:
        assert trial.duration_s >= 1.0  # enough iterations to exceed the minimum duration
        assert trial.calls == pytest.approx(1.0 / rig.kernel_s, abs=2)
        assert 0.05 <= trial.gap_s <= 0.25 + 0.1
    # warm-up, 4 lead-ins of >= 0.1 s, 4 trials: every call ran fn, none was counted twice
    counted = sum(t.calls for t in result.trials)
    assert rig.calls >= 3 + counted + 4 * 25
    assert result.error_bound_rel == pytest.approx(0.1 / min(t.duration_s for t in result.trials))
    assert abs(result.energy_per_call_j / rig.true_j - 1) <= result.error_bound_rel
    assert result.source == "channels: gpu:0"
    assert result.time_per_call_s == pytest.approx(rig.kernel_s)
    per_call = [t.energy_per_call_j for t in result.trials]
    assert result.energy_per_call_j == pytest.approx(statistics.fmean(per_call))
    assert result.stdev_j == pytest.approx(statistics.stdev(per_call))
    assert (result.min_j, result.max_j) == (min(per_call), max(per_call))
    assert "per call" in result.summary() and "4 trials" in result.summary()


def test_gaps_shift_the_phase_across_the_sensor_period_and_are_random():
    def phases(seed: int) -> list[float]:
        rig = Rig()
        with rig.fake.install():
            result = measure_repeated(
                rig.kernel,
                backends=[NVMLBackend()],
                clock=rig.clock,
                trials=5,
                seed=seed,
                min_duration_s=0.5,
                gap_s=(0.0, 0.0),
            )
        return [t.gap_s for t in result.trials]

    gaps = phases(1)
    # With no random part the gaps are the phase shifts: one in each fifth of 100 ms.
    assert sorted(int(g / 0.02) for g in gaps) == [0, 1, 2, 3, 4]
    assert phases(2) != gaps  # the offset and order are random
    assert phases(1) == gaps  # and seeded


def test_one_window_misses_a_short_kernel_that_the_protocol_measures():
    rig = Rig(kernel_s=0.003)
    with rig.fake.install():
        meter = EnergyMeter(backends=[NVMLBackend()], clock=rig.clock).start()
        rig.clock.advance(1.0)
        a = meter.mark()
        rig.kernel()
        b = meter.mark()
        single = meter.energy_between(a, b).energy_j
        result = measure_repeated(rig.kernel, meter=meter, seed=3)
        assert meter.running  # a meter it did not start is left running
        meter.stop(warn=False)
    assert single is not None and abs(single / rig.true_j - 1) > 0.5
    assert abs(result.energy_per_call_j / rig.true_j - 1) < 0.02


def test_randomised_simulation_meets_the_claim():
    bench = _bench()
    cases = [bench.simulate(seed) for seed in range(40)]
    assert {c.sensor for c in cases} == set(bench.SENSORS)
    assert all(c.within for c in cases), [c for c in cases if not c.within]
    single = statistics.median(abs(c.single_err) for c in cases)
    repeat = statistics.median(abs(c.repeat_err) for c in cases)
    assert single > 0.3 and repeat < 0.01 and single / repeat > 30
    assert "| all | 40 |" in bench.table(cases)


def test_wide_spread_warns():
    clock = FakeClock()
    n = {"i": 0}

    def uneven() -> None:
        n["i"] += 1
        clock.advance(0.01)

    channel = FakeChannel("gpu:0", kind="counter", power_w=lambda t: 100.0 + 90.0 * ((t // 3) % 2))
    with pytest.warns(MeasurementWarning, match="varies by"):
        measure_repeated(
            uneven,
            backends=[FakeBackend("fake", [channel], clock=clock)],
            clock=clock,
            trials=4,
            min_duration_s=1.0,
            gap_s=(2.0, 2.0),
            seed=0,
        )


def test_no_energy_is_an_error_not_a_zero():
    clock = FakeClock()
    gpu = FakeGPU(power_w=100.0)
    fake = FakeNVML([gpu], clock=clock)
    gpu.fail("gpu_lost", at_s=0.5)
    with (
        fake.install(),
        pytest.raises(SensorReadError, match="no energy"),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        measure_repeated(
            lambda: clock.advance(0.01),
            backends=[NVMLBackend()],
            clock=clock,
            trials=2,
            min_duration_s=0.2,
        )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"trials": 0}, "trials"),
        ({"trials": True}, "trials"),
        ({"warmup": -1}, "warmup"),
        ({"min_duration_s": 0.0}, "min_duration_s"),
        ({"sensor_period_s": float("nan")}, "sensor_period_s"),
        ({"gap_s": (0.3, 0.1)}, "low <= high"),
        ({"gap_s": 0.1}, "gap_s"),
        ({"meter": object(), "clock": FakeClock()}, "not both"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, object], match: str):
    with pytest.raises(ConfigError, match=match):
        measure_repeated(lambda: None, **kwargs)  # type: ignore[arg-type]


def test_fn_must_be_callable():
    with pytest.raises(ConfigError, match="callable"):
        measure_repeated(42)  # type: ignore[arg-type]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "bertwatt", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_cli_repeat_runs_a_command_and_reports_mean_and_spread():
    proc = _cli(
        "repeat",
        "--trials",
        "2",
        "--warmup",
        "1",
        "--min-duration",
        "0.2",
        "--seed",
        "1",
        "--json",
        "--",
        sys.executable,
        "-c",
        "pass",
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert len(data["trials"]) == 2 and data["warmup_calls"] == 1
    assert data["energy_per_call_j"] > 0 and data["stdev_j"] >= 0
    assert all(t["duration_s"] >= 0.2 and t["calls"] >= 1 for t in data["trials"])


def test_cli_repeat_stops_on_a_failing_command():
    proc = _cli(
        "repeat",
        "--trials",
        "1",
        "--warmup",
        "0",
        "--min-duration",
        "0.1",
        "--",
        sys.executable,
        "-c",
        "raise SystemExit(3)",
    )
    assert proc.returncode == 1
    assert "exited 3" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_repeat_needs_a_command_and_valid_counts():
    assert _cli("repeat").returncode == 2
    proc = _cli("repeat", "--trials", "0", "--", "true")
    assert proc.returncode == 2 and "must be >= 1" in proc.stderr


def test_an_exception_in_fn_propagates_and_stops_the_meter_it_started():
    rig = Rig()
    calls = {"n": 0}

    def flaky() -> None:
        calls["n"] += 1
        if calls["n"] == 50:
            raise RuntimeError("kernel failed")
        rig.kernel()

    with rig.fake.install():
        meter = EnergyMeter(backends=[NVMLBackend()], clock=rig.clock)
        with pytest.raises(RuntimeError, match="kernel failed"):
            measure_repeated(flaky, meter=meter, min_duration_s=0.5)
    assert not meter.running
