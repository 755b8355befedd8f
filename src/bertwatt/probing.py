"""Probe backends at window start and turn what they can measure into sampler groups.

Every ``probe()`` is bounded: backends are probed in parallel, each on a daemon thread, and
start() waits for them at most ``probe_timeout_s`` together. A backend that declares
``may_hang = False`` (bertwatt's RAPL and estimate: local files only) is probed, and closed, on
the caller's thread meanwhile, sparing a thread hand-off at every window's start. A probe that
raises, returns something that is not an :class:`~bertwatt.backends.base.Availability`, or does
not return in time; a channel name measured twice; and every ``Unavailable`` entry a backend
reports all end up in the window's list of what could not be measured, with the reason: nothing
is dropped silently.

A backend object already used by a running meter (nested meters) is not probed again: the new
meter joins it, and only the last meter using it closes it (see ``backends/_guard.py``).
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Sequence

from bertwatt.backends._guard import (
    BoundedCall,
    acquire,
    register,
    release,
    short_repr,
    users,
)
from bertwatt.backends.base import Availability, Backend, Channel, Unavailable
from bertwatt.config import MeterConfig
from bertwatt.sampler import BackendGroup, make_group
from bertwatt.timeline import timeline_for

__all__ = [
    "COUNTER_INTERVAL_S",
    "ESTIMATE_INTERVAL_S",
    "MEAN_INTERVAL_S",
    "SHORT_WRAP_S",
    "backend_name",
    "probe_backends",
    "read_interval_s",
]

#: Counters are read at every window edge; between edges only to catch wraps and to draw the
#: timeline, about once a second (or at ``interval_s`` when that is longer).
COUNTER_INTERVAL_S = 1.0
#: A wrapping counter that can wrap twice within this many seconds at its plausible maximum
#: power (a small range) is read at ``interval_s`` like a power channel.
SHORT_WRAP_S = 60.0
#: An estimate from CPU times (which advance in 10 ms ticks) is no better read faster than this.
ESTIMATE_INTERVAL_S = 1.0
#: A power channel whose every reading is the mean power since the previous read (NVML's buffered
#: power samples) loses nothing when read less often; it is read about once a second.
MEAN_INTERVAL_S = 1.0

_FIX_HUNG = (
    "check the sensor's driver or service; raise probe_timeout_s if it is only slow, or leave "
    "this backend out of backends="
)


def backend_name(backend: object) -> str:
    """The backend's ``name`` when it is a non-empty string, else its type's name."""
    name = getattr(backend, "name", None)
    return name if isinstance(name, str) and name else type(backend).__name__


def _close_quietly(backend: object) -> None:
    with contextlib.suppress(Exception):
        backend.close()  # type: ignore[attr-defined]


def _quick(backend: object) -> bool:
    """Whether ``backend`` declares that its probe() and close() cannot hang (``may_hang`` is
    False: local files only); those run on the caller's thread, sparing a thread hand-off."""
    try:
        return getattr(backend, "may_hang", True) is False
    except Exception:  # a property that raises: treated as may hang
        return False


def _close_in_background(backend: object) -> None:
    """Close a backend nobody uses any more, on a daemon thread (a close() may hang)."""
    if _quick(backend):
        _close_quietly(backend)
        return
    threading.Thread(
        target=_close_quietly, args=(backend,), name="bertwatt-close", daemon=True
    ).start()


def _check_availability(name: str, av: object) -> Availability | str:
    """``av`` if it is a well-formed Availability, else why not."""
    if not isinstance(av, Availability):
        return f"probe() returned {short_repr(av)}, not an Availability"
    if not isinstance(av.channels, tuple | list) or not all(
        isinstance(c, Channel) for c in av.channels
    ):
        return f"probe() returned channels {short_repr(av.channels)}, not Channel objects"
    names = [c.name for c in av.channels]
    if not all(isinstance(n, str) and n for n in names):
        return f"probe() returned a channel without a name: {short_repr(names)}"
    if len(set(names)) != len(names):
        return f"probe() returned the same channel name twice: {short_repr(names)}"
    if not isinstance(av.unavailable, tuple | list) or not all(
        isinstance(u, Unavailable) for u in av.unavailable
    ):
        return f"probe() returned unavailable entries {short_repr(av.unavailable)}"
    return av


