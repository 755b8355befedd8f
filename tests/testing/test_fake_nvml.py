"""The public fake pynvml: traces, counters, faults, errors and sys.modules handling."""

from __future__ import annotations

import math
import pickle
import sys
import types
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bertwatt.errors import ConfigError
from bertwatt.testing.clock import FakeClock
from bertwatt.testing.nvml import FakeGPU, FakeNVML, NVMLError

ENERGY = "nvmlDeviceGetTotalEnergyConsumption"
POWER = "nvmlDeviceGetPowerUsage"


def started(*gpus: FakeGPU, clock: FakeClock | None = None) -> tuple[FakeNVML, types.ModuleType]:
    fake = FakeNVML(gpus, clock=clock or FakeClock())
    fake.module.nvmlInit()
    return fake, fake.module


# -- energy is the integral of power --------------------------------------------------------


def expected_mj(steps: list[tuple[int, float]], elapsed_ns: int) -> Fraction:
    """Integral of a piecewise-constant trace (times in ns) from 0 to elapsed_ns, in mJ."""
    total = Fraction(0)
    for i, (start_ns, watts) in enumerate(steps):
        end_ns = steps[i + 1][0] if i + 1 < len(steps) else elapsed_ns
        end_ns = min(end_ns, elapsed_ns)
        if end_ns > start_ns:
            total += Fraction(watts) * (end_ns - start_ns) / 1_000_000
    return total


piecewise = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=20_000),  # step length in ms
        st.floats(min_value=0.0, max_value=1_500.0, allow_nan=False),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=150, deadline=None)
@given(
    lengths_and_watts=piecewise,
    advances_ms=st.lists(st.integers(min_value=0, max_value=30_000), min_size=1, max_size=10),
    start_j=st.sampled_from([0.0, 123_456.789]),
)
def test_counter_is_the_exact_integral_of_a_piecewise_trace(
    lengths_and_watts: list[tuple[int, float]], advances_ms: list[int], start_j: float
) -> None:
    steps_ms: list[tuple[int, float]] = []
    t_ms = 0
    for length_ms, watts in lengths_and_watts:
        steps_ms.append((t_ms, watts))
        t_ms += length_ms
    clock = FakeClock()
    gpu = FakeGPU(power_w=[(t / 1000, w) for t, w in steps_ms], energy_at_start_j=start_j)
    _, nvml = started(gpu, clock=clock)
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    steps_ns = [(t * 1_000_000, w) for t, w in steps_ms]
    elapsed_ns = 0
    previous = -1
    for advance_ms in advances_ms:
        clock.advance(advance_ms / 1000)
        elapsed_ns += advance_ms * 1_000_000
        counter = nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        assert isinstance(counter, int)
        assert counter == math.floor(Fraction(start_j) * 1000 + expected_mj(steps_ns, elapsed_ns))
        assert counter >= previous
        previous = counter
        current = [w for t, w in steps_ns if t <= elapsed_ns][-1]
        assert nvml.nvmlDeviceGetPowerUsage(handle) == round(current * 1000)
        assert gpu.power_at(elapsed_ns / 1e9) == current


def test_constant_trace_counter_and_power_units() -> None:
    clock = FakeClock()
    fake, nvml = started(FakeGPU(power_w=250.5, energy_at_start_j=10.0), clock=clock)
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    assert nvml.nvmlDeviceGetTotalEnergyConsumption(handle) == 10_000
    clock.advance(0.001)
    assert nvml.nvmlDeviceGetTotalEnergyConsumption(handle) == 10_250  # 250.5 mJ, floored
    assert nvml.nvmlDeviceGetPowerUsage(handle) == 250_500
    assert fake.elapsed_s() == pytest.approx(0.001)


