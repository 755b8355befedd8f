"""A clock that moves only when told to, for deterministic tests that never sleep."""

from __future__ import annotations

import threading
from typing import Protocol

from bertwatt._checks import check_number

__all__ = ["FakeClock"]

_NS = 1_000_000_000


class _Listener(Protocol):
    def next_due_ns(self) -> int | None: ...

    def run_due(self, now_ns: int) -> None: ...


class FakeClock:
    """A manual clock. ``advance(seconds)`` moves time forward, stopping at every sampler tick.

    A meter built with a ``FakeClock`` starts no thread: its sampler attaches to the clock, and
    each :meth:`advance` runs the ticks that fall due in order, each at its exact time. Backends
    that need the time (the fake NVML module, :class:`~bertwatt.testing.FakeBackend`) read it from
    the same clock, so traces are exact and tests are repeatable.

    Args:
        start_s: initial monotonic time in seconds.
        wall_start_s: initial wall-clock time in seconds since the epoch (a label only).
    """

    manual = True

    def __init__(self, start_s: float = 1000.0, wall_start_s: float = 1_767_225_600.0) -> None:
        start_s = check_number("start_s", start_s, low=0.0, unit="s")
        wall_start_s = check_number("wall_start_s", wall_start_s, low=0.0, unit="s")
        self._now_ns = round(start_s * _NS)
        self._wall_offset_ns = round(wall_start_s * _NS) - self._now_ns
        self._listeners: list[_Listener] = []
        self._lock = threading.RLock()

    def monotonic_ns(self) -> int:
        """Current fake monotonic time in nanoseconds."""
        return self._now_ns

    def time_ns(self) -> int:
        """Current fake wall time in nanoseconds since the epoch."""
        return self._now_ns + self._wall_offset_ns

    @property
    def now_s(self) -> float:
        """Current fake monotonic time in seconds."""
        return self._now_ns / _NS

    def attach(self, listener: _Listener) -> None:
        """Register a sampler to be run as time advances (done by the meter)."""
        with self._lock:
            if listener not in self._listeners:
                self._listeners.append(listener)

    def detach(self, listener: _Listener) -> None:
        """Stop running ``listener`` (done by the meter when it stops)."""
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, running every sampler tick that falls due."""
        seconds = check_number("FakeClock.advance seconds", seconds, low=0.0, unit="s")
        with self._lock:
            target = self._now_ns + round(seconds * _NS)
            while True:
                due = [d for d in (li.next_due_ns() for li in self._listeners) if d is not None]
                nxt = min(due) if due else None
                if nxt is None or nxt > target:
                    break
                self._now_ns = max(self._now_ns, nxt)
                for li in list(self._listeners):
                    d = li.next_due_ns()
                    if d is not None and d <= self._now_ns:
                        li.run_due(self._now_ns)
            self._now_ns = target

    def wait(self, event: threading.Event, timeout_s: float) -> bool:
        """Advance by ``timeout_s`` unless ``event`` is already set; never blocks."""
        if not event.is_set():
            self.advance(max(0.0, timeout_s))
        return event.is_set()

    def __repr__(self) -> str:
        return f"FakeClock(now_s={self.now_s:.6f})"