class _Probe:
    """One backend's probe in flight: joined (shared), answered inline, or on a daemon thread."""

    def __init__(self, backend: Backend, *, inline: bool) -> None:
        self.backend = backend
        self.name = backend_name(backend)
        self.shared = acquire(backend)  # a running meter uses it: join, do not probe it again
        self.result: object = None
        self.call: BoundedCall[Availability] | None = None
        if self.shared is not None:
            return
        if inline:
            try:
                self.result = backend.probe()
            except Exception as err:
                self.result = err
        else:
            self.call = BoundedCall(backend.probe, name=f"bertwatt-probe-{self.name}")

    def collect(
        self, deadline: float, timeout_s: float, unavailable: list[Unavailable]
    ) -> Availability | None:
        """The probe's result by ``deadline`` (``time.monotonic()``), counted as one use of the
        backend; or None, with the reason added to ``unavailable``."""
        if self.shared is not None:
            return self.shared
        result = self.result
        call = self.call
        if call is not None:
            if not call.wait(deadline - time.monotonic()) and call.abandon(
                _late_probe(self.backend)
            ):
                unavailable.append(
                    Unavailable(
                        what=self.name,
                        reason=f"probe() did not return within {timeout_s:g} s "
                        "(probe_timeout_s); left running on a daemon thread",
                        fix=_FIX_HUNG,
                    )
                )
                return None
            result = call.error if call.error is not None else call.result
        if isinstance(result, BaseException):
            unavailable.append(
                Unavailable(
                    what=self.name,
                    reason=f"probe() raised {type(result).__name__}: {str(result)[:200]}",
                )
            )
            return None
        checked = _check_availability(self.name, result)
        if isinstance(checked, str):
            unavailable.append(Unavailable(what=self.name, reason=checked))
            return None
        return register(self.backend, checked)

    def drop(self) -> None:
        """Not needed after all: release a joined backend, close a probed one nobody uses."""
        if self.shared is not None:
            if release(self.backend):
                _close_in_background(self.backend)
        elif self.call is not None:
            if self.call.abandon(_late_probe(self.backend)):
                return  # closed when (if) its probe returns
            if isinstance(self.call.result, Availability) and not users(self.backend):
                _close_in_background(self.backend)
        elif isinstance(self.result, Availability) and not users(self.backend):
            _close_in_background(self.backend)


def _late_probe(backend: Backend) -> Callable[[object, BaseException | None], None]:
    """What to do when a probe we gave up on returns after all: close it if nobody uses it."""

    def on_late(result: object, error: BaseException | None) -> None:
        if error is None and isinstance(result, Availability) and not users(backend):
            _close_quietly(backend)

    return on_late


def _group_for(
    backend: Backend,
    av: Availability,
    cfg: MeterConfig,
    seen: set[str],
    unavailable: list[Unavailable],
) -> BackendGroup | None:
    unavailable.extend(av.unavailable)
    name = backend_name(backend)
    kept = []
    for ch in av.channels:
        if ch.name in seen:
            unavailable.append(
                Unavailable(
                    what=f"{name}:{ch.name}",
                    reason=f"channel {ch.name} is already measured by another backend",
                    fix="list each sensor in only one backend",
                )
            )
            continue
        seen.add(ch.name)
        kept.append(ch)
    if not kept:
        if release(backend):
            _close_in_background(backend)
        return None
    every_s = max(read_interval_s(kept, cfg.interval_s), _poll_interval_s(backend))
    timelines = [timeline_for(ch, cfg, read_interval_s=every_s) for ch in kept]
    if any(tl.wrap_safe_s and tl.wrap_safe_s < SHORT_WRAP_S for tl in timelines):
        # a counter that can wrap within seconds: only short intervals tell a wrap from a
        # reset to 0 or a glitch, so it is read at interval_s (or faster: see BackendGroup)
        every_s = min(every_s, cfg.interval_s)
    return make_group(
        backend,
        av.channels,
        kept,
        timelines,
        int(every_s * 1e9),
        retry_interval_ns=int(cfg.interval_s * 1e9),
    )


