"""The meter's sampler: reads every backend on a schedule without letting a slow one stall the rest.

Backends come in two classes (``Backend.blocking``):

- **fast** (NVML, powercap, estimates): read by one shared thread at absolute monotonic deadlines,
  and additionally at every window edge by the thread that opens or closes the window;
- **blocking** (network meters: wall plugs, BMCs): each read on a thread of its own. A read that
  takes seconds or hangs delays nothing but that backend's next sample; window edges are resolved
  later from its timeline, and ``stop()`` waits at most ``slow_read_timeout_s`` for it.

A backend whose ``read()`` raises is retried with exponential back-off (up to 5 s); its channels
show gaps, every other channel goes on. With a manual clock (:class:`bertwatt.testing.FakeClock`)
no thread is started: the clock runs due ticks as it advances.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from typing import Any

from bertwatt.backends.base import Backend, Channel
from bertwatt.clock import Clock
from bertwatt.timeline import ChannelTimeline

__all__ = ["BackendGroup", "Sampler", "make_group"]

logger = logging.getLogger(__name__)

_MAX_BACKOFF_NS = 5_000_000_000

#: How long a window edge waits for a fast backend's read already in progress.
EDGE_WAIT_S = 0.25


class BackendGroup:
    """One backend, its channels' timelines, its lock and its schedule."""

    __slots__ = (
        "backend",
        "base_interval_ns",
        "blocking",
        "consecutive_errors",
        "interval_ns",
        "last_error",
        "lock",
        "next_due_ns",
        "read_lock",
        "read_started_ns",
        "reads",
        "skipped_edges",
        "thread",
        "timelines",
    )

    def __init__(
        self, backend: Backend, timelines: Sequence[ChannelTimeline], interval_ns: int
    ) -> None:
        self.backend = backend
        self.timelines = tuple(timelines)
        self.blocking = bool(getattr(backend, "blocking", False))
        safe = [tl.wrap_safe_s for tl in self.timelines if tl.wrap_safe_s]
        if safe:
            # Read a wrap-prone counter at least twice per interval in which it can wrap once.
            interval_ns = min(interval_ns, int(min(safe) * 0.5e9))
        self.base_interval_ns = max(1_000_000, interval_ns)
        self.interval_ns = self.base_interval_ns
        self.lock = threading.Lock()
        self.read_lock = threading.Lock()
        self.read_started_ns = 0
        self.skipped_edges = 0
        self.next_due_ns = 0
        self.consecutive_errors = 0
        self.last_error = ""
        self.reads = 0
        self.thread: threading.Thread | None = None

    def _record(self, t_ns: int, values: list[float], errors: dict[int, str] | None) -> None:
        for i, tl in enumerate(self.timelines):
            v = values[i] if i < len(values) else math.nan
            if v != v:
                msg = (errors or {}).get(i) or "no value returned"
                tl.fail(t_ns, msg)
            else:
                tl.add(t_ns, v)

    def _on_error(self, t_ns: int, err: BaseException) -> None:
        self.consecutive_errors += 1
        msg = f"{type(err).__name__}: {err}"
        self.last_error = msg
        for tl in self.timelines:
            tl.fail(t_ns, f"{self.backend.name}.read() raised {msg}")
        self.interval_ns = min(
            _MAX_BACKOFF_NS, self.base_interval_ns * (2 ** min(self.consecutive_errors, 16))
        )
        self.interval_ns = max(self.interval_ns, self.base_interval_ns)

    def _on_ok(self) -> None:
        if self.consecutive_errors:
            self.consecutive_errors = 0
            self.interval_ns = self.base_interval_ns

    def sample_locked(self, clock: Clock, wait_s: float | None = None) -> bool:
        """Read and record one sample (fast backends). Returns False if skipped.

        Reads are serialised by ``read_lock`` (so samples are recorded in time order); the state
        ``lock`` is taken only to record, so a read that stalls never blocks marks, snapshots or
        reports. With ``wait_s``, give up if another read is still running after that long.
        """
        if wait_s is not None and not self.read_lock.acquire(blocking=False):
            # Another read is running. One stalled for longer than wait_s already (a GPU that
            # fell off the bus) is skipped at once, so a stall costs each edge nothing.
            started = self.read_started_ns
            stalled = started and clock.monotonic_ns() - started > wait_s * 1e9
            if stalled or not self.read_lock.acquire(timeout=wait_s):
                self.skipped_edges += 1
                return False
        elif wait_s is None:
            self.read_lock.acquire()
        try:
            t0 = clock.monotonic_ns()
            self.read_started_ns = t0
            try:
                values, errors = self.backend.read()
            except Exception as err:
                with self.lock:
                    self._on_error(t0, err)
                return True
            t1 = clock.monotonic_ns()
            with self.lock:
                self.reads += 1
                self._record((t0 + t1) // 2, values, errors)
                self._on_ok()
            return True
        finally:
            self.read_started_ns = 0
            self.read_lock.release()

    def sample_unlocked_read(self, clock: Clock) -> None:
        """Read outside the lock (it may take long), then record under it (blocking backends)."""
        t0 = clock.monotonic_ns()
        try:
            values, errors = self.backend.read()
        except Exception as err:
            with self.lock:
                self._on_error(t0, err)
            return
        t1 = clock.monotonic_ns()
        with self.lock:
            self.reads += 1
            self._record((t0 + t1) // 2, values, errors)
            self._on_ok()


class Sampler:
    """Schedules reads of every backend group; one shared thread plus one per blocking backend."""

    def __init__(self, groups: Sequence[BackendGroup], clock: Clock) -> None:
        self.groups = tuple(groups)
        self.clock = clock
        self._fast = tuple(g for g in self.groups if not g.blocking)
        self._slow = tuple(g for g in self.groups if g.blocking)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.missed_ticks = 0

    # ------------------------------------------------------------ manual clock
    def next_due_ns(self) -> int | None:
        """Earliest deadline of any group (manual clocks only)."""
        if self._stop.is_set() or not self.groups:
            return None
        return min(g.next_due_ns for g in self.groups)

    def run_due(self, now_ns: int) -> None:
        """Run every group due at ``now_ns`` (manual clocks only; reads inline)."""
        for g in self.groups:
            if g.next_due_ns <= now_ns:
                if g.blocking:
                    g.sample_unlocked_read(self.clock)
                else:
                    g.sample_locked(self.clock)
                g.next_due_ns = now_ns + g.interval_ns

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Take the first sample of every fast group now and start the threads."""
        self._stop.clear()
        now = self.clock.monotonic_ns()
        for g in self._fast:
            g.sample_locked(self.clock)
            g.next_due_ns = now + g.interval_ns
        for g in self._slow:
            g.next_due_ns = now
        if self.clock.manual:
            for g in self._slow:
                g.sample_unlocked_read(self.clock)
                g.next_due_ns = now + g.interval_ns
            attach = getattr(self.clock, "attach", None)
            if attach is not None:
                attach(self)
            return
        if self._fast:
            self._thread = threading.Thread(
                target=self._run_fast, name="bertwatt-sampler", daemon=True
            )
            self._thread.start()
        for g in self._slow:
            g.thread = threading.Thread(
                target=self._run_slow, args=(g,), name=f"bertwatt-{g.backend.name}", daemon=True
            )
            g.thread.start()

    def stop(self, slow_timeout_s: float) -> list[str]:
        """Stop the threads. Returns the names of blocking backends that did not finish in time."""
        self._stop.set()
        detach = getattr(self.clock, "detach", None)
        if self.clock.manual and detach is not None:
            detach(self)
        hung: list[str] = []
        if self._thread is not None:
            self._thread.join(timeout=max(EDGE_WAIT_S, slow_timeout_s))
            if self._thread.is_alive():
                hung.extend(g.backend.name for g in self._fast if g.read_lock.locked())
            self._thread = None
        for g in self._slow:
            if g.thread is not None:
                g.thread.join(timeout=max(0.0, slow_timeout_s))
                if g.thread.is_alive():
                    hung.append(g.backend.name)
                g.thread = None
        return hung

    def edge_read(self) -> None:
        """Read every fast group now (at a window edge), from the caller's thread.

        A group whose previous read is still running after ``EDGE_WAIT_S`` is skipped: its edge
        is then resolved from the timeline, and the caller is not held up.
        """
        wait = None if self.clock.manual else EDGE_WAIT_S
        for g in self._fast:
            g.sample_locked(self.clock, wait)

    def wait_for_slow(self, t_ns: int, timeout_s: float) -> None:
        """Wait until every blocking group has a sample after ``t_ns`` (or the timeout)."""
        if not self._slow:
            return
        deadline = self.clock.monotonic_ns() + int(timeout_s * 1e9)
        waiter = threading.Event()
        while True:
            pending = False
            for g in self._slow:
                with g.lock:
                    lasts = [tl.last_t for tl in g.timelines if tl.last_t is not None]
                if (
                    g.thread is not None
                    and g.thread.is_alive()
                    and (not lasts or max(lasts) < t_ns)
                ):
                    pending = True
            if not pending or self.clock.monotonic_ns() >= deadline:
                return
            self.clock.wait(waiter, 0.01)

    # ------------------------------------------------------------ threads
    def _run_fast(self) -> None:
        clock, stop, groups = self.clock, self._stop, self._fast
        now_fn = clock.monotonic_ns
        while not stop.is_set():
            nxt = min(g.next_due_ns for g in groups)
            delay = (nxt - now_fn()) / 1e9
            if delay > 0 and clock.wait(stop, delay):
                return
            now = now_fn()
            for g in groups:
                if g.next_due_ns <= now:
                    try:
                        g.sample_locked(clock)
                    except Exception:  # pragma: no cover - sample_locked catches read errors
                        logger.exception("bertwatt sampler: recording %s failed", g.backend.name)
                    due = g.next_due_ns + g.interval_ns
                    if due <= now:
                        self.missed_ticks += (now - due) // g.interval_ns + 1
                        due = now + g.interval_ns
                    g.next_due_ns = due

    def _run_slow(self, g: BackendGroup) -> None:
        clock, stop = self.clock, self._stop
        while not stop.is_set():
            start = clock.monotonic_ns()
            try:
                g.sample_unlocked_read(clock)
            except Exception:  # pragma: no cover - defensive
                logger.exception("bertwatt sampler: recording %s failed", g.backend.name)
            delay = (start + g.interval_ns - clock.monotonic_ns()) / 1e9
            if delay > 0 and clock.wait(stop, delay):
                return


def make_group(
    backend: Backend,
    all_channels: Sequence[Channel],
    kept: Sequence[Channel],
    timelines: Sequence[ChannelTimeline],
    interval_ns: int,
) -> BackendGroup:
    """A BackendGroup recording only the channels the meter kept, in their order.

    A channel dropped at start (a name another backend already measures) is still read by its
    backend; the group maps the backend's value positions onto the kept timelines.
    """
    if len(kept) == len(all_channels):
        return BackendGroup(backend, timelines, interval_ns)
    index = [list(all_channels).index(ch) for ch in kept]
    return BackendGroup(_Subset(backend, index), timelines, interval_ns)


class _Subset:
    """A backend view that returns only some positions of the wrapped backend's reads."""

    def __init__(self, inner: Backend, index: list[int]) -> None:
        self.inner = inner
        self.index = index
        self.name = inner.name
        self.blocking = inner.blocking

    def probe(self) -> Any:  # pragma: no cover - the meter probes the inner backend
        return self.inner.probe()

    def read(self) -> tuple[list[float], dict[int, str] | None]:
        values, errors = self.inner.read()
        out = [values[i] if i < len(values) else float("nan") for i in self.index]
        errs = None
        if errors:
            errs = {j: errors[i] for j, i in enumerate(self.index) if i in errors}
        return out, errs

    def close(self) -> None:
        self.inner.close()
