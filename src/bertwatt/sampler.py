"""The meter's sampler: reads every backend on a schedule; no backend can delay another.

Each backend has its own daemon thread (named ``bertwatt-sampler-<backend>``), which makes every
call into it: the periodic reads at absolute monotonic deadlines, the reads a window edge asks
for, and ``close()`` when the window ends. A read that takes seconds or hangs therefore delays
only that backend's own samples. Everything goes through one read-and-record path,
:meth:`BackendGroup.sample`, which validates the answer at the boundary
(:func:`bertwatt.backends._guard.check_reading`): an exception or a malformed answer is a failed
read with its reason (a gap in those channels), never an exception in the caller.

One word splits backends: ``Backend.blocking``. A **non-blocking** backend (NVML, powercap, the
estimate) is also read at every window edge: the edge asks its thread for a read and waits at
most ``edge_timeout_s`` for it. A **blocking** backend (a network meter) is never read at edges:
its edges are resolved later from its timeline, and ``stop()`` waits at most
``slow_read_timeout_s`` for a sample taken after the window closed. A non-blocking backend that
misses an edge (its read stalls) is treated as blocking until it answers promptly again, so one
stall costs one edge at most ``edge_timeout_s``, and the report says so.

A backend whose ``read()`` fails is retried with exponential back-off (up to 5 s); its channels
show gaps, every other channel goes on. With a manual clock (:class:`bertwatt.testing.FakeClock`)
no thread is started: reads run inline as the clock advances, deterministically.
"""

from __future__ import annotations

import _thread
import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence

from bertwatt.backends._guard import BadReading, check_reading, release
from bertwatt.backends.base import Backend, Channel
from bertwatt.characterise import attach_bursts, start_burst
from bertwatt.clock import Clock, SystemClock
from bertwatt.timeline import ChannelTimeline

__all__ = ["BackendGroup", "Sampler", "make_group"]

logger = logging.getLogger(__name__)

_MAX_BACKOFF_NS = 5_000_000_000
#: Reads in a row, each faster than a quarter of the edge timeout, after which a backend that
#: missed an edge is read at edges again.
_PROMPT_READS_TO_RESTORE = 10
_MAX_NOTES = 20
#: Reads at ``interval_s`` after a reading was rejected, before a slow cadence resumes.
_QUICK_READS_AFTER_TROUBLE = 5

_running: weakref.WeakSet[Sampler] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for sampler in list(_running):
        sampler.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

#: Default for ``edge_timeout_s``: how long a window edge waits for a non-blocking backend's read.
EDGE_TIMEOUT_S = 0.25


def _now_fn(clock: Clock) -> Callable[[], int]:
    """The clock's ``monotonic_ns``: :func:`time.monotonic_ns` itself for the system clock (one
    C call per time stamp on the hot path, not a Python method around it)."""
    return time.monotonic_ns if type(clock) is SystemClock else clock.monotonic_ns


def _new_wake() -> _thread.LockType:
    """A wake-up for a sampler thread: a raw lock, held while nobody has asked for a read.

    The thread sleeps in ``acquire(True, timeout)``; :meth:`BackendGroup.poke` releases the lock
    to wake it at once. A raw lock's timed acquire is one C call; ``threading.Event.wait`` runs a
    ``Condition`` in Python (a new lock, a waiter list) on every wake-up, which measured about 30 %
    more CPU per wake-up beside a training loop (docs/performance.md, section 3).
    """
    lock = _thread.allocate_lock()
    lock.acquire()
    return lock


def _reason(err: BaseException) -> str:
    try:
        text = str(err)
    except Exception:
        text = "<unprintable>"
    if len(text) > 200:
        text = text[:197] + "..."
    return text if isinstance(err, BadReading) else f"raised {type(err).__name__}: {text}"


