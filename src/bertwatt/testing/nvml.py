"""A fake ``pynvml`` module: scripted GPUs with power traces, energy counters and faults.

Use it to test code that reads NVIDIA GPUs on a machine without one::

    from bertwatt.testing.clock import FakeClock
    from bertwatt.testing.nvml import FakeGPU, FakeNVML

    clock = FakeClock()
    gpu = FakeGPU(power_w=[(0.0, 60.0), (10.0, 300.0)])  # idle, then busy from t = 10 s
    fake = FakeNVML([gpu], clock=clock)
    with fake.install():                # sys.modules["pynvml"] is the fake until the block ends
        backend = NVMLBackend(all_devices=True)
        backend.probe()
        clock.advance(20.0)
        backend.read()                  # ([3.6], None): 60 W x 10 s + 300 W x 10 s, in joules

:attr:`FakeNVML.module` is a real :class:`types.ModuleType` named ``pynvml`` with the part of the
``nvidia-ml-py`` API that bertwatt uses. Names, argument order, units (mJ, mW, integers), the
``NVML_ERROR_*`` codes and the ``NVMLError`` subclasses with their ``str()`` texts follow
``pynvml.py`` of nvidia-ml-py 13.615. Like the real library, every call other than ``nvmlInit``
raises ``NVMLError_Uninitialized`` until ``nvmlInit`` has been called, and again after the matching
``nvmlShutdown``.

Time is "seconds since the fake was created", read from its clock (:class:`~bertwatt.clock.
SystemClock` by default, :class:`~bertwatt.testing.clock.FakeClock` for exact, repeatable values).
The energy counter is the integral of the power trace since then, plus ``energy_at_start_j``: exact
(rational arithmetic, floored to whole millijoules like the real counter) for constant and
piecewise-constant traces; for a callable trace, an incremental composite Simpson rule with steps
of at most 10 ms (exact for polynomials up to degree 3, close for smooth traces). The integration
lives in ``_nvml_trace.py``, which says why it is not :mod:`bertwatt.testing.traces`'s.

By default a fake GPU's sensor is ideal: power readings are the trace's value now and the counter
is exact. ``FakeGPU(sensor=...)`` switches on what real boards do (:class:`SensorModel`, sources
in its module ``_nvml_sensor.py``): the A100/H100 instant reading that sees 25 ms of every 100 ms,
the 1 s averaged default reading of Ampere (non-GA100) and Hopper lagging about 0.5 s, a board
gain error of a few percent, and an energy counter that moves every 100 ms::

    gpu = FakeGPU(power_w=trace, sensor=SensorModel(power_reading="instant", gain=1.03,
                                                    energy_update_s=0.1))
    FakeGPU(power_w=trace, sensor="a100")       # the same without the gain error

``FakeGPU(power_sample_period_s=...)`` gives the GPU the driver's buffer of power samples that
``nvmlDeviceGetSamples(handle, NVML_TOTAL_POWER_SAMPLES, last_seen_us)`` returns: one sample
every ``power_sample_period_s`` (at ``k x period`` since the fake was created), the sensor's
power reading at that moment in mW, the newest ``power_sample_buffer`` of them kept. Without it
the call raises ``NVMLError_NotSupported``. The period and buffer size of real drivers are not
documented: the defaults here are the fake's assumptions, not facts about a GPU.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import sys
import threading
import types
import uuid as uuid_module
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction

from bertwatt.clock import Clock, SystemClock
from bertwatt.errors import ConfigError
from bertwatt.testing._nvml_module import (
    ERROR_CODES,
    SAMPLING_TYPES,
    VALUE_TYPES,
    NVMLError,
    build_module,
    c_nvmlSample_t,
    c_nvmlValue_t,
)
from bertwatt.testing._nvml_sensor import SENSOR_PRESETS, SensorModel, sensor_model
from bertwatt.testing._nvml_trace import ExactTrace, PowerTrace, check_watts

__all__ = [
    "FAULT_KINDS",
    "INIT_ERRORS",
    "SENSOR_PRESETS",
    "FakeGPU",
    "FakeNVML",
    "NVMLError",
    "SensorModel",
]

#: Fault kinds accepted by :meth:`FakeGPU.fail`, and the NVML error each raises.
FAULT_KINDS: dict[str, int] = {
    "gpu_lost": ERROR_CODES["GPU_IS_LOST"],
    "not_supported": ERROR_CODES["NOT_SUPPORTED"],
    "no_permission": ERROR_CODES["NO_PERMISSION"],
    "unknown": ERROR_CODES["UNKNOWN"],
}

#: ``init_error`` values accepted by :class:`FakeNVML`, and the NVML error ``nvmlInit`` raises.
INIT_ERRORS: dict[str, int] = {
    "library_not_found": ERROR_CODES["LIBRARY_NOT_FOUND"],
    "driver_not_loaded": ERROR_CODES["DRIVER_NOT_LOADED"],
    "no_permission": ERROR_CODES["NO_PERMISSION"],
    "lib_rm_version_mismatch": ERROR_CODES["LIB_RM_VERSION_MISMATCH"],
}

# Per-device calls a fault can target (the handle-taking calls of the fake module).
_DEVICE_CALLS = frozenset(
    {
        "nvmlDeviceGetHandleByIndex",
        "nvmlDeviceGetHandleByUUID",
        "nvmlDeviceGetName",
        "nvmlDeviceGetUUID",
        "nvmlDeviceGetIndex",
        "nvmlDeviceGetTotalEnergyConsumption",
        "nvmlDeviceGetPowerUsage",
        "nvmlDeviceGetSamples",
        "nvmlDeviceGetEnforcedPowerLimit",
        "nvmlDeviceGetPowerManagementLimit",
        "nvmlDeviceGetMigMode",
        "nvmlDeviceIsMigDeviceHandle",
        "nvmlDeviceGetDeviceHandleFromMigDeviceHandle",
        "nvmlDeviceGetMaxMigDeviceCount",
        "nvmlDeviceGetMigDeviceHandleByIndex",
    }
)

_NS_PER_S = 1_000_000_000
_MAX_MIG_DEVICES = 7  # A100/H100 expose up to seven MIG instances per GPU (MIG user guide)


class _Fault:
    __slots__ = ("calls", "code", "start_ns", "stop_ns")

    def __init__(
        self, code: int, start_ns: int, stop_ns: int | None, calls: frozenset[str] | None
    ) -> None:
        self.code = code
        self.start_ns = start_ns
        self.stop_ns = stop_ns
        self.calls = calls

    def active(self, call: str, elapsed_ns: int) -> bool:
        if self.calls is not None and call not in self.calls:
            return False
        if elapsed_ns < self.start_ns:
            return False
        return self.stop_ns is None or elapsed_ns < self.stop_ns


class FakeGPU:
    """One scripted GPU for :class:`FakeNVML`.

    Args:
        name: what ``nvmlDeviceGetName`` returns.
        uuid: what ``nvmlDeviceGetUUID`` returns; a random ``GPU-...`` UUID when ``None``.
        power_w: the board power trace, in watts, over the fake's time ``t`` (seconds since the
            :class:`FakeNVML` was created): a constant; a callable ``t -> watts``; or piecewise
            constant steps ``[(t_s, watts), ...]`` with strictly increasing times, the first at
            0.0, each value holding until the next step.
        power_limit_w: what the power-limit calls return (converted to mW); ``None`` makes them
            raise ``NVMLError_NotSupported``.
        supports_energy_counter: ``False`` makes ``nvmlDeviceGetTotalEnergyConsumption`` raise
            ``NVMLError_NotSupported``, as on GPUs older than Volta.
        energy_at_start_j: counter value at ``t = 0`` (the real counter counts since the driver
            was loaded, so it is rarely zero).
        mig_devices: MIG instances on this GPU: a count (random ``MIG-...`` UUIDs) or the
            UUIDs themselves. Any instance puts the GPU in MIG mode (``nvmlDeviceGetMigMode``
            returns enabled). MIG handles come from ``nvmlDeviceGetHandleByUUID``; energy and
            power calls on them raise ``NVMLError_NotSupported``: they exist per physical GPU.
        sensor: how the board's sensor reports the trace: a :class:`SensorModel`, a preset name
            from :data:`SENSOR_PRESETS` (``"a100"``, ``"h100"``, ``"ampere"``,
            ``"hopper_average"``, ``"exact"``) or ``None`` for an ideal sensor. Power readings
            and the counter go through it; :meth:`power_at` and :meth:`energy_j` stay the truth.
        power_sample_period_s: the driver keeps a power sample this often, for
            ``nvmlDeviceGetSamples(..., NVML_TOTAL_POWER_SAMPLES, ...)``; ``None`` (default) makes
            that call raise ``NVMLError_NotSupported``.
        power_sample_buffer: how many of the newest power samples the driver keeps.
    """

    def __init__(
        self,
        name: str = "NVIDIA A100-SXM4-40GB",
        *,
        uuid: str | None = None,
        power_w: PowerTrace = 100.0,
        power_limit_w: float | None = 400.0,
        supports_energy_counter: bool = True,
        energy_at_start_j: float = 0.0,
        mig_devices: int | Sequence[str] = 0,
        sensor: SensorModel | str | None = None,
        power_sample_period_s: float | None = None,
        power_sample_buffer: int = 120,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"FakeGPU name must be a non-empty string, got {name!r}")
        self.name = name
        self.uuid = uuid if uuid is not None else f"GPU-{uuid_module.uuid4()}"
        if not isinstance(self.uuid, str) or not self.uuid.startswith("GPU-"):
            raise ConfigError(f"FakeGPU uuid must be a string starting with 'GPU-', got {uuid!r}")
        self.power_limit_w = (
            None if power_limit_w is None else check_watts(power_limit_w, "power_limit_w")
        )
        self.supports_energy_counter = bool(supports_energy_counter)
        self.energy_at_start_j = check_watts(energy_at_start_j, "energy_at_start_j")
        self.mig_uuids = self._mig_uuids(mig_devices)
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._trace = ExactTrace(power_w)
        self.sensor: SensorModel = sensor_model(sensor)
        self.power_sample_period_ns: int | None = None
        if power_sample_period_s is not None:
            period = check_watts(power_sample_period_s, "power_sample_period_s")
            if not period >= 1e-6:
                raise ConfigError(
                    f"power_sample_period_s must be at least 1e-6 s, got {power_sample_period_s!r}"
                )
            self.power_sample_period_ns = round(period * _NS_PER_S)
        if (
            isinstance(power_sample_buffer, bool)
            or not isinstance(power_sample_buffer, int)
            or power_sample_buffer < 1
        ):
            raise ConfigError(
                f"power_sample_buffer must be a positive integer, got {power_sample_buffer!r}"
            )
        self.power_sample_buffer = power_sample_buffer

    @staticmethod
    def _mig_uuids(mig_devices: int | Sequence[str]) -> tuple[str, ...]:
        if isinstance(mig_devices, bool):
            raise ConfigError("mig_devices takes a count or a list of 'MIG-...' UUIDs")
        if isinstance(mig_devices, int):
            if not 0 <= mig_devices <= _MAX_MIG_DEVICES:
                raise ConfigError(f"mig_devices count must be 0-7, got {mig_devices}")
            return tuple(f"MIG-{uuid_module.uuid4()}" for _ in range(mig_devices))
        uuids = tuple(mig_devices)
        if len(uuids) > _MAX_MIG_DEVICES or not all(
            isinstance(u, str) and u.startswith("MIG-") for u in uuids
        ):
            raise ConfigError(f"mig_devices takes up to 7 'MIG-...' UUIDs, got {mig_devices!r}")
        return uuids

    def fail(
        self,
        kind: str,
        *,
        at_s: float = 0.0,
        until_s: float | None = None,
        calls: str | Iterable[str] | None = None,
    ) -> None:
        """Make calls on this GPU raise an NVML error from ``at_s`` until ``until_s``.

        Args:
            kind: ``"gpu_lost"``, ``"not_supported"``, ``"no_permission"`` or ``"unknown"``
                (see :data:`FAULT_KINDS`).
            at_s: start of the fault, in seconds since the fake was created (inclusive).
            until_s: end of the fault (exclusive); ``None`` for the rest of the run.
            calls: limit the fault to these pynvml function names (one name or several);
                ``None`` for every per-device call, including handle look-ups of this GPU.
        """
        if kind not in FAULT_KINDS:
            raise ConfigError(f"fault kind must be one of {sorted(FAULT_KINDS)}, got {kind!r}")
        if not (math.isfinite(at_s) and at_s >= 0):
            raise ConfigError(f"at_s must be >= 0 seconds, got {at_s!r}")
        if until_s is not None and not until_s > at_s:
            raise ConfigError(f"until_s must be after at_s ({at_s!r}), got {until_s!r}")
        names: frozenset[str] | None = None
        if calls is not None:
            names = frozenset([calls] if isinstance(calls, str) else calls)
            unknown = sorted(names - _DEVICE_CALLS)
            if unknown or not names:
                raise ConfigError(
                    f"calls must name fake pynvml device calls, unknown: {unknown or calls!r}"
                )
        stop_ns = None if until_s is None else round(until_s * _NS_PER_S)
        with self._lock:
            fault = _Fault(FAULT_KINDS[kind], round(at_s * _NS_PER_S), stop_ns, names)
            self._faults.append(fault)

    def clear_faults(self) -> None:
        """Remove every fault set with :meth:`fail`."""
        with self._lock:
            self._faults.clear()

    def power_at(self, t_s: float) -> float:
        """The trace's true power in watts at ``t_s`` seconds since the fake was created."""
        return self._trace.power_w(round(t_s * _NS_PER_S))

    def energy_j(self, t_s: float) -> float:
        """The true energy in joules at ``t_s``: ``energy_at_start_j`` plus the exact integral.

        With an ideal sensor this is the counter's value before flooring to mJ; with a
        :class:`SensorModel` the counter reports it through the gain and update steps.
        """
        return float(self._true_mj(round(t_s * _NS_PER_S))) / 1000.0

    def set_power(self, watts: float, *, at_s: float) -> None:
        """From ``at_s`` on, the GPU draws ``watts`` (a step trace grows by one step).

        For simulations that drive the GPU as they run: a kernel starts, a kernel ends. The
        integral stays exact. ``at_s`` must not come before the trace's last step.

        Raises:
            ConfigError: for a callable trace, an ``at_s`` before the last step or bad watts.
        """
        if not (isinstance(at_s, (int, float)) and math.isfinite(at_s) and at_s >= 0):
            raise ConfigError(f"at_s must be >= 0 seconds, got {at_s!r}")
        self._trace.append_step(round(at_s * _NS_PER_S), watts)

    def _raise_if_failing(self, call: str, elapsed_ns: int) -> None:
        for fault in self._faults:
            if fault.active(call, elapsed_ns):
                raise NVMLError(fault.code)

    def _power_at_ns(self, elapsed_ns: int) -> float:
        # What nvmlDeviceGetPowerUsage sees: the trace through the sensor model.
        return self.sensor.power_w(self._trace, elapsed_ns)

    def _power_samples(
        self, elapsed_ns: int, last_seen_us: int, base_us: int
    ) -> list[c_nvmlSample_t]:
        """The buffered power samples newer than ``last_seen_us`` (oldest first)."""
        period = self.power_sample_period_ns
        assert period is not None
        newest = elapsed_ns // period
        first = max(1, newest - self.power_sample_buffer + 1)
        if last_seen_us > base_us:
            # the first sample whose stamp can be past last_seen_us (stamps are floored to us)
            first = max(first, (last_seen_us - base_us) * 1000 // period)
        out = []
        for k in range(first, newest + 1):
            t_ns = k * period
            stamp = base_us + t_ns // 1000
            if stamp <= last_seen_us:
                continue
            mw = round(self._power_at_ns(t_ns) * 1000)
            out.append(c_nvmlSample_t(stamp, c_nvmlValue_t(uiVal=mw)))
        return out

    def _true_mj(self, elapsed_ns: int) -> Fraction | float:
        start_mj = Fraction(self.energy_at_start_j) * 1000
        return start_mj + self._trace.energy_mj(elapsed_ns)

    def _energy_mj(self, elapsed_ns: int) -> Fraction | float:
        # What nvmlDeviceGetTotalEnergyConsumption sees: the last update, through the gain.
        if self.sensor.exact:
            return self._true_mj(elapsed_ns)
        start_mj = Fraction(self.energy_at_start_j) * 1000
        integral = self._trace.energy_mj(self.sensor.counter_ns(elapsed_ns))
        gain = (
            Fraction(repr(self.sensor.gain)) if isinstance(integral, Fraction) else self.sensor.gain
        )
        return start_mj + gain * integral

    def __repr__(self) -> str:
        return f"FakeGPU(name={self.name!r}, uuid={self.uuid!r})"


class _GpuHandle:
    __slots__ = ("gpu", "index")

    def __init__(self, gpu: FakeGPU, index: int) -> None:
        self.gpu = gpu
        self.index = index

    def __repr__(self) -> str:
        return f"<fake nvmlDevice_t {self.index} {self.gpu.uuid}>"


class _MigHandle:
    __slots__ = ("gpu", "parent", "slot", "uuid")

    def __init__(self, parent: _GpuHandle, slot: int) -> None:
        self.parent = parent
        self.gpu = parent.gpu
        self.slot = slot
        self.uuid = parent.gpu.mig_uuids[slot]

    def __repr__(self) -> str:
        return f"<fake MIG nvmlDevice_t {self.uuid}>"


class FakeNVML:
    """A set of :class:`FakeGPU` behind a fake ``pynvml`` module.

    Args:
        gpus: the GPUs, in NVML index order.
        clock: time source; :class:`~bertwatt.clock.SystemClock` when ``None``.
        init_error: make ``nvmlInit`` fail: ``"library_not_found"`` (no libnvidia-ml.so),
            ``"driver_not_loaded"``, ``"no_permission"`` or ``"lib_rm_version_mismatch"``
            (see :data:`INIT_ERRORS`). May be changed later through the attribute.
        driver_version: what ``nvmlSystemGetDriverVersion`` returns.
        origin_ns: the clock's ``monotonic_ns()`` that is ``t = 0`` of the traces (default: when
            the fake is created). Processes that simulate one GPU together pass the same value
            (``time.monotonic_ns()`` is system-wide on Linux), so each sees the same trace.

    Attributes:
        module: the fake ``pynvml`` module.
        calls: how many times each pynvml function was called (a :class:`collections.Counter`).
        init_count: successful ``nvmlInit`` calls; ``shutdown_count``: successful
            ``nvmlShutdown`` calls.
    """

    def __init__(
        self,
        gpus: Sequence[FakeGPU],
        *,
        clock: Clock | None = None,
        init_error: str | None = None,
        driver_version: str = "550.54.15",
        origin_ns: int | None = None,
    ) -> None:
        self.gpus = tuple(gpus)
        if not all(isinstance(g, FakeGPU) for g in self.gpus):
            raise ConfigError("FakeNVML takes a sequence of FakeGPU")
        uuids = [g.uuid for g in self.gpus] + [u for g in self.gpus for u in g.mig_uuids]
        if len(set(uuids)) != len(uuids):
            raise ConfigError("FakeNVML GPUs and MIG devices need distinct UUIDs")
        self.init_error = init_error
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.driver_version = driver_version
        self.calls: Counter[str] = Counter()
        self.init_count = 0
        self.shutdown_count = 0
        self._refcount = 0
        self._lock = threading.Lock()
        if origin_ns is not None and (
            isinstance(origin_ns, bool) or not isinstance(origin_ns, int)
        ):
            raise ConfigError(f"origin_ns must be an integer of nanoseconds, got {origin_ns!r}")
        self._start_ns = self.clock.monotonic_ns() if origin_ns is None else origin_ns
        # nvmlSample_t time stamps are CPU time in microseconds: the wall clock at t = 0
        self._wall_us = self.clock.time_ns() // 1000
        self._handles = [_GpuHandle(g, i) for i, g in enumerate(self.gpus)]
        self.module = self._build_module()

    @property
    def init_error(self) -> str | None:
        """The failure ``nvmlInit`` reports, or ``None`` when it succeeds."""
        return self._init_error

    @init_error.setter
    def init_error(self, value: str | None) -> None:
        if value is not None and value not in INIT_ERRORS:
            raise ConfigError(f"init_error must be None or one of {sorted(INIT_ERRORS)}")
        self._init_error = value

    @property
    def initialised(self) -> bool:
        """Whether more ``nvmlInit`` than ``nvmlShutdown`` calls have succeeded."""
        return self._refcount > 0

    def elapsed_s(self) -> float:
        """Seconds of the fake's clock since the fake was created."""
        return self._elapsed_ns() / _NS_PER_S

    @contextlib.contextmanager
    def install(self) -> Iterator[types.ModuleType]:
        """Put :attr:`module` in ``sys.modules["pynvml"]``; restore what was there on exit."""
        missing = object()
        previous = sys.modules.get("pynvml", missing)
        sys.modules["pynvml"] = self.module
        try:
            yield self.module
        finally:
            if previous is missing:
                sys.modules.pop("pynvml", None)
            else:
                sys.modules["pynvml"] = previous  # type: ignore[assignment]

    # -- internals ---------------------------------------------------------------------------

    def _elapsed_ns(self) -> int:
        return self.clock.monotonic_ns() - self._start_ns

    def _enter(self, call: str) -> int:
        with self._lock:
            self.calls[call] += 1
            initialised = self._refcount > 0
        if not initialised:
            raise NVMLError(ERROR_CODES["UNINITIALIZED"])
        return self._elapsed_ns()

    def _device(self, call: str, handle: object) -> tuple[_GpuHandle | _MigHandle, int]:
        elapsed = self._enter(call)
        if not isinstance(handle, (_GpuHandle, _MigHandle)) or handle.gpu not in self.gpus:
            raise NVMLError(ERROR_CODES["INVALID_ARGUMENT"])
        handle.gpu._raise_if_failing(call, elapsed)
        return handle, elapsed

    def _physical(self, call: str, handle: object) -> tuple[_GpuHandle, int]:
        found, elapsed = self._device(call, handle)
        if isinstance(found, _MigHandle):
            raise NVMLError(ERROR_CODES["NOT_SUPPORTED"])
        return found, elapsed

    def _build_module(self) -> types.ModuleType:
        # Each ``_nvmlXxx`` method becomes the module's ``nvmlXxx`` function.
        names = [name for name in dir(self) if name.startswith("_nvml")]
        return build_module({name[1:]: getattr(self, name) for name in names})

    def _nvmlInit(self) -> None:  # noqa: N802
        self._nvmlInitWithFlags(0)

    def _nvmlInitWithFlags(self, flags: int) -> None:  # noqa: N802
        with self._lock:
            self.calls["nvmlInit"] += 1
            if self._init_error is not None:
                raise NVMLError(INIT_ERRORS[self._init_error])
            self._refcount += 1
            self.init_count += 1

    def _nvmlShutdown(self) -> None:  # noqa: N802
        self._enter("nvmlShutdown")
        with self._lock:
            self._refcount -= 1
            self.shutdown_count += 1

    def _nvmlSystemGetDriverVersion(self) -> str:  # noqa: N802
        self._enter("nvmlSystemGetDriverVersion")
        return self.driver_version

    def _nvmlDeviceGetCount(self) -> int:  # noqa: N802
        self._enter("nvmlDeviceGetCount")
        return len(self.gpus)

    def _nvmlDeviceGetHandleByIndex(self, index: int) -> _GpuHandle:  # noqa: N802
        elapsed = self._enter("nvmlDeviceGetHandleByIndex")
        if not isinstance(index, int) or not 0 <= index < len(self._handles):
            raise NVMLError(ERROR_CODES["INVALID_ARGUMENT"])
        handle = self._handles[index]
        handle.gpu._raise_if_failing("nvmlDeviceGetHandleByIndex", elapsed)
        return handle

    def _nvmlDeviceGetHandleByUUID(self, uuid: str | bytes) -> _GpuHandle | _MigHandle:  # noqa: N802
        elapsed = self._enter("nvmlDeviceGetHandleByUUID")
        text = uuid.decode() if isinstance(uuid, bytes) else uuid
        for handle in self._handles:
            found: _GpuHandle | _MigHandle | None = None
            if handle.gpu.uuid == text:
                found = handle
            elif text in handle.gpu.mig_uuids:
                found = _MigHandle(handle, handle.gpu.mig_uuids.index(text))
            if found is not None:
                handle.gpu._raise_if_failing("nvmlDeviceGetHandleByUUID", elapsed)
                return found
        raise NVMLError(ERROR_CODES["NOT_FOUND"])

    def _nvmlDeviceGetName(self, handle: object) -> str:  # noqa: N802
        found, _ = self._device("nvmlDeviceGetName", handle)
        return f"{found.gpu.name} MIG" if isinstance(found, _MigHandle) else found.gpu.name

    def _nvmlDeviceGetUUID(self, handle: object) -> str:  # noqa: N802
        found, _ = self._device("nvmlDeviceGetUUID", handle)
        return found.uuid if isinstance(found, _MigHandle) else found.gpu.uuid

    def _nvmlDeviceGetIndex(self, handle: object) -> int:  # noqa: N802
        found, _ = self._physical("nvmlDeviceGetIndex", handle)
        return found.index

    def _nvmlDeviceGetTotalEnergyConsumption(self, handle: object) -> int:  # noqa: N802
        found, elapsed = self._physical("nvmlDeviceGetTotalEnergyConsumption", handle)
        if not found.gpu.supports_energy_counter:
            raise NVMLError(ERROR_CODES["NOT_SUPPORTED"])
        return math.floor(found.gpu._energy_mj(elapsed))

    def _nvmlDeviceGetPowerUsage(self, handle: object) -> int:  # noqa: N802
        found, elapsed = self._physical("nvmlDeviceGetPowerUsage", handle)
        return round(found.gpu._power_at_ns(elapsed) * 1000)

    def _nvmlDeviceGetSamples(  # noqa: N802
        self,
        handle: object,
        sampling_type: int,
        timeStamp: int,  # noqa: N803 - pynvml's name
    ) -> tuple[int, list[c_nvmlSample_t]]:
        # pynvml returns (value type, samples[0:count]); NVML answers NOT_FOUND when no sample
        # is newer than the time stamp, NOT_SUPPORTED for a GPU or sampling type without them.
        found, elapsed = self._physical("nvmlDeviceGetSamples", handle)
        gpu = found.gpu
        if sampling_type not in SAMPLING_TYPES.values() or isinstance(timeStamp, bool):
            raise NVMLError(ERROR_CODES["INVALID_ARGUMENT"])
        if not isinstance(timeStamp, int) or timeStamp < 0:
            raise NVMLError(ERROR_CODES["INVALID_ARGUMENT"])
        if (
            sampling_type != SAMPLING_TYPES["TOTAL_POWER_SAMPLES"]
            or gpu.power_sample_period_ns is None
        ):
            raise NVMLError(ERROR_CODES["NOT_SUPPORTED"])
        samples = gpu._power_samples(elapsed, timeStamp, self._wall_us)
        if not samples:
            raise NVMLError(ERROR_CODES["NOT_FOUND"])
        return VALUE_TYPES["UNSIGNED_INT"], samples

    def _limit_mw(self, call: str, handle: object) -> int:
        found, _ = self._physical(call, handle)
        if found.gpu.power_limit_w is None:
            raise NVMLError(ERROR_CODES["NOT_SUPPORTED"])
        return round(found.gpu.power_limit_w * 1000)

    def _nvmlDeviceGetEnforcedPowerLimit(self, handle: object) -> int:  # noqa: N802
        return self._limit_mw("nvmlDeviceGetEnforcedPowerLimit", handle)

    def _nvmlDeviceGetPowerManagementLimit(self, handle: object) -> int:  # noqa: N802
        return self._limit_mw("nvmlDeviceGetPowerManagementLimit", handle)

    def _nvmlDeviceGetMigMode(self, handle: object) -> list[int]:  # noqa: N802
        found, _ = self._physical("nvmlDeviceGetMigMode", handle)
        mode = 1 if found.gpu.mig_uuids else 0
        return [mode, mode]

    def _nvmlDeviceIsMigDeviceHandle(self, handle: object) -> ctypes.c_uint:  # noqa: N802
        # pynvml 13.615 returns the ctypes c_uint itself, not its .value; so does the fake.
        found, _ = self._device("nvmlDeviceIsMigDeviceHandle", handle)
        return ctypes.c_uint(1 if isinstance(found, _MigHandle) else 0)

    def _nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, handle: object) -> _GpuHandle:  # noqa: N802
        found, _ = self._device("nvmlDeviceGetDeviceHandleFromMigDeviceHandle", handle)
        if not isinstance(found, _MigHandle):
            raise NVMLError(ERROR_CODES["INVALID_ARGUMENT"])
        return found.parent

    def _nvmlDeviceGetMaxMigDeviceCount(self, handle: object) -> int:  # noqa: N802
        found, _ = self._physical("nvmlDeviceGetMaxMigDeviceCount", handle)
        return _MAX_MIG_DEVICES if found.gpu.mig_uuids else 0

    def _nvmlDeviceGetMigDeviceHandleByIndex(self, handle: object, index: int) -> _MigHandle:  # noqa: N802
        found, _ = self._physical("nvmlDeviceGetMigDeviceHandleByIndex", handle)
        if not found.gpu.mig_uuids or not 0 <= index < _MAX_MIG_DEVICES:
            raise NVMLError(ERROR_CODES["INVALID_ARGUMENT"])
        if index >= len(found.gpu.mig_uuids):
            raise NVMLError(ERROR_CODES["NOT_FOUND"])
        return _MigHandle(found, index)

    def __repr__(self) -> str:
        return f"FakeNVML({len(self.gpus)} GPUs, clock={self.clock!r})"