def read_interval_s(channels: Sequence[Channel], interval_s: float) -> float:
    """How often a backend with ``channels`` is read between window edges.

    A measured power channel is sampled at ``interval_s`` (its energy is the integral of those
    samples). A counter needs reads only at edges, plus about one a second for wraps (a
    wrap-prone counter is read faster when its range demands: see ``BackendGroup``) and the
    timeline. An estimated power channel (CPU times) is read at most once a second, and so is a
    power channel whose readings are means since the previous read. A backend with several kinds
    of channel is read at the fastest cadence any of them needs.
    """
    every = []
    for ch in channels:
        if ch.kind == "counter":
            every.append(max(interval_s, COUNTER_INTERVAL_S))
        elif ch.provenance.kind == "estimated":
            every.append(max(interval_s, ESTIMATE_INTERVAL_S))
        elif ch.mean_since_last_read:
            every.append(max(interval_s, MEAN_INTERVAL_S))
        else:
            every.append(interval_s)
    return min(every) if every else interval_s


def _poll_interval_s(backend: Backend) -> float:
    """The backend's own shortest useful interval between reads, when it declares one (a wall
    meter refreshing every second is not read more often: ``poll_interval_s``), else 0."""
    poll = getattr(backend, "poll_interval_s", None)
    if isinstance(poll, int | float) and not isinstance(poll, bool) and math.isfinite(poll):
        return max(0.0, float(poll))
    return 0.0


def probe_backends(
    backends: Sequence[Backend],
    cfg: MeterConfig,
    *,
    estimate_uncovered_cpu: bool,
    inline: bool = False,
    timeout_s: float | None = None,
) -> tuple[list[BackendGroup], list[Unavailable]]:
    """Probe ``backends``; returns the sampler groups (in ``backends`` order) and what could not
    be measured.

    Args:
        backends: the backends to probe.
        cfg: the meter's configuration (``probe_timeout_s``, interval, timeline size).
        estimate_uncovered_cpu: with auto-detection, add the labelled CPU estimate when no counted
            channel measures the CPU. It is probed alongside the others (a hung sensor cannot use
            up its time) and dropped, unwaited for, when a sensor measures the CPU.
        inline: probe in the caller's thread, unbounded (manual clocks: deterministic tests).
        timeout_s: the time limit (default ``cfg.probe_timeout_s``).
    """
    limit = cfg.probe_timeout_s if timeout_s is None else timeout_s
    deadline = time.monotonic() + limit
    # backends that may hang start on their threads first; quick ones then run here meanwhile
    order = sorted(range(len(backends)), key=lambda i: _quick(backends[i]))
    started = {i: _Probe(backends[i], inline=inline or _quick(backends[i])) for i in order}
    probes = [started[i] for i in range(len(backends))]
    estimate: _Probe | None = None
    estimate_error = ""
    if estimate_uncovered_cpu:
        from bertwatt.backends import create

        try:
            backend = create("estimate")
            estimate = _Probe(backend, inline=inline or _quick(backend))
        except Exception as err:
            estimate_error = f"{type(err).__name__}: {str(err)[:200]}"
    groups: list[BackendGroup] = []
    unavailable: list[Unavailable] = []
    seen: set[str] = set()
    for probe in probes:
        av = probe.collect(deadline, limit, unavailable)
        group = _group_for(probe.backend, av, cfg, seen, unavailable) if av is not None else None
        if group is not None:
            groups.append(group)
    if not estimate_uncovered_cpu:
        return groups, unavailable
    cpu_measured = any(
        tl.channel.domain == "cpu" and tl.channel.counted for g in groups for tl in g.timelines
    )
    if estimate is None:
        if not cpu_measured:
            unavailable.append(Unavailable(what="estimate", reason=estimate_error))
    elif cpu_measured:
        estimate.drop()
    else:
        av = estimate.collect(deadline, limit, unavailable)
        group = _group_for(estimate.backend, av, cfg, seen, unavailable) if av is not None else None
        if group is not None:
            groups.append(group)
    return groups, unavailable