class BackendGroup:
    """One backend, the timelines of the channels the meter kept, and its schedule.

    Args:
        backend: the backend object (shared with other meters is fine: see ``_guard``).
        timelines: one per kept channel.
        interval_ns: sampling period.
        n_channels: how many values the backend's ``read()`` returns (all its probed channels).
        index: positions of the kept channels in those values (None: all, in order).
    """

    __slots__ = (
        "at_edges",
        "backend",
        "base_interval_ns",
        "blocking",
        "call",
        "consecutive_errors",
        "done_ns",
        "edge_wanted",
        "finished",
        "index",
        "interval_ns",
        "last_error",
        "last_mid_ns",
        "lock",
        "missed_ticks",
        "n_channels",
        "name",
        "next_due_ns",
        "prompt_reads",
        "quick_reads",
        "read_started_ns",
        "reads",
        "retry_interval_ns",
        "stalls",
        "thread",
        "timelines",
        "wake",
    )

    def __init__(
        self,
        backend: Backend,
        timelines: Sequence[ChannelTimeline],
        interval_ns: int,
        *,
        n_channels: int | None = None,
        index: Sequence[int] | None = None,
        retry_interval_ns: int | None = None,
    ) -> None:
        self.backend = backend
        name = getattr(backend, "name", None)
        self.name = name if isinstance(name, str) and name else type(backend).__name__
        self.timelines = tuple(timelines)
        self.n_channels = len(self.timelines) if n_channels is None else n_channels
        self.index = tuple(index) if index is not None else None
        self.blocking = getattr(backend, "blocking", False) is True
        self.at_edges = not self.blocking
        safe = [tl.wrap_safe_s for tl in self.timelines if tl.wrap_safe_s]
        if safe:
            # Read a wrap-prone counter at least twice per interval in which it can wrap once.
            interval_ns = min(interval_ns, int(min(safe) * 0.5e9))
        self.base_interval_ns = max(1_000_000, interval_ns)
        self.interval_ns = self.base_interval_ns
        # after a reading a timeline rejected, read again this soon (not a whole slow period)
        retry = self.base_interval_ns if retry_interval_ns is None else retry_interval_ns
        self.retry_interval_ns = max(1_000_000, min(retry, self.base_interval_ns))
        self.lock = threading.Lock()
        self.wake = _new_wake()
        self.edge_wanted = False
        self.finished = False
        self.call = ""
        self.read_started_ns = 0
        self.done_ns = -1
        self.last_mid_ns = -1
        self.next_due_ns = 0
        self.consecutive_errors = 0
        self.last_error = ""
        self.reads = 0
        self.missed_ticks = 0
        self.stalls = 0
        self.prompt_reads = 0
        self.quick_reads = 0
        self.thread: threading.Thread | None = None

    # ------------------------------------------------------------ the one read-and-record path
    def sample(self, clock: Clock) -> None:
        """Read the backend once and record the answer; never raises for what the backend does.

        The state ``lock`` is held only to record, so a read that stalls never blocks marks,
        snapshots or reports. After the window is finished, late answers are dropped.
        """
        now = _now_fn(clock)
        t0 = now()
        self.read_started_ns = t0
        self.call = "read"
        try:
            values, errors = check_reading(
                self.backend.read(), self.n_channels, f"{self.name}.read()"
            )
        except Exception as err:
            reason = f"{self.name}.read() {_reason(err)}"
            with self.lock:
                if not self.finished:
                    self._on_error(t0, reason)
                self.done_ns = t0
            return
        finally:
            self.call = ""
            self.read_started_ns = 0
        t1 = now()
        mid = (t0 + t1) // 2
        with self.lock:
            if self.finished:
                return
            self.reads += 1
            try:
                self._record(mid, values, errors)
            except Exception as err:  # pragma: no cover - timelines take any float
                logger.debug("bertwatt: recording %s failed: %s", self.name, err)
            self._on_ok()
            # a rejected reading (glitch, out of range): re-read soon, and for a few reads after
            # the channel recovers, so a few bad readings cost a few short intervals and a
            # re-based counter meets the plausibility check at a short interval again, even
            # where the normal cadence is slow (counters)
            if self._in_trouble():
                self.quick_reads = _QUICK_READS_AFTER_TROUBLE
            elif self.quick_reads:
                self.quick_reads -= 1
            self.interval_ns = self.retry_interval_ns if self.quick_reads else self.base_interval_ns
            self.last_mid_ns = mid
            self.done_ns = t0

    def _in_trouble(self) -> bool:
        for tl in self.timelines:  # noqa: SIM110 - a plain loop: no generator on every tick
            if tl.in_trouble:
                return True
        return False

    def poke(self) -> None:
        """Wake this group's thread now (a read is wanted, or the window is stopping)."""
        with contextlib.suppress(RuntimeError):  # already released: a wake-up is pending
            self.wake.release()

    def _record(self, t_ns: int, values: list[float], errors: dict[int, str]) -> None:
        index = self.index
        for j, tl in enumerate(self.timelines):
            i = index[j] if index is not None else j
            v = values[i]
            if v != v:
                tl.fail(t_ns, errors.get(i) or "no value returned")
            else:
                tl.add(t_ns, v)

    def _on_error(self, t_ns: int, reason: str) -> None:
        self.consecutive_errors += 1
        self.last_error = reason
        for tl in self.timelines:
            tl.fail(t_ns, reason)
        backoff = self.base_interval_ns * (2 ** min(self.consecutive_errors, 16))
        self.interval_ns = max(self.base_interval_ns, min(_MAX_BACKOFF_NS, backoff))

    def _on_ok(self) -> None:
        if self.consecutive_errors:
            self.consecutive_errors = 0
            self.interval_ns = self.base_interval_ns

    def close_if_last(self) -> None:
        """Release this window's use of the backend; close it if no other meter uses it."""
        if not release(self.backend):
            return
        self.call = "close"
        try:
            self.backend.close()
        except Exception as err:
            logger.debug("bertwatt: closing backend %s failed: %s", self.name, err)
        finally:
            self.call = ""


