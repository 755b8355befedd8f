"""The fake NVML's sensor models, read through the fake ``pynvml`` module as a tool would."""

from __future__ import annotations

import math
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bertwatt.errors import ConfigError
from bertwatt.testing.clock import FakeClock
from bertwatt.testing.nvml import SENSOR_PRESETS, FakeGPU, FakeNVML, SensorModel


def started(gpu: FakeGPU) -> tuple[FakeClock, types.ModuleType, object]:
    clock = FakeClock()
    fake = FakeNVML([gpu], clock=clock)
    mod = fake.module
    mod.nvmlInit()
    return clock, mod, mod.nvmlDeviceGetHandleByIndex(0)


def power_w(mod: types.ModuleType, handle: object) -> float:
    return mod.nvmlDeviceGetPowerUsage(handle) / 1000


def energy_j(mod: types.ModuleType, handle: object) -> float:
    return mod.nvmlDeviceGetTotalEnergyConsumption(handle) / 1000


def test_default_sensor_is_exact_and_unchanged():
    gpu = FakeGPU(power_w=[(0.0, 50.0), (0.01, 300.0)])
    assert gpu.sensor == SensorModel() and gpu.sensor.exact
    clock, mod, h = started(gpu)
    assert power_w(mod, h) == 50.0
    clock.advance(0.01)
    assert power_w(mod, h) == 300.0
    clock.advance(0.99)
    assert energy_j(mod, h) == pytest.approx(0.5 + 297.0, abs=1e-3)


def test_instant_reading_sees_only_its_25_ms_window_of_each_100_ms():
    # 400 W for 25 ms at the start of each 100 ms, 100 W otherwise: an A100 sensor whose window
    # is in phase reads 400 W; one whose window sits 50 ms later reads 100 W. Both true means
    # are 175 W: the reading is blind to 75 % of the time.
    steps = []
    for k in range(20):
        steps += [(k * 0.1, 400.0), (k * 0.1 + 0.025, 100.0)]
    for phase, expected in ((0.0, 400.0), (0.05, 100.0)):
        gpu = FakeGPU(power_w=steps, sensor=SensorModel(power_reading="instant", phase_s=phase))
        clock, mod, h = started(gpu)
        clock.advance(0.3)
        readings = []
        for _ in range(50):
            clock.advance(0.013)
            readings.append(power_w(mod, h))
        assert readings == [pytest.approx(expected, abs=1e-3)] * 50
        assert gpu.energy_j(0.95) / 0.95 == pytest.approx(175.0, rel=0.03)


def test_instant_reading_holds_until_the_next_window_ends():
    gpu = FakeGPU(power_w=[(0.0, 100.0), (0.21, 300.0)], sensor="a100")
    clock, mod, h = started(gpu)
    clock.advance(0.224)  # the window [0.2, 0.225) has not ended: reading from [0.1, 0.125)
    assert power_w(mod, h) == pytest.approx(100.0)
    clock.advance(0.001)  # [0.2, 0.225) ended: 10 ms at 100 W and 15 ms at 300 W
    assert power_w(mod, h) == pytest.approx((0.01 * 100 + 0.015 * 300) / 0.025)
    clock.advance(0.1)
    assert power_w(mod, h) == pytest.approx(300.0)


def test_average_reading_is_a_1_s_mean_lagging_half_a_second():
    # A step from 100 W to 300 W at t = 5 s. The averaged reading crosses the midpoint
    # (200 W) 0.5 s after the step, and reaches 300 W only a full second after it.
    gpu = FakeGPU(power_w=[(0.0, 100.0), (5.0, 300.0)], sensor="ampere")
    clock, mod, h = started(gpu)
    clock.advance(5.0)
    series = []
    for _ in range(150):
        clock.advance(0.01)
        series.append((round(clock.now_s - 1000.0, 3), power_w(mod, h)))
    crossing = next(t for t, w in series if w >= 200.0)
    assert crossing == pytest.approx(5.5, abs=0.101)
    assert dict(series)[5.5] == pytest.approx(200.0)
    assert dict(series)[5.95] < 300.0
    assert dict(series)[6.0] == pytest.approx(300.0)
    # Refreshed every 100 ms: constant between refreshes.
    assert dict(series)[5.31] == dict(series)[5.39]


@pytest.mark.parametrize("gain", [0.97, 1.0, 1.04])
def test_gain_error_scales_power_and_counter_alike(gain: float):
    gpu = FakeGPU(power_w=250.0, sensor=SensorModel(gain=gain), energy_at_start_j=1000.0)
    clock, mod, h = started(gpu)
    clock.advance(10.0)
    assert power_w(mod, h) == pytest.approx(250.0 * gain, abs=1e-3)
    assert energy_j(mod, h) == pytest.approx(1000.0 + 2500.0 * gain, abs=1e-3)
    assert gpu.energy_j(10.0) == pytest.approx(3500.0)  # the truth is not scaled
    assert gpu.power_at(10.0) == 250.0


def test_counter_moves_in_100_ms_steps():
    gpu = FakeGPU(power_w=200.0, sensor=SensorModel(energy_update_s=0.1, phase_s=0.03))
    clock, mod, h = started(gpu)
    values = []
    for _ in range(100):
        clock.advance(0.005)
        values.append(energy_j(mod, h))
    changes = [i for i in range(1, 100) if values[i] != values[i - 1]]
    # 5 ms polls: a change every 20 polls, at t = 0.03 + k * 0.1 s.
    assert [round((i + 1) * 0.005, 3) for i in changes] == [0.03, 0.13, 0.23, 0.33, 0.43]
    assert values[changes[1]] == pytest.approx(200 * 0.13, abs=1e-3)


