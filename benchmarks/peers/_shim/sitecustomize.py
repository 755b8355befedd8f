"""Loaded at start-up by every Python process of the peers benchmark (it is on PYTHONPATH).

When ``BERTWATT_PEERS_SPEC`` names a spec file, it:

1. puts bertwatt's fake ``pynvml`` (:class:`bertwatt.testing.nvml.FakeNVML`) in
   ``sys.modules["pynvml"]``, one simulated GPU on the spec's step trace with the spec's sensor
   model, its time origin shared by every process (``origin_ns``), so bertwatt, Zeus,
   CodeCarbon and carbontracker, and any process they spawn, read the same GPU at the same time;
2. adds the few NVML calls the peers make that bertwatt's fake has no use for (architecture,
   memory, temperature, utilisation, process lists), with constant answers;
3. refuses every network connection that is not to 127.0.0.1 / ::1 / a Unix socket, so a peer
   that looks up its location or a carbon intensity online fails fast instead of leaving the
   machine.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import types


def _guard_network() -> None:
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def allowed(address: object) -> bool:
        if isinstance(address, (str, bytes)):  # AF_UNIX
            return True
        host = address[0] if isinstance(address, tuple) and address else None
        return host in ("127.0.0.1", "::1", "localhost")

    def connect(self: socket.socket, address: object) -> None:
        if not allowed(address):
            raise OSError(101, f"peers benchmark: network to {address!r} is blocked")
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: object) -> int:
        if not allowed(address):
            return 101
        return real_connect_ex(self, address)

    def getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
        if host not in (None, "127.0.0.1", "::1", "localhost", b"localhost"):
            raise socket.gaierror(-2, f"peers benchmark: name lookup of {host!r} is blocked")
        return real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]


class _GoClock:
    """Monotonic time since the GO signal: the simulated GPU's ``t = 0``.

    ``run.py`` writes the GO time (a ``time.monotonic_ns()`` value, system-wide on Linux) to
    ``go_path`` once every process has imported its tool and built its tracker, so slow start-ups
    shift nothing. Until then the fake's time stands far before 0: the GPU draws its first step's
    power and its counter stays at its start value (so it never runs backwards). Processes the
    tools spawn read the same file. Without ``go_path``, ``origin_ns`` is the origin.
    """

    manual = False

    def __init__(self, go_path: str | None, origin_ns: int) -> None:
        self.go_path = go_path
        self.origin_ns: int | None = None if go_path else origin_ns

    def monotonic_ns(self) -> int:
        if self.origin_ns is None:
            try:
                with open(self.go_path, encoding="ascii") as f:  # type: ignore[arg-type]
                    self.origin_ns = int(f.read())
            except (OSError, ValueError):
                return -(10**13)  # before GO
        return time.monotonic_ns() - self.origin_ns

    def time_ns(self) -> int:
        return time.time_ns()

    def wait(self, event: object, timeout_s: float) -> bool:
        return event.wait(max(0.0, timeout_s))  # type: ignore[attr-defined]


class _Struct:
    def __init__(self, **fields: object) -> None:
        self.__dict__.update(fields)


def _install(spec: dict) -> None:
    from bertwatt.testing.nvml import FakeGPU, FakeNVML, NVMLError, SensorModel

    counter = bool(spec["counter"])
    gpu = FakeGPU(
        "NVIDIA A100-SXM4-40GB",
        uuid="GPU-5e2f0000-0000-4000-8000-0000000000a1",
        power_w=[tuple(step) for step in spec["steps"]],
        power_limit_w=400.0,
        supports_energy_counter=counter,
        energy_at_start_j=123_456.0,
        sensor=SensorModel(**spec["sensor"]),
    )
    clock = _GoClock(spec.get("go_path"), int(spec["origin_ns"]))
    fake = FakeNVML([gpu], clock=clock, origin_ns=0)
    mod: types.ModuleType = fake.module
    not_supported = mod.NVMLError_NotSupported

    def unsupported(*_args: object) -> object:
        raise not_supported()

    def field_values(handle: object, fields: list) -> list:
        # nvmlDeviceGetFieldValues for the two power fields Zeus reads; the instant field is the
        # sensor's instant reading, the same one nvmlDeviceGetPowerUsage returns on an A100.
        out = []
        for field in fields:
            field_id, scope = field if isinstance(field, tuple) else (field, 0)
            if field_id in (185, 186) and scope in (0, 1):
                value = _Struct(uiVal=mod.nvmlDeviceGetPowerUsage(handle))
                out.append(_Struct(nvmlReturn=0, value=value, fieldId=field_id, scopeId=scope))
            else:
                out.append(_Struct(nvmlReturn=3, value=_Struct(uiVal=0), fieldId=field_id))
        return out

    extras = {
        # Zeus uses the energy counter only from Volta (5) on: an A100 is Ampere (7); without
        # the counter the fake says Pascal (4), as on a GPU that has none.
        "NVML_DEVICE_ARCH_PASCAL": 4,
        "NVML_DEVICE_ARCH_VOLTA": 5,
        "NVML_DEVICE_ARCH_AMPERE": 7,
        "NVML_TEMPERATURE_GPU": 0,
        "NVML_FEATURE_DISABLED": 0,
        "NVML_FEATURE_ENABLED": 1,
        "NVML_FI_DEV_POWER_AVERAGE": 185,
        "NVML_FI_DEV_POWER_INSTANT": 186,
        "NVML_POWER_SCOPE_GPU": 0,
        "NVML_POWER_SCOPE_MODULE": 1,
        "NVML_POWER_SCOPE_MEMORY": 2,
        "nvmlDeviceGetArchitecture": lambda h: 7 if counter else 4,
        "nvmlDeviceGetC2cModeInfoV": unsupported,
        "nvmlDeviceGetFieldValues": field_values,
        "nvmlDeviceGetMemoryInfo": lambda h, *a: _Struct(
            total=40 * 2**30, free=39 * 2**30, used=2**30, reserved=0
        ),
        "nvmlDeviceGetTemperature": lambda h, sensor=0: 45,
        "nvmlDeviceGetUtilizationRates": lambda h: _Struct(gpu=100, memory=30),
        "nvmlDeviceGetComputeRunningProcesses": lambda h: [],
        "nvmlDeviceGetGraphicsRunningProcesses": lambda h: [],
        "nvmlDeviceGetComputeMode": lambda h: 0,
        "nvmlDeviceGetPersistenceMode": lambda h: 1,
        "nvmlDeviceGetPowerManagementDefaultLimit": lambda h: 400_000,
        "nvmlDeviceGetPowerManagementLimitConstraints": lambda h: [100_000, 400_000],
        "nvmlSystemGetCudaDriverVersion": lambda: 12040,
        "nvmlSystemGetNVMLVersion": lambda: "12.550.54.15",
        "c_nvmlMemory_t": _Struct,
        # Zeus refuses a pynvml without this private name of nvidia-ml-py (its test for the
        # official bindings); the fake answers like the C library when a function is missing.
        "_nvmlGetFunctionPointer": lambda name: unsupported(),
    }
    for name, value in extras.items():
        mod.__dict__.setdefault(name, value)
    assert issubclass(not_supported, NVMLError)
    sys.modules["pynvml"] = mod
    sys.modules["bertwatt_peers_fake"] = types.SimpleNamespace(fake=fake, gpu=gpu, clock=clock)  # type: ignore[assignment]


_path = os.environ.get("BERTWATT_PEERS_SPEC")
if _path:
    _guard_network()
    with open(_path, encoding="utf-8") as _f:
        _install(json.load(_f))
