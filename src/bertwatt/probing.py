"""Probe backends at window start and turn what they can measure into sampler groups.

Every ``probe()`` is bounded: backends are probed in parallel, each on a daemon thread, and
start() waits for them at most ``probe_timeout_s`` together. A probe that raises, returns
something that is not an :class:`~bertwatt.backends.base.Availability`, or does not return in
time; a channel name measured twice; and every ``Unavailable`` entry a backend reports all end up
in the window's list of what could not be measured, with the reason: nothing is dropped silently.

A backend object already used by a running meter (nested meters) is not probed again: the new
meter joins it, and only the last meter using it closes it (see ``backends/_guard.py``).
"""

from __future__ import annotations

import contextlib
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

__all__ = ["backend_name", "probe_backends"]

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


def _close_in_background(backend: object) -> None:
    """Close a backend nobody uses any more, on a daemon thread (a close() may hang)."""
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


def _probe_all(
    backends: Sequence[Backend], timeout_s: float, *, inline: bool, unavailable: list[Unavailable]
) -> list[tuple[Backend, Availability]]:
    """Probe every backend (in parallel unless ``inline``); return those that answered well.

    Each returned backend counts this meter as one of its users (release it when done).
    """
    deadline = time.monotonic() + timeout_s
    calls: list[tuple[Backend, object]] = []
    out: list[tuple[Backend, Availability]] = []
    for b in backends:
        shared = acquire(b)
        if shared is not None:
            out.append((b, shared))  # a running meter uses it: join, do not probe it again
        elif inline:
            try:
                calls.append((b, b.probe()))
            except Exception as err:
                calls.append((b, err))
        else:
            calls.append((b, BoundedCall(b.probe, name=f"bertwatt-probe-{backend_name(b)}")))
    for b, call in calls:
        name = backend_name(b)
        result = call
        if isinstance(call, BoundedCall):
            if not call.wait(deadline - time.monotonic()) and call.abandon(_late_probe(b)):
                unavailable.append(
                    Unavailable(
                        what=name,
                        reason=f"probe() did not return within {timeout_s:g} s "
                        "(probe_timeout_s); left running on a daemon thread",
                        fix=_FIX_HUNG,
                    )
                )
                continue
            result = call.error if call.error is not None else call.result
        if isinstance(result, BaseException):
            unavailable.append(
                Unavailable(
                    what=name,
                    reason=f"probe() raised {type(result).__name__}: {str(result)[:200]}",
                )
            )
            continue
        checked = _check_availability(name, result)
        if isinstance(checked, str):
            unavailable.append(Unavailable(what=name, reason=checked))
            continue
        out.append((b, register(b, checked)))
    order = {id(b): i for i, b in enumerate(backends)}
    out.sort(key=lambda pair: order[id(pair[0])])
    return out


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
    timelines = [timeline_for(ch, cfg) for ch in kept]
    return make_group(backend, av.channels, kept, timelines, int(cfg.interval_s * 1e9))


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
            channel measures the CPU (probed within the same time limit).
        inline: probe in the caller's thread, unbounded (manual clocks: deterministic tests).
        timeout_s: the time limit (default ``cfg.probe_timeout_s``).
    """
    limit = cfg.probe_timeout_s if timeout_s is None else timeout_s
    started = time.monotonic()
    groups: list[BackendGroup] = []
    unavailable: list[Unavailable] = []
    seen: set[str] = set()
    for backend, av in _probe_all(backends, limit, inline=inline, unavailable=unavailable):
        group = _group_for(backend, av, cfg, seen, unavailable)
        if group is not None:
            groups.append(group)
    cpu_measured = any(
        tl.channel.domain == "cpu" and tl.channel.counted for g in groups for tl in g.timelines
    )
    if estimate_uncovered_cpu and not cpu_measured:
        from bertwatt.backends import create

        left = max(0.0, limit - (time.monotonic() - started))
        try:
            estimate = [create("estimate")]
        except Exception as err:
            unavailable.append(
                Unavailable(what="estimate", reason=f"{type(err).__name__}: {str(err)[:200]}")
            )
            estimate = []
        for backend, av in _probe_all(estimate, left, inline=inline, unavailable=unavailable):
            group = _group_for(backend, av, cfg, seen, unavailable)
            if group is not None:
                groups.append(group)
    return groups, unavailable
