"""Clocks: where the meter gets time from.

Durations always come from a monotonic clock; wall time is only a label in reports. The meter takes
a :class:`Clock`, so tests can pass :class:`bertwatt.testing.FakeClock` and run deterministically
without sleeping.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """Time source used by the meter and its sampler.

    Attributes:
        manual: True for clocks that only move when told to (fakes). The meter then runs no
            sampler thread; the clock calls the sampler as it advances.
    """

    manual: bool

    def monotonic_ns(self) -> int:
        """Nanoseconds from an arbitrary origin; never goes backwards."""
        ...

    def time_ns(self) -> int:
        """Wall-clock nanoseconds since the Unix epoch (a label, never a duration)."""
        ...

    def wait(self, event: threading.Event, timeout_s: float) -> bool:
        """Block until ``event`` is set or ``timeout_s`` passes; return whether it was set."""
        ...


class SystemClock:
    """The real clocks: :func:`time.monotonic_ns` and :func:`time.time_ns`."""

    manual = False

    def monotonic_ns(self) -> int:
        """Return :func:`time.monotonic_ns`."""
        return time.monotonic_ns()

    def time_ns(self) -> int:
        """Return :func:`time.time_ns`."""
        return time.time_ns()

    def wait(self, event: threading.Event, timeout_s: float) -> bool:
        """Wait on ``event`` for at most ``timeout_s`` seconds."""
        return event.wait(max(0.0, timeout_s))

    def __repr__(self) -> str:
        return "SystemClock()"