def test_callable_trace_is_integrated_numerically() -> None:
    clock = FakeClock()
    gpu = FakeGPU(power_w=lambda t: 200.0 + 100.0 * math.sin(t))
    _, nvml = started(gpu, clock=clock)
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    for _ in range(5):
        clock.advance(7.3)
        t = clock.now_s - 1000.0
        exact_mj = (200.0 * t + 100.0 * (1.0 - math.cos(t))) * 1000.0
        assert abs(nvml.nvmlDeviceGetTotalEnergyConsumption(handle) - exact_mj) <= 1.0
        assert nvml.nvmlDeviceGetPowerUsage(handle) == round((200.0 + 100.0 * math.sin(t)) * 1000)
    assert gpu.energy_j(t) == pytest.approx(exact_mj / 1000.0, abs=1e-3)


def test_callable_trace_must_return_valid_watts() -> None:
    _, nvml = started(FakeGPU(power_w=lambda t: -1.0))
    with pytest.raises(ConfigError, match="power_w"):
        nvml.nvmlDeviceGetPowerUsage(nvml.nvmlDeviceGetHandleByIndex(0))


def test_system_clock_by_default() -> None:
    fake = FakeNVML([FakeGPU(power_w=100.0)])
    nvml = fake.module
    nvml.nvmlInit()
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    first = nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    assert nvml.nvmlDeviceGetTotalEnergyConsumption(handle) >= first >= 0
    assert fake.elapsed_s() >= 0.0
    assert repr(fake.clock) == "SystemClock()"


@pytest.mark.parametrize(
    "trace",
    [
        [],
        [(1.0, 10.0)],
        [(0.0, 10.0), (2.0, 20.0), (2.0, 30.0)],
        [(0.0, -5.0)],
        [(0.0, math.nan)],
        [(0.0, True)],
        math.inf,
        "100",
        [(0.0,)],
    ],
)
def test_bad_traces_are_rejected(trace: object) -> None:
    with pytest.raises(ConfigError):
        FakeGPU(power_w=trace)  # type: ignore[arg-type]


# -- faults ----------------------------------------------------------------------------------


def test_fault_window_applies_between_at_and_until() -> None:
    clock = FakeClock()
    gpu = FakeGPU()
    gpu.fail("gpu_lost", at_s=2.0, until_s=4.0)
    _, nvml = started(gpu, clock=clock)
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    clock.advance(1.999)
    nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    clock.advance(0.001)
    with pytest.raises(nvml.NVMLError_GpuIsLost) as caught:
        nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    assert caught.value.value == nvml.NVML_ERROR_GPU_IS_LOST
    assert str(caught.value) == "GPU is lost"
    with pytest.raises(nvml.NVMLError):
        nvml.nvmlDeviceGetHandleByIndex(0)
    clock.advance(2.0)
    nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    nvml.nvmlDeviceGetHandleByIndex(0)


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("gpu_lost", 15),
        ("not_supported", 3),
        ("no_permission", 4),
        ("unknown", 999),
    ],
)
def test_fault_kinds_and_call_filter(kind: str, code: int) -> None:
    gpu = FakeGPU()
    gpu.fail(kind, calls=POWER)
    _, nvml = started(gpu, FakeGPU())
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    with pytest.raises(nvml.NVMLError) as caught:
        nvml.nvmlDeviceGetPowerUsage(handle)
    assert caught.value.value == code
    nvml.nvmlDeviceGetTotalEnergyConsumption(handle)  # other calls unaffected
    nvml.nvmlDeviceGetPowerUsage(nvml.nvmlDeviceGetHandleByIndex(1))  # other GPUs unaffected
    gpu.clear_faults()
    nvml.nvmlDeviceGetPowerUsage(handle)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "melted"},
        {"kind": "gpu_lost", "at_s": -1.0},
        {"kind": "gpu_lost", "at_s": 2.0, "until_s": 2.0},
        {"kind": "gpu_lost", "calls": "nvmlDeviceGetTemperature"},
        {"kind": "gpu_lost", "calls": []},
    ],
)
def test_bad_faults_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        FakeGPU().fail(**kwargs)  # type: ignore[arg-type]


# -- module behaviour ------------------------------------------------------------------------