class Sampler:
    """Runs every backend group on its own thread (or inline with a manual clock).

    Args:
        groups: the backend groups of one window.
        clock: the meter's clock.
        edge_timeout_s: how long a window edge waits for a non-blocking backend's read.
    """

    def __init__(
        self,
        groups: Sequence[BackendGroup],
        clock: Clock,
        *,
        edge_timeout_s: float = EDGE_TIMEOUT_S,
    ) -> None:
        self.groups = tuple(groups)
        self.clock = clock
        self.edge_timeout_s = edge_timeout_s
        #: stop() sets this: the last edge waits at most until then (or 0.25 s, if longer).
        self.edge_deadline_ns: int | None = None
        self.notes: list[str] = []
        self._stop = threading.Event()
        #: Mirrors ``_stop`` as a plain attribute for the sampler threads' loop test.
        self._halt = False
        self._cv = threading.Condition()
        self._waiting = 0
        self._t0 = 0
        self._stopped = False

    @property
    def missed_ticks(self) -> int:
        """Ticks of non-blocking backends that could not run on time (the process was busy)."""
        return sum(g.missed_ticks for g in self.groups)

    def _note(self, text: str) -> None:
        if len(self.notes) < _MAX_NOTES:
            self.notes.append(text)

    def _at(self, t_ns: int) -> str:
        return f"+{(t_ns - self._t0) / 1e9:.3f} s"

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
                g.sample(self.clock)
                g.next_due_ns = now_ns + g.interval_ns

    # ------------------------------------------------------------ lifecycle
    def start(self, first_read_timeout_s: float) -> None:
        """Start sampling; wait at most ``first_read_timeout_s`` for non-blocking first reads.

        A non-blocking backend whose first read has not returned by then is treated as blocking
        (its channels start when it answers) and a note says so.
        """
        self._stop.clear()
        self._halt = False
        now = self.clock.monotonic_ns()
        self._t0 = now
        if self.clock.manual:
            attach_bursts(self)  # self-characterisation, polled as the clock advances
            for g in self.groups:
                g.sample(self.clock)
                g.next_due_ns = now + g.interval_ns
            attach = getattr(self.clock, "attach", None)
            if attach is not None:
                attach(self)
            return
        _running.add(self)
        for g in self.groups:
            g.next_due_ns = now
            g.thread = threading.Thread(
                target=self._run, args=(g,), name=f"bertwatt-sampler-{g.name}", daemon=True
            )
            g.thread.start()
        first = [g for g in self.groups if g.at_edges]
        if first and not self._wait(
            lambda: all(g.done_ns >= 0 for g in first), first_read_timeout_s
        ):
            for g in first:
                if g.done_ns < 0:
                    g.at_edges = False
                    g.stalls += 1
                    self._note(
                        f"backend {g.name!r}: the first read() did not return within "
                        f"{first_read_timeout_s:.3g} s of start() (probe_timeout_s): its channels "
                        "start when it answers, and its edges are resolved from its timeline"
                    )

    def stop(self, deadline_s: float, close_grace_s: float = 0.5) -> list[BackendGroup]:
        """Stop sampling; wait for the threads until ``deadline_s`` (``time.monotonic()``).

        A thread that is closing its backend by then gets ``close_grace_s`` more. Returns the
        groups whose thread is still inside a call (a hung ``read()`` or ``close()``); those
        threads are left to finish on their own and then close their backend if no other meter
        uses it. Late answers are dropped.
        """
        import time

        if self._stopped:  # already stopped (or a fork() child's copy): nothing to release
            return []
        self._stop.set()
        self._halt = True
        self._stopped = True
        if self.clock.manual:
            detach = getattr(self.clock, "detach", None)
            if detach is not None:
                detach(self)
            for g in self.groups:
                with g.lock:
                    g.finished = True
                g.close_if_last()
            return []
        _running.discard(self)
        for g in self.groups:
            g.poke()
            if g.thread is None:  # never started (start() failed first): release it here
                threading.Thread(
                    target=g.close_if_last, name=f"bertwatt-close-{g.name}", daemon=True
                ).start()
        for g in self.groups:
            if g.thread is not None:
                g.thread.join(timeout=max(0.0, deadline_s - time.monotonic()))
        for g in self.groups:
            if g.thread is not None and g.thread.is_alive() and g.call != "read":
                g.thread.join(timeout=max(0.0, deadline_s + close_grace_s - time.monotonic()))
        hung = []
        for g in self.groups:
            with g.lock:
                g.finished = True
            if g.thread is not None and g.thread.is_alive():
                hung.append(g)
        return hung

    def after_fork_in_child(self) -> None:
        """In a ``fork()`` child: no sampler thread exists there; stop sampling without waiting.

        Fresh locks replace any a vanished thread held; later edges and ``stop()`` return at once
        (the child's report holds what was measured up to the fork).
        """
        self._cv = threading.Condition()
        self._waiting = 0
        self._stop.set()
        self._halt = True
        self._stopped = True
        for g in self.groups:
            g.lock = threading.Lock()
            g.wake = _new_wake()
            g.thread = None
            g.at_edges = False
            g.finished = True

    def edge_read(self) -> None:
        """Read every non-blocking group now, for a window edge; returns within the edge timeout.

        Each group's own thread makes the read (so a hang cannot reach the caller); the caller
        waits at most ``edge_timeout_s`` for all of them together. A group that misses it, or
        whose read has already been running for longer, is treated as blocking from then on
        (its edges are resolved from its timeline) until it answers promptly again.
        """
        groups = [g for g in self.groups if g.at_edges]
        if not groups or self._stopped:
            return
        clock = self.clock
        if clock.manual:
            for g in groups:
                g.sample(clock)
            return
        t = clock.monotonic_ns()
        wait_s = self.edge_timeout_s
        if self.edge_deadline_ns is not None:
            left_s = (self.edge_deadline_ns - t) / 1e9
            wait_s = min(wait_s, max(left_s, min(wait_s, EDGE_TIMEOUT_S)))
        limit_ns = self.edge_timeout_s * 1e9
        pending = []
        for g in groups:
            started = g.read_started_ns
            if started and t - started > limit_ns:
                self._demote(g, t, started)
                continue
            g.edge_wanted = True
            g.poke()
            pending.append(g)
        if pending and not self._wait(lambda: all(g.done_ns >= t for g in pending), wait_s):
            for g in pending:
                if g.done_ns < t:
                    self._demote(g, t, 0)

    def _demote(self, g: BackendGroup, t_ns: int, started_ns: int) -> None:
        if not g.at_edges:
            return
        g.at_edges = False
        g.stalls += 1
        g.prompt_reads = 0
        running = f"read() running for {(t_ns - started_ns) / 1e9:.3g} s" if started_ns else ""
        self._note(
            f"backend {g.name!r} did not answer a window edge within {self.edge_timeout_s:g} s "
            f"at {self._at(t_ns)}{f' ({running})' if running else ''}: its edges are resolved "
            "from its timeline until it answers promptly again"
        )

    def wait_for_blocking(self, t_ns: int, deadline_s: float) -> None:
        """Wait until every group not read at edges has answered after ``t_ns``, or the deadline.

        ``deadline_s`` is on ``time.monotonic()``.
        """
        import time

        if self.clock.manual:
            return
        groups = [
            g
            for g in self.groups
            if not g.at_edges and g.thread is not None and g.thread.is_alive()
        ]
        if groups:
            self._wait(
                lambda: all(
                    g.done_ns >= t_ns or g.last_mid_ns >= t_ns or not g.thread.is_alive()  # type: ignore[union-attr]
                    for g in groups
                ),
                deadline_s - time.monotonic(),
            )

    # ------------------------------------------------------------ threads
    def _wait(self, done: Callable[[], bool], timeout_s: float) -> bool:
        with self._cv:
            self._waiting += 1
            try:
                return self._cv.wait_for(done, max(0.0, timeout_s))
            finally:
                self._waiting -= 1

    def _run(self, g: BackendGroup) -> None:
        # The hot loop: names bound once; one timed raw-lock acquire per sleep (see _new_wake).
        clock = self.clock
        now_fn = _now_fn(clock)
        sleep = g.wake.acquire
        prompt_ns = self.edge_timeout_s * 0.25e9
        burst = start_burst(g, clock)  # self-characterisation, right after the first read
        try:
            while not self._halt:
                now = now_fn()
                edge = g.edge_wanted
                due = g.next_due_ns <= now
                if not (edge or due):
                    sleep(True, (g.next_due_ns - now) / 1e9)
                    continue
                g.edge_wanted = False
                try:
                    g.sample(clock)
                except BaseException as err:  # a backend raising SystemExit & co. on our thread
                    with g.lock:
                        g._on_error(now, f"{g.name}.read() {_reason(err)}")
                        g.done_ns = now
                if self._waiting:
                    with self._cv:
                        self._cv.notify_all()
                if not g.at_edges and not g.blocking and g.stalls:
                    self._maybe_restore(g, now_fn() - now <= prompt_ns)
                if due:
                    nxt = g.next_due_ns + g.interval_ns
                    if nxt <= now:
                        if not g.blocking:
                            g.missed_ticks += (now - nxt) // g.interval_ns + 1
                        nxt = now + g.interval_ns
                    g.next_due_ns = nxt
                if burst is not None:
                    burst.run(lambda: self._halt, sleep)
                    burst = None
        finally:
            g.close_if_last()

    def _maybe_restore(self, g: BackendGroup, prompt: bool) -> None:
        g.prompt_reads = g.prompt_reads + 1 if prompt else 0
        if g.prompt_reads >= _PROMPT_READS_TO_RESTORE:
            g.prompt_reads = 0
            g.at_edges = True
            self._note(
                f"backend {g.name!r} answers promptly again at "
                f"{self._at(self.clock.monotonic_ns())}: read at window edges again"
            )


