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
of at most 10 ms (exact for polynomials up to degree 3, close for smooth traces). Power readings
are the trace's value at the current time: the fake models no sensor averaging window.
"""

from __future__ import annotations

import bisect
import contextlib
import ctypes
import math
import numbers
import string
import sys
import threading
import types
import uuid as uuid_module
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from fractions import Fraction
from typing import Any

from bertwatt.clock import Clock, SystemClock
from bertwatt.errors import ConfigError

__all__ = ["FAULT_KINDS", "INIT_ERRORS", "FakeGPU", "FakeNVML", "NVMLError"]

# Error codes, with the values of nvml.h / pynvml.py (nvidia-ml-py 13.615, lines 224-254).
_ERROR_CODES: dict[str, int] = {
    "UNINITIALIZED": 1,
    "INVALID_ARGUMENT": 2,
    "NOT_SUPPORTED": 3,
    "NO_PERMISSION": 4,
    "ALREADY_INITIALIZED": 5,
    "NOT_FOUND": 6,
    "INSUFFICIENT_SIZE": 7,
    "INSUFFICIENT_POWER": 8,
    "DRIVER_NOT_LOADED": 9,
    "TIMEOUT": 10,
    "IRQ_ISSUE": 11,
    "LIBRARY_NOT_FOUND": 12,
    "FUNCTION_NOT_FOUND": 13,
    "CORRUPTED_INFOROM": 14,
    "GPU_IS_LOST": 15,
    "RESET_REQUIRED": 16,
    "OPERATING_SYSTEM": 17,
    "LIB_RM_VERSION_MISMATCH": 18,
    "IN_USE": 19,
    "MEMORY": 20,
    "NO_DATA": 21,
    "VGPU_ECC_NOT_SUPPORTED": 22,
    "INSUFFICIENT_RESOURCES": 23,
    "FREQ_NOT_SUPPORTED": 24,
    "ARGUMENT_VERSION_MISMATCH": 25,
    "DEPRECATED": 26,
    "NOT_READY": 27,
    "GPU_NOT_FOUND": 28,
    "INVALID_STATE": 29,
    "RESET_TYPE_NOT_SUPPORTED": 30,
    "UNKNOWN": 999,
}

# str() of an error. The codes pynvml names itself render exactly as pynvml renders them; for the
# others pynvml asks the C library (nvmlErrorString), so these texts are the fake's own wording.
_ERROR_TEXT: dict[int, str] = {
    1: "Uninitialized",
    2: "Invalid Argument",
    3: "Not Supported",
    4: "Insufficient Permissions",
    5: "Already Initialized",
    6: "Not Found",
    7: "Insufficient Size",
    8: "Insufficient External Power",
    9: "Driver Not Loaded",
    10: "Timeout",
    11: "Interrupt Request Issue",
    12: "NVML Shared Library Not Found",
    13: "Function Not Found",
    14: "Corrupted infoROM",
    15: "GPU is lost",
    16: "GPU requires restart",
    17: "The operating system has blocked the request.",
    18: "RM has detected an NVML/RM version mismatch.",
    19: "In use by another client",
    20: "Insufficient Memory",
    21: "No data",
    22: "The requested vgpu operation is not available on target device, because ECC is enabled",
    23: "Insufficient resources",
    24: "Frequency not supported",
    25: "Argument version mismatch",
    26: "Deprecated",
    27: "Not ready",
    28: "GPU not found",
    29: "Invalid state",
    30: "Reset type not supported",
    999: "Unknown Error",
}


class NVMLError(Exception):
    """The fake's ``pynvml.NVMLError``: ``.value`` is the NVML error code.

    As in pynvml, ``NVMLError(code)`` returns an instance of the matching subclass
    (``NVMLError(15)`` is an ``NVMLError_GpuIsLost``), and each subclass can be built without
    arguments.
    """

    value: int
    _by_code: dict[int, type[NVMLError]] = {}

    def __new__(cls, value: int | None = None) -> NVMLError:
        code = getattr(cls, "_code", value)
        if code is None:
            raise TypeError("NVMLError needs an error code")
        if cls is NVMLError:
            cls = NVMLError._by_code.get(code, NVMLError)
        obj = Exception.__new__(cls)
        obj.value = code
        return obj

    def __init__(self, value: int | None = None) -> None:
        super().__init__(self.value)

    def __str__(self) -> str:
        return _ERROR_TEXT.get(self.value, f"NVML Error with code {self.value}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NVMLError) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (NVMLError, (self.value,))


def _class_name(error_name: str) -> str:
    # pynvml's rule: NVML_ERROR_GPU_IS_LOST -> NVMLError_GpuIsLost.
    return "NVMLError_" + string.capwords(error_name, "_").replace("_", "")


_ERROR_CLASSES: dict[str, type[NVMLError]] = {}
for _name, _code in _ERROR_CODES.items():
    _cls = type(_class_name(_name), (NVMLError,), {"_code": _code, "__module__": __name__})
    NVMLError._by_code[_code] = _cls
    _ERROR_CLASSES[_cls.__name__] = _cls
del _name, _code, _cls

#: Fault kinds accepted by :meth:`FakeGPU.fail`, and the NVML error each raises.
FAULT_KINDS: dict[str, int] = {
    "gpu_lost": _ERROR_CODES["GPU_IS_LOST"],
    "not_supported": _ERROR_CODES["NOT_SUPPORTED"],
    "no_permission": _ERROR_CODES["NO_PERMISSION"],
    "unknown": _ERROR_CODES["UNKNOWN"],
}

#: ``init_error`` values accepted by :class:`FakeNVML`, and the NVML error ``nvmlInit`` raises.
INIT_ERRORS: dict[str, int] = {
    "library_not_found": _ERROR_CODES["LIBRARY_NOT_FOUND"],
    "driver_not_loaded": _ERROR_CODES["DRIVER_NOT_LOADED"],
    "no_permission": _ERROR_CODES["NO_PERMISSION"],
    "lib_rm_version_mismatch": _ERROR_CODES["LIB_RM_VERSION_MISMATCH"],
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
_NS_PER_MS = 1_000_000  # W x ns / 1e6 = mJ
_SIMPSON_STEP_NS = 10_000_000  # 10 ms
_MAX_MIG_DEVICES = 7  # A100/H100 expose up to seven MIG instances per GPU (MIG user guide)

PowerTrace = float | Callable[[float], float] | Sequence[tuple[float, float]]


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


def _check_watts(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{what} must be a number of watts, got {value!r}")
    watts = float(value)
    if not math.isfinite(watts) or watts < 0:
        raise ConfigError(f"{what} must be finite and >= 0 W, got {value!r}")
    return watts


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
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"FakeGPU name must be a non-empty string, got {name!r}")
        self.name = name
        self.uuid = uuid if uuid is not None else f"GPU-{uuid_module.uuid4()}"
        if not isinstance(self.uuid, str) or not self.uuid.startswith("GPU-"):
            raise ConfigError(f"FakeGPU uuid must be a string starting with 'GPU-', got {uuid!r}")
        self.power_limit_w = (
            None if power_limit_w is None else _check_watts(power_limit_w, "power_limit_w")
        )
        self.supports_energy_counter = bool(supports_energy_counter)
        self.energy_at_start_j = _check_watts(energy_at_start_j, "energy_at_start_j")
        self.mig_uuids = self._mig_uuids(mig_devices)
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._constant_w: Fraction | None = None
        self._step_ns: list[int] = []
        self._step_w: list[Fraction] = []
        self._step_mj: list[Fraction] = []
        self._func: Callable[[float], float] | None = None
        self._func_last = (0, 0.0)  # (elapsed ns, mJ) of the last Simpson integration
        self._set_trace(power_w)

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

    def _set_trace(self, power_w: PowerTrace) -> None:
        if callable(power_w):
            self._func = power_w
            return
        if isinstance(power_w, (int, float)) and not isinstance(power_w, bool):
            self._constant_w = Fraction(_check_watts(power_w, "power_w"))
            return
        try:
            steps = [(float(t), w) for t, w in power_w]  # type: ignore[union-attr]
        except (TypeError, ValueError) as err:
            raise ConfigError(
                "power_w must be watts, a callable t_s -> watts, or [(t_s, watts), ...]; "
                f"got {power_w!r}"
            ) from err
        if not steps or steps[0][0] != 0.0:
            raise ConfigError("power_w steps must start at t_s = 0.0")
        cumulative = Fraction(0)
        for i, (t_s, watts) in enumerate(steps):
            if not math.isfinite(t_s) or (i and t_s <= steps[i - 1][0]):
                raise ConfigError(f"power_w step times must increase strictly, got {t_s!r}")
            t_ns = round(t_s * _NS_PER_S)
            w = Fraction(_check_watts(watts, f"power_w step {i}"))
            if i:
                cumulative += self._step_w[-1] * (t_ns - self._step_ns[-1]) / _NS_PER_MS
            self._step_ns.append(t_ns)
            self._step_w.append(w)
            self._step_mj.append(cumulative)

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
        """The trace's power in watts at ``t_s`` seconds since the fake was created."""
        return self._power_at_ns(round(t_s * _NS_PER_S))

    def energy_j(self, t_s: float) -> float:
        """The energy counter's exact value in joules at ``t_s`` (not floored to mJ)."""
        return float(self._energy_mj(round(t_s * _NS_PER_S))) / 1000.0

    def _raise_if_failing(self, call: str, elapsed_ns: int) -> None:
        for fault in self._faults:
            if fault.active(call, elapsed_ns):
                raise NVMLError(fault.code)

    def _power_at_ns(self, elapsed_ns: int) -> float:
        if self._constant_w is not None:
            return float(self._constant_w)
        if self._func is not None:
            return self._call_trace(elapsed_ns / _NS_PER_S)
        i = bisect.bisect_right(self._step_ns, elapsed_ns) - 1
        return float(self._step_w[max(i, 0)])

    def _call_trace(self, t_s: float) -> float:
        assert self._func is not None
        return _check_watts(self._func(t_s), f"power_w({t_s!r})")

    def _energy_mj(self, elapsed_ns: int) -> Fraction | float:
        start_mj = Fraction(self.energy_at_start_j) * 1000
        elapsed_ns = max(elapsed_ns, 0)
        if self._constant_w is not None:
            return start_mj + self._constant_w * elapsed_ns / _NS_PER_MS
        if self._func is None:
            i = max(bisect.bisect_right(self._step_ns, elapsed_ns) - 1, 0)
            extra = self._step_w[i] * (elapsed_ns - self._step_ns[i]) / _NS_PER_MS
            return start_mj + self._step_mj[i] + extra
        with self._lock:
            last_ns, last_mj = self._func_last
            if elapsed_ns < last_ns:
                last_ns, last_mj = 0, 0.0
            mj = last_mj + self._simpson_mj(last_ns, elapsed_ns)
            self._func_last = (elapsed_ns, mj)
        return float(start_mj) + mj

    def _simpson_mj(self, a_ns: int, b_ns: int) -> float:
        if b_ns <= a_ns:
            return 0.0
        n = 2 * math.ceil((b_ns - a_ns) / (2 * _SIMPSON_STEP_NS))
        h_ns = (b_ns - a_ns) / n
        total = self._call_trace(a_ns / _NS_PER_S) + self._call_trace(b_ns / _NS_PER_S)
        for k in range(1, n):
            total += (4 if k % 2 else 2) * self._call_trace((a_ns + k * h_ns) / _NS_PER_S)
        return total * h_ns / 3 / _NS_PER_MS

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
        self._start_ns = self.clock.monotonic_ns()
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
            raise NVMLError(_ERROR_CODES["UNINITIALIZED"])
        return self._elapsed_ns()

    def _device(self, call: str, handle: object) -> tuple[_GpuHandle | _MigHandle, int]:
        elapsed = self._enter(call)
        if not isinstance(handle, (_GpuHandle, _MigHandle)) or handle.gpu not in self.gpus:
            raise NVMLError(_ERROR_CODES["INVALID_ARGUMENT"])
        handle.gpu._raise_if_failing(call, elapsed)
        return handle, elapsed

    def _physical(self, call: str, handle: object) -> tuple[_GpuHandle, int]:
        found, elapsed = self._device(call, handle)
        if isinstance(found, _MigHandle):
            raise NVMLError(_ERROR_CODES["NOT_SUPPORTED"])
        return found, elapsed

    def _build_module(self) -> types.ModuleType:
        mod = types.ModuleType("pynvml", "Fake pynvml from bertwatt.testing.nvml.")
        mod.__dict__["NVML_SUCCESS"] = 0
        for name, code in _ERROR_CODES.items():
            mod.__dict__[f"NVML_ERROR_{name}"] = code
        mod.__dict__["NVML_DEVICE_MIG_DISABLE"] = 0
        mod.__dict__["NVML_DEVICE_MIG_ENABLE"] = 1
        mod.__dict__["NVMLError"] = NVMLError
        mod.__dict__.update(_ERROR_CLASSES)
        for name in dir(self):
            if name.startswith("_nvml"):
                mod.__dict__[name[1:]] = getattr(self, name)
        return mod

    def _nvmlExceptionClass(self, code: int) -> type[NVMLError]:  # noqa: N802
        if code not in NVMLError._by_code:
            raise ValueError(f"nvmlErrorCode {code} is not valid")
        return NVMLError._by_code[code]

    def _nvmlErrorString(self, code: int) -> str:  # noqa: N802
        return _ERROR_TEXT.get(code, "Unknown Error")

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
            raise NVMLError(_ERROR_CODES["INVALID_ARGUMENT"])
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
        raise NVMLError(_ERROR_CODES["NOT_FOUND"])

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
            raise NVMLError(_ERROR_CODES["NOT_SUPPORTED"])
        return math.floor(found.gpu._energy_mj(elapsed))

    def _nvmlDeviceGetPowerUsage(self, handle: object) -> int:  # noqa: N802
        found, elapsed = self._physical("nvmlDeviceGetPowerUsage", handle)
        return round(found.gpu._power_at_ns(elapsed) * 1000)

    def _limit_mw(self, call: str, handle: object) -> int:
        found, _ = self._physical(call, handle)
        if found.gpu.power_limit_w is None:
            raise NVMLError(_ERROR_CODES["NOT_SUPPORTED"])
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
            raise NVMLError(_ERROR_CODES["INVALID_ARGUMENT"])
        return found.parent

    def _nvmlDeviceGetMaxMigDeviceCount(self, handle: object) -> int:  # noqa: N802
        found, _ = self._physical("nvmlDeviceGetMaxMigDeviceCount", handle)
        return _MAX_MIG_DEVICES if found.gpu.mig_uuids else 0

    def _nvmlDeviceGetMigDeviceHandleByIndex(self, handle: object, index: int) -> _MigHandle:  # noqa: N802
        found, _ = self._physical("nvmlDeviceGetMigDeviceHandleByIndex", handle)
        if not found.gpu.mig_uuids or not 0 <= index < _MAX_MIG_DEVICES:
            raise NVMLError(_ERROR_CODES["INVALID_ARGUMENT"])
        if index >= len(found.gpu.mig_uuids):
            raise NVMLError(_ERROR_CODES["NOT_FOUND"])
        return _MigHandle(found, index)

    def __repr__(self) -> str:
        return f"FakeNVML({len(self.gpus)} GPUs, clock={self.clock!r})"