def test_calls_need_nvml_init_like_the_real_library() -> None:
    fake = FakeNVML([FakeGPU()])
    nvml = fake.module
    assert isinstance(nvml, types.ModuleType) and nvml.__name__ == "pynvml"
    with pytest.raises(nvml.NVMLError_Uninitialized):
        nvml.nvmlDeviceGetCount()
    with pytest.raises(nvml.NVMLError_Uninitialized):
        nvml.nvmlShutdown()
    nvml.nvmlInit()
    nvml.nvmlInit()
    assert nvml.nvmlDeviceGetCount() == 1
    nvml.nvmlShutdown()
    assert fake.initialised
    nvml.nvmlShutdown()
    assert not fake.initialised
    with pytest.raises(nvml.NVMLError_Uninitialized):
        nvml.nvmlDeviceGetCount()
    assert (fake.init_count, fake.shutdown_count) == (2, 2)
    assert fake.calls["nvmlDeviceGetCount"] == 3


def test_init_error_can_be_set_and_cleared() -> None:
    fake = FakeNVML([FakeGPU()], init_error="driver_not_loaded")
    with pytest.raises(fake.module.NVMLError_DriverNotLoaded, match="Driver Not Loaded"):
        fake.module.nvmlInit()
    fake.init_error = "library_not_found"
    with pytest.raises(fake.module.NVMLError_LibraryNotFound):
        fake.module.nvmlInit()
    fake.init_error = None
    fake.module.nvmlInit()
    assert fake.initialised
    with pytest.raises(ConfigError):
        fake.init_error = "cosmic_rays"


def test_handles_names_and_limits() -> None:
    gpu = FakeGPU("Tesla V100-SXM2-16GB", uuid="GPU-12345678", power_limit_w=300.0)
    fake, nvml = started(gpu, FakeGPU(power_limit_w=None), clock=FakeClock())
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    assert nvml.nvmlDeviceGetHandleByUUID("GPU-12345678") is handle
    assert nvml.nvmlDeviceGetHandleByUUID(b"GPU-12345678") is handle
    assert nvml.nvmlDeviceGetName(handle) == "Tesla V100-SXM2-16GB"
    assert nvml.nvmlDeviceGetUUID(handle) == "GPU-12345678"
    assert nvml.nvmlDeviceGetIndex(handle) == 0
    assert nvml.nvmlDeviceGetEnforcedPowerLimit(handle) == 300_000
    assert nvml.nvmlDeviceGetPowerManagementLimit(handle) == 300_000
    assert nvml.nvmlSystemGetDriverVersion() == fake.driver_version
    assert nvml.nvmlDeviceGetMigMode(handle) == [0, 0]
    assert not nvml.nvmlDeviceIsMigDeviceHandle(handle).value
    with pytest.raises(nvml.NVMLError_NotSupported):
        nvml.nvmlDeviceGetEnforcedPowerLimit(nvml.nvmlDeviceGetHandleByIndex(1))
    with pytest.raises(nvml.NVMLError_InvalidArgument):
        nvml.nvmlDeviceGetHandleByIndex(2)
    with pytest.raises(nvml.NVMLError_NotFound):
        nvml.nvmlDeviceGetHandleByUUID("GPU-nope")
    with pytest.raises(nvml.NVMLError_InvalidArgument):
        nvml.nvmlDeviceGetName(object())
    _, other = started(FakeGPU(supports_energy_counter=False))
    foreign = other.nvmlDeviceGetHandleByIndex(0)
    with pytest.raises(other.NVMLError_NotSupported):
        other.nvmlDeviceGetTotalEnergyConsumption(foreign)
    with pytest.raises(nvml.NVMLError_InvalidArgument):
        nvml.nvmlDeviceGetTotalEnergyConsumption(foreign)  # a handle from another fake


