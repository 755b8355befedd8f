"""NVML power without an energy counter: the driver's buffered power samples, read ~1/s.

Everything goes through NVMLBackend and the meter against the fake pynvml module
(``FakeGPU(power_sample_period_s=...)`` models ``nvmlDeviceGetSamples``).
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Iterator

import pytest

from bertwatt import EnergyMeter
from bertwatt.backends._nvml_samples import MIN_SPAN_S
from bertwatt.backends.nvml import NVMLBackend
from bertwatt.testing.clock import FakeClock
from bertwatt.testing.nvml import FakeGPU, FakeNVML, NVMLError, SensorModel

SAMPLES = "nvmlDeviceGetSamples"
POWER = "nvmlDeviceGetPowerUsage"
UUID = "GPU-5a5a0000-0000-0000-0000-000000000000"
STEPS = [(0.0, 60.0), (2.35, 250.0), (6.71, 90.0)]


def exact_j(t0: float, t1: float) -> float:
    """The integral of STEPS over [t0, t1]."""
    total = 0.0
    for i, (ts, w) in enumerate(STEPS):
        end = STEPS[i + 1][0] if i + 1 < len(STEPS) else float("inf")
        lo, hi = max(t0, ts), min(t1, end)
        if hi > lo:
            total += w * (hi - lo)
    return total


@pytest.fixture(autouse=True)
def _no_cuda_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def old_gpu(**kw: object) -> FakeGPU:
    """A pre-Volta GPU: no energy counter; buffered power samples every 20 ms unless told."""
    kw.setdefault("power_sample_period_s", 0.02)
    kw.setdefault("power_sample_buffer", 250)  # 5 s
    return FakeGPU(
        "Tesla P100-PCIE-16GB",
        uuid=UUID,
        power_w=STEPS,
        power_limit_w=250.0,
        supports_energy_counter=False,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def sampled(clock: FakeClock) -> Iterator[FakeNVML]:
    clock.advance(5.0)  # the driver has filled its buffer before the meter starts
    fake = FakeNVML([old_gpu()], clock=clock, origin_ns=clock.monotonic_ns() - 5_000_000_000)
    with fake.install():
        yield fake


def test_a_gpu_without_counter_reads_buffered_samples_not_power(
    sampled: FakeNVML, clock: FakeClock
) -> None:
    backend = NVMLBackend()
    (ch,) = backend.probe().channels
    assert ch.kind == "power" and ch.mean_since_last_read
    assert ch.provenance.source == f"NVML {SAMPLES} (NVML_TOTAL_POWER_SAMPLES)"
    assert ch.provenance.update_period_s == pytest.approx(0.02)
    assert "once a second" in ch.provenance.method and "mean" in ch.provenance.method
    assert ch.info["power_sample_period_s"] == "0.02"
    assert sampled.calls[POWER] == 0
    # the time-weighted mean of the samples since the last one seen: 250 W from 5 to 6 s, then
    # 250 W until the step at 6.71 s and 90 W after it
    clock.advance(1.0)
    values, errors = backend.read()
    assert errors is None and values == pytest.approx([250.0])
    clock.advance(1.0)
    assert backend.read()[0] == pytest.approx([(250.0 * 0.71 + 90.0 * 0.29)], abs=0.02 * 160)
    backend.close()


def test_each_read_is_the_trapezoid_mean_since_the_previous_read(clock: FakeClock) -> None:
    fake = FakeNVML([old_gpu()], clock=clock)
    with fake.install():
        clock.advance(2.5)  # samples 0.02 .. 2.5 s: 2.5 s in the buffer, the least accepted
        backend = NVMLBackend()
        assert backend.probe().channels[0].kind == "power"
        clock.advance(0.1)  # 2.5 .. 2.6 s: the step to 250 W at 2.35 s is behind
        assert backend.read()[0] == pytest.approx([250.0])
        clock.advance(1.0)
        assert backend.read()[0] == pytest.approx([250.0])
        # nothing new since the last sample (NVML answers NOT_FOUND): the power holds
        assert backend.read() == ([250.0], None)
        clock.advance(0.01)  # still no new sample (one every 20 ms)
        assert backend.read() == ([250.0], None)
        backend.close()


def test_meter_reads_buffered_samples_about_once_a_second_and_the_energy_is_right(
    sampled: FakeNVML, clock: FakeClock
) -> None:
    t0 = sampled.elapsed_s()
    with EnergyMeter(backends=[NVMLBackend()], clock=clock, interval_s=0.1) as meter:
        clock.advance(10.0)
    t1 = sampled.elapsed_s()
    # start edge, one tick a second, stop edge; never a 10 Hz poll, never GetPowerUsage
    assert sampled.calls[SAMPLES] == 1 + 1 + 10 + 1
    assert sampled.calls[POWER] == 0
    ch = meter.report.channel("gpu:0")
    # (the stop edge falls on the last tick: same time stamp, one stored sample)
    assert ch.samples == 11 and ch.coverage == pytest.approx(1.0)
    # 20 ms point samples of a step trace: off by less than one sample per step
    assert ch.energy_j == pytest.approx(exact_j(t0, t1), abs=2 * 0.02 * 190.0)
    assert ch.energy_j == pytest.approx(exact_j(t0, t1), rel=2e-3)


def test_phases_between_reads_are_resolved_from_the_means(
    sampled: FakeNVML, clock: FakeClock
) -> None:
    with EnergyMeter(backends=[NVMLBackend()], clock=clock) as meter:
        start = sampled.elapsed_s()
        clock.advance(1.5)
        with meter.phase("busy"):
            a = sampled.elapsed_s()
            clock.advance(3.0)
            b = sampled.elapsed_s()
        clock.advance(1.0)
    phase = meter.report.phases["busy"]
    assert phase.energy_j == pytest.approx(exact_j(a, b), rel=0.01)
    assert meter.report.energy_j == pytest.approx(exact_j(start, b + 1.0), rel=5e-3)


def test_falls_back_to_polling_when_the_call_is_unsupported(clock: FakeClock) -> None:
    fake = FakeNVML([old_gpu(power_sample_period_s=None)], clock=clock)
    with fake.install():
        with EnergyMeter(backends=[NVMLBackend()], clock=clock, interval_s=0.1) as meter:
            clock.advance(2.0)
        ch = meter.report.channel("gpu:0")
        assert ch.provenance.source == f"NVML {POWER}"
        notes = " ".join(ch.provenance.notes)
        assert "buffered power samples are not used" in notes and "Not Supported" in notes
        assert fake.calls[POWER] >= 20  # polled at interval_s
        assert ch.energy_j == pytest.approx(120.0, rel=1e-9)


def test_falls_back_to_polling_when_the_buffer_is_too_short(clock: FakeClock) -> None:
    # 50 samples 20 ms apart: 1 s of buffer, less than MIN_SPAN_S
    fake = FakeNVML([old_gpu(power_sample_buffer=50)], clock=clock)
    with fake.install():
        clock.advance(3.0)
        (ch,) = NVMLBackend().probe().channels
    assert ch.provenance.source == f"NVML {POWER}" and not ch.mean_since_last_read
    notes = " ".join(ch.provenance.notes)
    assert "holds 1 s" in notes and f"{MIN_SPAN_S:g} s" in notes


def test_falls_back_when_pynvml_lacks_the_call(clock: FakeClock) -> None:
    fake = FakeNVML([old_gpu()], clock=clock)
    del fake.module.nvmlDeviceGetSamples
    with fake.install():
        clock.advance(3.0)
        (ch,) = NVMLBackend().probe().channels
    assert ch.provenance.source == f"NVML {POWER}"
    assert "no nvmlDeviceGetSamples" in " ".join(ch.provenance.notes)


def test_a_failing_samples_call_is_a_failed_read_with_the_call_named(
    sampled: FakeNVML, clock: FakeClock
) -> None:
    gpu = sampled.gpus[0]
    now = sampled.elapsed_s()
    gpu.fail("gpu_lost", at_s=now + 2.0, until_s=now + 4.0, calls=SAMPLES)
    with EnergyMeter(backends=[NVMLBackend()], clock=clock) as meter:
        clock.advance(8.0)
    ch = meter.report.channel("gpu:0")
    events = " ".join(ch.events)
    assert f"{SAMPLES} failed on gpu:0 ({UUID})" in events and "GPU_IS_LOST" in events
    # after the GPU answers again, the samples since the last one seen are integrated
    assert ch.energy_j == pytest.approx(exact_j(now, now + 8.0), rel=5e-3)


def test_a_read_later_than_the_buffer_bridges_the_lost_samples(clock: FakeClock) -> None:
    fake = FakeNVML([old_gpu(power_sample_buffer=130)], clock=clock)  # 2.6 s of samples
    with fake.install():
        clock.advance(2.6)
        backend = NVMLBackend()
        backend.probe()
        reader = backend._plan[0][0]  # type: ignore[index]  # private: the samples reader
        assert reader.bridged_s == 0.0
        clock.advance(4.0)  # 4 s between reads: samples from 2.62 to 4.0 s are gone
        assert backend.read()[0] == pytest.approx([250.0])  # 2.6 .. 6.6 s, all at 250 W
        assert reader.bridged_s == pytest.approx(1.42, abs=1e-6)  # 2.6 s -> 4.02 s
        backend.close()


def test_a_gpu_with_an_energy_counter_is_not_polled_at_10_hz(clock: FakeClock) -> None:
    """Issue #11: a GPU with an energy counter needs no 10 Hz polling: read ~1/s and at edges."""
    fake = FakeNVML([FakeGPU(uuid=UUID, power_w=STEPS, power_sample_period_s=0.02)], clock=clock)
    with (
        fake.install(),
        EnergyMeter(backends=[NVMLBackend()], clock=clock, interval_s=0.1) as meter,
    ):
        clock.advance(10.0)
    ch = meter.report.channel("gpu:0")
    assert ch.kind == "counter"
    # the start-up characterisation burst (bertwatt.characterise) adds its own few reads
    how = ch.provenance.characterised["how_measured"]
    burst = int(re.search(r"burst of (\d+) reads", how).group(1))  # type: ignore[union-attr]
    assert 0 < burst <= 40
    # probe, start edge, one read a second, stop edge: never a 10 Hz poll
    assert fake.calls["nvmlDeviceGetTotalEnergyConsumption"] == 1 + 1 + 10 + 1 + burst
    assert fake.calls[SAMPLES] == 0 and fake.calls[POWER] <= burst  # power: the burst's only
    assert meter.report.energy_j == pytest.approx(exact_j(0.0, 10.0), rel=1e-9)


