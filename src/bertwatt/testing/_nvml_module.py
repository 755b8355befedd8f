"""The fixed part of the fake ``pynvml`` module: error codes, error classes and constants.

Names, values, class names and ``str()`` texts follow ``pynvml.py`` of nvidia-ml-py 13.615.
:func:`build_module` puts them in a new module next to the functions a
:class:`~bertwatt.testing.nvml.FakeNVML` provides.
"""

from __future__ import annotations

import ctypes
import string
import types
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "ERROR_CLASSES",
    "ERROR_CODES",
    "ERROR_TEXT",
    "SAMPLING_TYPES",
    "VALUE_TYPES",
    "NVMLError",
    "build_module",
    "c_nvmlSample_t",
    "c_nvmlValue_t",
]

# Where the fake's error classes are documented and imported from.
_PUBLIC_MODULE = "bertwatt.testing.nvml"

# Error codes, with the values of nvml.h / pynvml.py (nvidia-ml-py 13.615, lines 224-254).
ERROR_CODES: dict[str, int] = {
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
ERROR_TEXT: dict[int, str] = {
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


#: ``nvmlSamplingType_t`` values (``NVML_<name>`` in pynvml) for ``nvmlDeviceGetSamples``.
SAMPLING_TYPES: dict[str, int] = {
    "TOTAL_POWER_SAMPLES": 0,
    "GPU_UTILIZATION_SAMPLES": 1,
    "MEMORY_UTILIZATION_SAMPLES": 2,
    "ENC_UTILIZATION_SAMPLES": 3,
    "DEC_UTILIZATION_SAMPLES": 4,
    "PROCESSOR_CLK_SAMPLES": 5,
    "MEMORY_CLK_SAMPLES": 6,
    "MODULE_POWER_SAMPLES": 7,
}

#: ``nvmlValueType_t`` values (``NVML_VALUE_TYPE_<name>`` in pynvml): which member of a sample's
#: ``nvmlValue_t`` union holds the value.
VALUE_TYPES: dict[str, int] = {
    "DOUBLE": 0,
    "UNSIGNED_INT": 1,
    "UNSIGNED_LONG": 2,
    "UNSIGNED_LONG_LONG": 3,
    "SIGNED_LONG_LONG": 4,
    "SIGNED_INT": 5,
    "UNSIGNED_SHORT": 6,
}


class c_nvmlValue_t(ctypes.Union):  # noqa: N801 - pynvml's name
    """``nvmlValue_t``: one sample's value; the member in use is named by the value type."""

    _fields_ = [
        ("dVal", ctypes.c_double),
        ("uiVal", ctypes.c_uint),
        ("ulVal", ctypes.c_ulong),
        ("ullVal", ctypes.c_ulonglong),
        ("sllVal", ctypes.c_longlong),
        ("siVal", ctypes.c_int),
        ("usVal", ctypes.c_ushort),
    ]


class c_nvmlSample_t(ctypes.Structure):  # noqa: N801 - pynvml's name
    """``nvmlSample_t``: ``timeStamp`` (CPU time stamp, microseconds) and ``sampleValue``."""

    _fields_ = [
        ("timeStamp", ctypes.c_ulonglong),
        ("sampleValue", c_nvmlValue_t),
    ]


class NVMLError(Exception):
    """The fake's ``pynvml.NVMLError``: ``.value`` is the NVML error code.

    As in pynvml, ``NVMLError(code)`` returns an instance of the matching subclass
    (``NVMLError(15)`` is an ``NVMLError_GpuIsLost``), and each subclass can be built without
    arguments.
    """

    __module__ = _PUBLIC_MODULE  # its public home, for tracebacks and pickles
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
        return ERROR_TEXT.get(self.value, f"NVML Error with code {self.value}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NVMLError) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (NVMLError, (self.value,))


def _class_name(error_name: str) -> str:
    # pynvml's rule: NVML_ERROR_GPU_IS_LOST -> NVMLError_GpuIsLost.
    return "NVMLError_" + string.capwords(error_name, "_").replace("_", "")


ERROR_CLASSES: dict[str, type[NVMLError]] = {}
for _name, _code in ERROR_CODES.items():
    _cls = type(_class_name(_name), (NVMLError,), {"_code": _code, "__module__": _PUBLIC_MODULE})
    NVMLError._by_code[_code] = _cls
    ERROR_CLASSES[_cls.__name__] = _cls
del _name, _code, _cls


def _nvml_exception_class(code: int) -> type[NVMLError]:
    if code not in NVMLError._by_code:
        raise ValueError(f"nvmlErrorCode {code} is not valid")
    return NVMLError._by_code[code]


def _nvml_error_string(code: int) -> str:
    return ERROR_TEXT.get(code, "Unknown Error")


def build_module(functions: Mapping[str, Callable[..., Any]]) -> types.ModuleType:
    """A new module named ``pynvml``: the constants and error classes, then ``functions``."""
    mod = types.ModuleType("pynvml", "Fake pynvml from bertwatt.testing.nvml.")
    mod.__dict__["NVML_SUCCESS"] = 0
    for name, code in ERROR_CODES.items():
        mod.__dict__[f"NVML_ERROR_{name}"] = code
    mod.__dict__["NVML_DEVICE_MIG_DISABLE"] = 0
    mod.__dict__["NVML_DEVICE_MIG_ENABLE"] = 1
    for name, value in SAMPLING_TYPES.items():
        mod.__dict__[f"NVML_{name}"] = value
    for name, value in VALUE_TYPES.items():
        mod.__dict__[f"NVML_VALUE_TYPE_{name}"] = value
    mod.__dict__["c_nvmlValue_t"] = c_nvmlValue_t
    mod.__dict__["c_nvmlSample_t"] = c_nvmlSample_t
    mod.__dict__["NVMLError"] = NVMLError
    mod.__dict__.update(ERROR_CLASSES)
    mod.__dict__["nvmlExceptionClass"] = _nvml_exception_class
    mod.__dict__["nvmlErrorString"] = _nvml_error_string
    mod.__dict__.update(functions)
    return mod
