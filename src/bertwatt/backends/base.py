"""The small interface every energy backend implements, and the value types it returns.

A backend turns one family of sensors (NVML, powercap, a wall plug, a model) into *channels*.
Each channel is either an energy **counter** (cumulative joules, possibly wrapping) or a **power**
reading (instantaneous watts). The meter knows nothing else about a backend: vendor handles, file
paths, HTTP clients and unit conversions stay inside it.

Life cycle, driven by the meter::

    availability = backend.probe()   # never raises for "not here"; lists channels, gaps
    values, errors = backend.read()  # hot path: one float per channel of availability.channels
    backend.close()

``read()`` returns joules for counter channels (raw counter value converted to J, *not* unwrapped:
the meter unwraps with ``Channel.wrap_j``) and watts for power channels. A channel that could not be
read this time is ``nan`` with a message in ``errors[index]``; an exception from ``read()`` marks
every channel of the backend as failed for that sample. Neither stops the measurement.

The meter checks every answer at the boundary: a value that is not a real number fails its channel
for that read; an answer that is not a ``(values, errors)`` pair with one value per channel and
``errors`` a mapping of channel index to text fails every channel for that read, with the reason.
Each backend is read on a thread of its own, and every call is bounded in time (``probe()`` and the
first ``read()`` by ``probe_timeout_s``, edge reads by ``edge_timeout_s``, the end of the window by
``slow_read_timeout_s``), so a backend never needs to protect the meter from its own hangs. A
backend object may be used by several running meters at once: it is probed by the first and closed
by the last.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

__all__ = [
    "Availability",
    "Backend",
    "Channel",
    "ChannelKind",
    "Provenance",
    "ReadResult",
    "Scope",
    "Unavailable",
]

ChannelKind = Literal["counter", "power"]

#: What physical part a channel covers. Used to avoid double counting and to attach uncertainty.
#: ``gpu-board``: a whole GPU board; ``cpu-package``: one CPU socket; ``cpu-core``/``cpu-uncore``:
#: parts of a package (never counted on top of it); ``dram``: memory; ``platform``: RAPL psys, the
#: SoC/platform as a whole (reported apart); ``system``: the whole machine at the wall.
Scope = Literal[
    "gpu-board", "cpu-package", "cpu-core", "cpu-uncore", "dram", "platform", "system", "other"
]

#: A read result: one value per channel, and messages for channels that could not be read.
ReadResult = tuple[list[float], "dict[int, str] | None"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Provenance:
    """Where a channel's numbers come from; copied verbatim into every report.

    Attributes:
        kind: ``"measured"`` by a sensor or ``"estimated"`` by a model.
        source: the sensor or model, e.g. ``"NVML nvmlDeviceGetTotalEnergyConsumption"`` or
            ``"TDP x CPU utilisation"``.
        scope: what the channel covers (see :data:`Scope`).
        method: how values are obtained, e.g. ``"energy counter read at window edges and every
            0.1 s"``.
        update_period_s: how often the sensor itself refreshes, when known.
        averaging_window_s: the window a power reading is averaged over, when known.
        resolution_j: the counter's energy unit in joules, when known.
        assumptions: for estimates, every input the model used (name -> value as text).
        notes: anything else a reader of the figure should know.
    """

    kind: Literal["measured", "estimated"]
    source: str
    scope: Scope
    method: str = ""
    update_period_s: float | None = None
    averaging_window_s: float | None = None
    resolution_j: float | None = None
    assumptions: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Channel:
    """One stream of numbers from one backend.

    Attributes:
        name: unique within a machine, e.g. ``"gpu:0"``, ``"cpu:package-0"``, ``"dram:0"``.
        domain: coarse family for grouping: ``"gpu"``, ``"cpu"``, ``"dram"``, ``"platform"``,
            ``"system"``.
        kind: ``"counter"`` (cumulative joules) or ``"power"`` (watts).
        provenance: where the numbers come from.
        counted: whether the channel is added into the run total. ``False`` for parts of another
            channel (RAPL core inside package) and for overlapping wholes (RAPL psys).
        parent: name of the channel that contains this one, if any.
        wrap_j: for counters that wrap, the counter range in joules (RAPL
            ``max_energy_range_uj``); ``None`` for counters that do not wrap.
        max_power_w: the highest power this channel can plausibly draw. Readings implying more
            are rejected as glitches; wrap-prone counters are re-read often enough that they
            cannot wrap twice between reads at this power.
        info: device facts for the report (GPU name, UUID, power limit, sysfs path, ...).
        mean_since_last_read: a power channel whose every reading is the mean power since the
            previous read (an estimate from CPU-time deltas): integrated as that mean over the
            interval, not as a trapezoid between two instants.

    Channels compare and hash by identity: two channel objects are two streams.
    """

    name: str
    domain: str
    kind: ChannelKind
    provenance: Provenance
    counted: bool = True
    parent: str | None = None
    wrap_j: float | None = None
    max_power_w: float | None = None
    info: Mapping[str, str] = field(default_factory=dict)
    mean_since_last_read: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Unavailable:
    """Something that could not be measured, why, and how to make it measurable.

    Attributes:
        what: the backend or channel, e.g. ``"rapl"``, ``"rapl:dram-0"``, ``"nvml:gpu:1"``.
        reason: what failed, naming the file or call.
        fix: the command or setting that makes it work, when there is one.
    """

    what: str
    reason: str
    fix: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Availability:
    """The result of :meth:`Backend.probe`: the channels a backend can read, and what it cannot."""

    channels: tuple[Channel, ...] = ()
    unavailable: tuple[Unavailable, ...] = ()

    @property
    def ok(self) -> bool:
        """True when at least one channel can be read."""
        return bool(self.channels)


@runtime_checkable
class Backend(Protocol):
    """What the meter needs from a backend.

    Attributes:
        name: short identifier, e.g. ``"nvml"``, ``"rapl"``, ``"estimate"``.
        blocking: True when a read may take long or hang (network meters). The meter then never
            reads it at window edges (its edges are resolved from its timeline), only on its
            schedule. Every backend, blocking or not, is read on a thread of its own, so none
            can delay another's samples or the user's code.

    Optional attribute ``may_hang`` (default True when absent): False declares that
    :meth:`probe` and :meth:`close` only read local files and cannot hang, so the meter calls
    them on its own thread instead of a bounded one (no thread hand-off at a window's start).
    bertwatt's RAPL and estimate backends declare it; any backend that talks to a driver or a
    network must not.
    """

    name: str
    blocking: bool

    def probe(self) -> Availability:
        """Find out what can be measured. Must not raise because a sensor is absent."""
        ...

    def read(self) -> ReadResult:
        """Read every channel listed by the last :meth:`probe`, in that order."""
        ...

    def close(self) -> None:
        """Release handles. The backend may be probed again afterwards."""
        ...