def make_group(
    backend: Backend,
    all_channels: Sequence[Channel],
    kept: Sequence[Channel],
    timelines: Sequence[ChannelTimeline],
    interval_ns: int,
    retry_interval_ns: int | None = None,
) -> BackendGroup:
    """A BackendGroup recording only the channels the meter kept, in their order.

    A channel dropped at start (a name another backend already measures) is still read by its
    backend; the group maps the backend's value positions onto the kept timelines.
    """
    all_list = list(all_channels)
    index = None if list(kept) == all_list else [all_list.index(ch) for ch in kept]
    return BackendGroup(
        backend,
        timelines,
        interval_ns,
        n_channels=len(all_list),
        index=index,
        retry_interval_ns=retry_interval_ns,
    )


def read_timeout_note(g: BackendGroup, timeout_s: float) -> str:
    """The report warning for a group whose thread was still inside a call at stop()."""
    if g.call == "close":
        return (
            f"backend {g.name!r}: close() did not return within {timeout_s:g} s of stop(); "
            "left to finish on a daemon thread"
        )
    return (
        f"backend {g.name!r} did not answer within {timeout_s:g} s of stop(); its last interval "
        "is not covered"
    )


def mark_hung(g: BackendGroup, t_ns: int, timeout_s: float) -> None:
    """Record, in each channel of a hung group, the read that never returned (call under lock)."""
    started = g.read_started_ns
    if g.call != "read" or not started:
        return
    for tl in g.timelines:
        tl.fail(
            t_ns,
            f"{g.name}.read() had not returned {max(0.0, (t_ns - started) / 1e9):.3g} s after it "
            f"began, {timeout_s:g} s into stop()",
        )