# -- the fake's nvmlDeviceGetSamples itself ----------------------------------------------------


def test_fake_samples_follow_pynvml(clock: FakeClock) -> None:
    fake = FakeNVML([old_gpu(power_sample_buffer=10)], clock=clock)
    nv = fake.module
    nv.nvmlInit()
    h = nv.nvmlDeviceGetHandleByIndex(0)
    with pytest.raises(NVMLError) as err:
        nv.nvmlDeviceGetSamples(h, nv.NVML_TOTAL_POWER_SAMPLES, 0)  # nothing sampled yet
    assert err.value.value == nv.NVML_ERROR_NOT_FOUND
    clock.advance(1.0)
    value_type, samples = nv.nvmlDeviceGetSamples(h, nv.NVML_TOTAL_POWER_SAMPLES, 0)
    assert value_type == nv.NVML_VALUE_TYPE_UNSIGNED_INT
    assert len(samples) == 10 and all(isinstance(s, ctypes.Structure) for s in samples)
    stamps = [s.timeStamp for s in samples]
    assert stamps == sorted(stamps) and stamps[1] - stamps[0] == 20_000  # microseconds
    assert samples[-1].sampleValue.uiVal == 60_000  # mW
    newer = nv.nvmlDeviceGetSamples(h, nv.NVML_TOTAL_POWER_SAMPLES, stamps[-3])[1]
    assert [s.timeStamp for s in newer] == stamps[-2:]
    for bad in (99, -1):
        with pytest.raises(NVMLError) as err:
            nv.nvmlDeviceGetSamples(h, bad, 0)
        assert err.value.value == nv.NVML_ERROR_INVALID_ARGUMENT
    with pytest.raises(NVMLError) as err:
        nv.nvmlDeviceGetSamples(h, nv.NVML_GPU_UTILIZATION_SAMPLES, 0)
    assert err.value.value == nv.NVML_ERROR_NOT_SUPPORTED
    nv.nvmlShutdown()