@settings(max_examples=60, deadline=None)
@given(
    update_ms=st.integers(min_value=10, max_value=500),
    phase_frac=st.floats(min_value=0.0, max_value=0.99),
    polls_ms=st.lists(st.integers(min_value=0, max_value=2000), min_size=1, max_size=12),
    gain=st.floats(min_value=0.9, max_value=1.1),
)
def test_stepped_counter_lags_the_truth_by_at_most_one_update(
    update_ms: int, phase_frac: float, polls_ms: list[int], gain: float
):
    period = update_ms / 1000
    model = SensorModel(
        energy_update_s=period,
        gain=gain,
        period_s=period,
        window_s=period / 4,
        phase_s=phase_frac * period,
    )
    gpu = FakeGPU(power_w=[(0.0, 80.0), (0.7, 350.0)], sensor=model)
    clock, mod, h = started(gpu)
    last = -1.0
    for ms in polls_ms:
        clock.advance(ms / 1000)
        t = clock.now_s - 1000.0
        got = energy_j(mod, h)
        assert got >= last  # monotonic, like the real counter
        last = got
        truth = gain * gpu.energy_j(t)
        assert truth - 350.0 * gain * period - 1e-3 <= got <= truth + 1e-9


def test_set_power_drives_the_trace_with_exact_energy():
    gpu = FakeGPU(power_w=50.0)
    clock, mod, h = started(gpu)
    clock.advance(1.0)
    gpu.set_power(400.0, at_s=1.0)
    clock.advance(0.002)
    gpu.set_power(50.0, at_s=1.002)
    clock.advance(0.998)
    assert energy_j(mod, h) == 50.0 * 2 + 350.0 * 0.002
    assert power_w(mod, h) == 50.0
    with pytest.raises(ConfigError, match="before the last step"):
        gpu.set_power(10.0, at_s=0.5)
    with pytest.raises(ConfigError, match="step trace"):
        FakeGPU(power_w=lambda t: 5.0).set_power(1.0, at_s=1.0)


def test_sensor_on_a_callable_trace():
    gpu = FakeGPU(power_w=lambda t: 100.0 + 100.0 * t, sensor="hopper_average")
    clock, mod, h = started(gpu)
    clock.advance(3.05)
    # Mean over [2.0, 3.0] of a line: its value at 2.5 s.
    assert power_w(mod, h) == pytest.approx(350.0, abs=1e-3)


def test_each_gpu_has_its_own_sensor():
    a = FakeGPU(power_w=100.0, sensor=SensorModel(gain=1.05))
    b = FakeGPU(power_w=100.0)
    clock = FakeClock()
    fake = FakeNVML([a, b], clock=clock)
    mod = fake.module
    mod.nvmlInit()
    clock.advance(1.0)
    ha, hb = (mod.nvmlDeviceGetHandleByIndex(i) for i in range(2))
    assert (power_w(mod, ha), power_w(mod, hb)) == (105.0, 100.0)


def test_presets_and_overrides():
    assert set(SENSOR_PRESETS) >= {"exact", "a100", "h100", "ampere", "hopper_average"}
    assert FakeGPU(sensor="h100").sensor.power_reading == "instant"
    assert FakeGPU(sensor="a100").sensor.energy_update_s == 0.1
    from bertwatt.testing._nvml_sensor import sensor_model

    model = sensor_model("a100", gain=1.03, phase_s=0.04)
    assert (model.gain, model.phase_s, model.window_s) == (1.03, 0.04, 0.025)
    with pytest.raises(ConfigError, match="unknown SensorModel fields"):
        sensor_model("a100", gian=1.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"power_reading": "smoothed"}, "power_reading"),
        ({"gain": 0.0}, "gain"),
        ({"gain": math.nan}, "gain"),
        ({"window_s": 0.2}, "cannot exceed"),
        ({"phase_s": 0.1}, "phase_s"),
        ({"energy_update_s": -1.0}, "energy_update_s"),
        ({"average_s": True}, "average_s"),
    ],
)
def test_bad_sensor_models_are_refused(kwargs: dict[str, object], match: str):
    with pytest.raises(ConfigError, match=match):
        SensorModel(**kwargs)  # type: ignore[arg-type]


def test_unknown_preset_is_refused():
    with pytest.raises(ConfigError, match="sensor must be"):
        FakeGPU(sensor="b200")


def test_origin_ns_shares_one_trace_between_fakes():
    clock = FakeClock()
    clock.advance(5.0)
    gpu = FakeGPU(power_w=[(0.0, 10.0), (3.0, 20.0)])
    early = FakeNVML([gpu], clock=clock, origin_ns=clock.monotonic_ns() - 4_000_000_000)
    assert early.elapsed_s() == 4.0
    early.module.nvmlInit()
    handle = early.module.nvmlDeviceGetHandleByIndex(0)
    assert early.module.nvmlDeviceGetPowerUsage(handle) == 20_000
    assert early.module.nvmlDeviceGetTotalEnergyConsumption(handle) == 50_000
    with pytest.raises(ConfigError, match="origin_ns"):
        FakeNVML([gpu], origin_ns=1.5)  # type: ignore[arg-type]
