"""Probe backends at window start and turn what they can measure into sampler groups.

A backend that raises in ``probe()``, a channel name measured twice, and every ``Unavailable``
entry a backend reports all end up in the window's list of what could not be measured, with the
reason: nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Sequence

from bertwatt.backends.base import Backend, Unavailable
from bertwatt.config import MeterConfig
from bertwatt.sampler import BackendGroup, make_group
from bertwatt.timeline import ChannelTimeline

__all__ = ["probe_backends"]


def _probe_one(
    backend: Backend,
    cfg: MeterConfig,
    seen: set[str],
    unavailable: list[Unavailable],
) -> BackendGroup | None:
    try:
        av = backend.probe()
    except Exception as err:
        unavailable.append(
            Unavailable(
                what=getattr(backend, "name", repr(backend)),
                reason=f"probe() raised {type(err).__name__}: {err}",
            )
        )
        return None
    unavailable.extend(av.unavailable)
    kept = []
    for ch in av.channels:
        if ch.name in seen:
            unavailable.append(
                Unavailable(
                    what=f"{backend.name}:{ch.name}",
                    reason=f"channel {ch.name} is already measured by another backend",
                    fix="list each sensor in only one backend",
                )
            )
            continue
        seen.add(ch.name)
        kept.append(ch)
    if not kept:
        return None
    gap_ns = int(max(5 * cfg.interval_s, 1.0) * 1e9)
    timelines = [ChannelTimeline(ch, capacity=cfg.timeline_points, gap_ns=gap_ns) for ch in kept]
    return make_group(backend, av.channels, kept, timelines, int(cfg.interval_s * 1e9))


def probe_backends(
    backends: Sequence[Backend], cfg: MeterConfig, *, estimate_uncovered_cpu: bool
) -> tuple[list[BackendGroup], list[Unavailable]]:
    """Probe ``backends`` in order; returns the sampler groups and what could not be measured.

    With ``estimate_uncovered_cpu`` (auto-detection), the labelled CPU estimate is added when no
    counted channel measures the CPU.
    """
    groups: list[BackendGroup] = []
    unavailable: list[Unavailable] = []
    seen: set[str] = set()
    for backend in backends:
        group = _probe_one(backend, cfg, seen, unavailable)
        if group is not None:
            groups.append(group)
    cpu_measured = any(
        tl.channel.domain == "cpu" and tl.channel.counted for g in groups for tl in g.timelines
    )
    if estimate_uncovered_cpu and not cpu_measured:
        from bertwatt.backends import create

        group = _probe_one(create("estimate"), cfg, seen, unavailable)
        if group is not None:
            groups.append(group)
    return groups, unavailable