def test_fake_samples_are_unsupported_by_default_and_checked(clock: FakeClock) -> None:
    fake = FakeNVML([FakeGPU()], clock=clock)
    nv = fake.module
    nv.nvmlInit()
    with pytest.raises(NVMLError) as err:
        nv.nvmlDeviceGetSamples(nv.nvmlDeviceGetHandleByIndex(0), 0, 0)
    assert err.value.value == nv.NVML_ERROR_NOT_SUPPORTED
    nv.nvmlShutdown()
    from bertwatt.errors import ConfigError

    for kw in ({"power_sample_period_s": 0.0}, {"power_sample_buffer": 0}):
        with pytest.raises(ConfigError):
            FakeGPU(**kw)  # type: ignore[arg-type]


def test_fake_samples_go_through_the_sensor_model(clock: FakeClock) -> None:
    """A gain error reaches the buffered samples like every other power reading."""
    gpu = old_gpu(sensor=SensorModel(gain=1.03))
    fake = FakeNVML([gpu], clock=clock)
    with fake.install():
        clock.advance(3.0)
        backend = NVMLBackend()
        backend.probe()
        clock.advance(1.0)  # 3 .. 4 s: 250 W true
        assert backend.read()[0] == pytest.approx([250.0 * 1.03])
        backend.close()
