"""Fake sensors and a fake clock for testing energy accounting without hardware.

Everything here works without pytest; ``bertwatt.testing.pytest_plugin`` wraps it in fixtures.

- :class:`FakeClock`: a manual clock; ``advance(s)`` runs the meter's sampler ticks exactly.
- :class:`FakeBackend` / :class:`FakeChannel`: scripted counters and power readings with faults.
- :class:`FakeNVML` / :class:`FakeGPU`: a fake ``pynvml`` module for the real NVML backend;
  :class:`SensorModel`: what a board's power sensor and energy counter report (A100/H100 25 ms
  in 100 ms, 1 s averaged readings, gain error, 100 ms counter steps).
- :class:`FakePowercapTree`: real powercap sysfs files under a directory for the RAPL backend.
- :class:`PowerTrace`: constant, step or function power traces with exact integrals.
"""

from __future__ import annotations

from bertwatt._lazy import lazy_names

__all__ = [
    "FakeBackend",
    "FakeChannel",
    "FakeClock",
    "FakeGPU",
    "FakeNVML",
    "FakePowercapTree",
    "PowerTrace",
    "SensorModel",
]

_LAZY = {
    "FakeBackend": "bertwatt.testing.fakes",
    "FakeChannel": "bertwatt.testing.fakes",
    "FakeClock": "bertwatt.testing.clock",
    "FakeGPU": "bertwatt.testing.nvml",
    "FakeNVML": "bertwatt.testing.nvml",
    "FakePowercapTree": "bertwatt.testing.powercap",
    "PowerTrace": "bertwatt.testing.traces",
    "SensorModel": "bertwatt.testing.nvml",
}


__getattr__, __dir__ = lazy_names(__name__, globals(), _LAZY)
