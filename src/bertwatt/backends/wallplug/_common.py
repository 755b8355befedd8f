"""What every wall-meter driver returns, and the checks they share.

A driver knows one device family's protocol. :meth:`Driver.open` asks the device what it can
report (power, an energy counter, its resolution and update period) and :meth:`Driver.sample`
reads both values once. Both raise a :class:`~bertwatt.errors.BertwattError` (with ``fix``) on any
failure; :class:`~bertwatt.backends.wallplug.backend.WallPlugBackend` turns them into unavailable
entries or failed reads, never into an exception in user code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bertwatt.errors import BertwattError, SensorReadError

__all__ = [
    "J_PER_KWH",
    "J_PER_WH",
    "Driver",
    "MeterInfo",
    "MeterUnavailable",
    "Sample",
    "lookup",
    "number",
]

J_PER_WH = 3600.0
J_PER_KWH = 3.6e6


class MeterUnavailable(BertwattError):
    """The meter cannot be used at all (wrong device, no meter on it, missing tool).

    Raised by a driver's :meth:`Driver.open`; :class:`WallPlugBackend` turns it into an
    unavailable entry with its ``fix``, never into an exception in user code.
    """


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterInfo:
    """What a meter reports, found by :meth:`Driver.open`.

    Attributes:
        model: the device as it names itself (model, firmware), for the report.
        source: the API the numbers come from, e.g. ``"Shelly Gen2 RPC Switch.GetStatus"``.
        has_power: the device reports instantaneous (or short-average) power in W.
        has_energy: the device reports a cumulative energy counter.
        energy_resolution_j: the counter's step in J (None when the device does not say).
        update_period_s: how often the device refreshes its readings (polling faster is useless).
        notes: accuracy and update-rate facts with their sources.
        info: device facts copied into the channel's ``info``.
    """

    model: str
    source: str
    has_power: bool
    has_energy: bool
    energy_resolution_j: float | None = None
    update_period_s: float = 1.0
    notes: tuple[str, ...] = ()
    info: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading: power in W and the energy counter in J (None when not reported)."""

    power_w: float | None
    energy_j: float | None


class Driver(Protocol):
    """One device family's protocol (see the module docstring)."""

    kind: str
    where: str

    def open(self) -> MeterInfo:
        """Ask the device what it reports; raise with a fix when it cannot be used."""
        ...

    def sample(self) -> Sample:
        """Read power and energy once."""
        ...

    def close(self) -> None:
        """Release sessions or connections."""
        ...


def number(value: object, what: str, *, backend: str, where: str) -> float:
    """A finite, non-negative number from a device payload, or SensorReadError naming it."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise SensorReadError(
            f"malformed payload: {what} is {type(value).__name__} {str(value)[:60]!r}, "
            "expected a number",
            backend=backend,
            where=where,
        )
    try:
        v = float(value)
    except ValueError:
        raise SensorReadError(
            f"malformed payload: {what} is {str(value)[:60]!r}, expected a number",
            backend=backend,
            where=where,
        ) from None
    if not math.isfinite(v) or v < 0:
        raise SensorReadError(
            f"implausible {what}: {v!r} (must be finite and >= 0)", backend=backend, where=where
        )
    return v


def lookup(doc: Any, path: str, *, backend: str, where: str) -> Any:
    """Follow a dotted path (``"a.b.0.c"``: keys, or list indexes) into a JSON document."""
    node = doc
    walked: list[str] = []
    for part in path.split("."):
        walked.append(part)
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif (
            isinstance(node, list)
            and part.lstrip("-").isdigit()
            and -len(node) <= int(part) < len(node)
        ):
            node = node[int(part)]
        else:
            raise SensorReadError(
                f"malformed payload: no {'.'.join(walked)!r} in the answer",
                backend=backend,
                where=where,
                fix="check the field path against the device's JSON",
            )
    return node