def test_mig_devices() -> None:
    gpu = FakeGPU(uuid="GPU-parent", mig_devices=["MIG-aaaa", "MIG-bbbb"])
    _, nvml = started(gpu, FakeGPU(mig_devices=3))
    parent = nvml.nvmlDeviceGetHandleByIndex(0)
    assert nvml.nvmlDeviceGetMigMode(parent) == [1, 1]
    mig = nvml.nvmlDeviceGetHandleByUUID("MIG-bbbb")
    assert nvml.nvmlDeviceIsMigDeviceHandle(mig).value == 1
    assert nvml.nvmlDeviceGetUUID(mig) == "MIG-bbbb"
    assert nvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(mig) is parent
    with pytest.raises(nvml.NVMLError_InvalidArgument):
        nvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(parent)
    with pytest.raises(nvml.NVMLError_NotSupported):
        nvml.nvmlDeviceGetTotalEnergyConsumption(mig)
    with pytest.raises(nvml.NVMLError_NotSupported):
        nvml.nvmlDeviceGetPowerUsage(mig)
    assert nvml.nvmlDeviceGetMaxMigDeviceCount(parent) == 7
    assert nvml.nvmlDeviceGetUUID(nvml.nvmlDeviceGetMigDeviceHandleByIndex(parent, 0)) == (
        "MIG-aaaa"
    )
    with pytest.raises(nvml.NVMLError_NotFound):
        nvml.nvmlDeviceGetMigDeviceHandleByIndex(parent, 2)
    other = nvml.nvmlDeviceGetHandleByIndex(1)
    generated = [
        nvml.nvmlDeviceGetUUID(nvml.nvmlDeviceGetMigDeviceHandleByIndex(other, i)) for i in range(3)
    ]
    assert all(u.startswith("MIG-") for u in generated) and len(set(generated)) == 3


def test_duplicate_uuids_are_rejected() -> None:
    with pytest.raises(ConfigError, match="distinct"):
        FakeNVML([FakeGPU(uuid="GPU-same"), FakeGPU(uuid="GPU-same")])
    with pytest.raises(ConfigError):
        FakeGPU(uuid="not-a-uuid")
    with pytest.raises(ConfigError):
        FakeGPU(mig_devices=8)


# -- errors match the real pynvml ------------------------------------------------------------


def test_error_codes_classes_and_texts_match_real_pynvml() -> None:
    real = pytest.importorskip("pynvml")
    if not hasattr(real, "NVML_ERROR_GPU_IS_LOST"):
        pytest.skip("the importable pynvml is not nvidia-ml-py")
    nvml = FakeNVML([]).module
    real_codes = {k: v for k, v in vars(real).items() if k.startswith("NVML_ERROR_")}
    fake_codes = {k: v for k, v in vars(nvml).items() if k.startswith("NVML_ERROR_")}
    assert fake_codes == real_codes
    for name, code in real_codes.items():
        real_cls = real.nvmlExceptionClass(code)
        fake_cls = nvml.nvmlExceptionClass(code)
        assert fake_cls.__name__ == real_cls.__name__, name
        assert getattr(nvml, fake_cls.__name__) is fake_cls
        assert fake_cls().value == code
        assert isinstance(nvml.NVMLError(code), fake_cls)
        if code in real.NVMLError._errcode_to_string:
            assert str(fake_cls()) == str(real_cls()), name
    assert str(nvml.NVMLError(12345)) == "NVML Error with code 12345"


def test_errors_compare_by_code_and_pickle() -> None:
    lost = NVMLError(15)
    assert lost == NVMLError(15) and lost != NVMLError(3)
    assert type(lost).__name__ == "NVMLError_GpuIsLost"
    again = pickle.loads(pickle.dumps(lost))
    assert type(again) is type(lost) and again.value == 15


# -- install / restore -----------------------------------------------------------------------


def test_install_puts_module_in_sys_modules_and_removes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "pynvml", raising=False)
    fake = FakeNVML([FakeGPU()])
    with fake.install() as module:
        assert module is fake.module
        import pynvml

        assert pynvml is fake.module
    assert "pynvml" not in sys.modules


def test_install_restores_the_previous_module_even_on_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    previous = types.ModuleType("pynvml")
    monkeypatch.setitem(sys.modules, "pynvml", previous)
    outer, inner = FakeNVML([FakeGPU()]), FakeNVML([])
    with pytest.raises(RuntimeError), outer.install():
        with inner.install():
            assert sys.modules["pynvml"] is inner.module
        assert sys.modules["pynvml"] is outer.module
        raise RuntimeError("boom")
    assert sys.modules["pynvml"] is previous
