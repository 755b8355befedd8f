"""``FakeBackend``: a scripted backend implementing the real protocol, for users' tests and ours.

::

    from bertwatt import EnergyMeter
    from bertwatt.testing import FakeBackend, FakeChannel, FakeClock

    clock = FakeClock()
    gpu = FakeChannel("gpu:0", power_w=[(0, 100.0), (5, 300.0)], kind="counter")
    with EnergyMeter(backends=[FakeBackend(channels=[gpu], clock=clock)], clock=clock) as m:
        clock.advance(10)
    assert abs(m.report.energy_j - 2000.0) < 1e-6

Works without pytest. Faults are scheduled in the fake's own time (seconds since it was created):
failed reads, exceptions, hangs, glitches and counter resets.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from bertwatt._checks import check_number
from bertwatt.backends.base import Availability, Channel, Provenance, Scope, Unavailable
from bertwatt.clock import Clock, SystemClock
from bertwatt.errors import ConfigError, SensorReadError
from bertwatt.testing.traces import PowerTrace, TraceLike

__all__ = ["FakeBackend", "FakeChannel"]

FaultKind = Literal["nan", "raise", "hang", "glitch", "reset"]


@dataclass
class _Fault:
    kind: FaultKind
    channel: str | None
    at_s: float
    until_s: float | None
    value: float = math.nan
    hang_s: float = 0.0
    fired: bool = False
    call: str = "read"


class FakeChannel:
    """A scripted channel.

    Args:
        name: channel name, e.g. ``"gpu:0"``.
        power_w: the trace (constant W, ``[(t_s, W), ...]`` steps, or ``f(t_s)``).
        kind: ``"counter"`` reports the exact integral (plus ``start_j``, modulo ``wrap_j``);
            ``"power"`` reports the trace's value at read time.
        domain, scope, counted, parent, max_power_w, info: as on
            :class:`~bertwatt.backends.base.Channel`.
        wrap_j: counter range; the reported counter wraps to 0 past it, as RAPL does.
        start_j: counter value at time 0.
        estimated: label the channel as estimated instead of measured.
    """

    def __init__(
        self,
        name: str,
        power_w: TraceLike = 100.0,
        *,
        kind: Literal["counter", "power"] = "power",
        domain: str | None = None,
        scope: Scope = "other",
        counted: bool = True,
        parent: str | None = None,
        wrap_j: float | None = None,
        max_power_w: float | None = None,
        start_j: float = 0.0,
        estimated: bool = False,
        info: Mapping[str, str] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"FakeChannel name must be a non-empty string, got {name!r}")
        if kind not in ("counter", "power"):
            raise ConfigError(f"FakeChannel kind must be 'counter' or 'power', got {kind!r}")
        if wrap_j is not None:
            wrap_j = check_number("wrap_j", wrap_j, low=0.0, low_inclusive=False, unit="J")
        if max_power_w is not None:
            max_power_w = check_number(
                "max_power_w", max_power_w, low=0.0, low_inclusive=False, unit="W"
            )
        start_j = check_number("start_j", start_j, low=0.0, unit="J")
        self.trace = PowerTrace(power_w)
        self.kind = kind
        self.start_j = float(start_j)
        self.offset_j = 0.0
        self.channel = Channel(
            name=name,
            domain=domain or name.split(":", 1)[0],
            kind=kind,
            counted=counted,
            parent=parent,
            wrap_j=wrap_j,
            max_power_w=max_power_w,
            info=dict(info or {}),
            provenance=Provenance(
                kind="estimated" if estimated else "measured",
                source=f"bertwatt.testing fake {kind}",
                scope=scope,
                method="scripted trace",
            ),
        )

    def value(self, t_s: float) -> float:
        """What a read at ``t_s`` returns (J for counters, W for power)."""
        if self.kind == "power":
            return self.trace.power_w(t_s)
        v = self.start_j + self.trace.energy_j(t_s) - self.offset_j
        wrap = self.channel.wrap_j
        return math.fmod(v, wrap) if wrap else v


@dataclass
class FakeBackend:
    """A backend made of :class:`FakeChannel` objects, driven by a clock.

    Args:
        name: backend name in reports.
        channels: the channels, read in order.
        clock: the clock traces are evaluated on (use the meter's FakeClock in tests).
        blocking: declare the backend blocking (never read at window edges, like a network
            meter).
        read_delay_s: real seconds every read sleeps (only with a real clock).
        unavailable: entries probe() reports as not measurable.
    """

    name: str = "fake"
    channels: Sequence[FakeChannel] = field(default_factory=lambda: [FakeChannel("fake:0")])
    clock: Clock = field(default_factory=SystemClock)
    blocking: bool = False
    read_delay_s: float = 0.0
    unavailable: Sequence[Unavailable] = ()

    def __post_init__(self) -> None:
        if isinstance(self.channels, str | bytes) or not isinstance(self.channels, Sequence):
            raise ConfigError(f"channels must be a list of FakeChannel, got {self.channels!r}")
        if not self.channels:
            raise ConfigError("FakeBackend needs at least one channel")
        for c in self.channels:
            if not isinstance(c, FakeChannel):
                raise ConfigError(f"channels must be FakeChannel objects, got {c!r}")
        if not isinstance(self.clock, Clock):
            raise ConfigError(f"clock must be a Clock (e.g. FakeClock()), got {self.clock!r}")
        names = [c.channel.name for c in self.channels]
        if len(set(names)) != len(names):
            raise ConfigError(f"FakeBackend channel names must be unique, got {names}")
        self.read_delay_s = check_number("read_delay_s", self.read_delay_s, low=0.0, unit="s")
        self._t0 = self.clock.monotonic_ns()
        self._faults: list[_Fault] = []
        self._index = {c.channel.name: i for i, c in enumerate(self.channels)}
        self._hang_release = threading.Event()
        self.reads = 0
        self.probes = 0
        self.closed = 0

    # ------------------------------------------------------------- scripting
    def elapsed_s(self) -> float:
        """Seconds of the fake's clock since the backend was created."""
        return (self.clock.monotonic_ns() - self._t0) / 1e9

    def _check_channel(self, channel: str | None) -> None:
        if channel is not None and channel not in self._index:
            raise ConfigError(f"no channel {channel!r} in this FakeBackend ({list(self._index)})")

    def fail(
        self,
        channel: str | None = None,
        *,
        at_s: float = 0.0,
        until_s: float | None = None,
        kind: Literal["nan", "raise"] = "nan",
    ) -> FakeBackend:
        """Make reads fail from ``at_s`` to ``until_s`` (None: for good).

        ``kind="nan"``: the channel (or every channel) returns nan with an error message;
        ``kind="raise"``: ``read()`` raises :class:`SensorReadError`.
        """
        self._check_channel(channel)
        if kind not in ("nan", "raise"):
            raise ConfigError(f"fail kind must be 'nan' or 'raise', got {kind!r}")
        self._faults.append(_Fault(kind, channel, at_s, until_s))
        return self

    def hang(
        self, *, at_s: float, for_s: float, call: Literal["read", "probe", "close"] = "read"
    ) -> FakeBackend:
        """Make the first ``call`` (``read()`` by default, or ``probe()`` / ``close()``) at or
        after ``at_s`` block for ``for_s`` real seconds, or until :meth:`release`."""
        if call not in ("read", "probe", "close"):
            raise ConfigError(f"hang call must be 'read', 'probe' or 'close', got {call!r}")
        for_s = check_number("for_s", for_s, low=0.0, unit="s")
        self._faults.append(_Fault("hang", None, at_s, None, hang_s=for_s, call=call))
        return self

    def _hang_in(self, call: str) -> None:
        t = self.elapsed_s()
        for f in self._faults:
            if f.kind == "hang" and f.call == call and not f.fired and f.at_s <= t:
                f.fired = True
                self._hang_release.clear()
                self._hang_release.wait(f.hang_s)

    def glitch(self, channel: str, *, at_s: float, value: float) -> FakeBackend:
        """Make the first read of ``channel`` at or after ``at_s`` return ``value`` once."""
        self._check_channel(channel)
        self._faults.append(_Fault("glitch", channel, at_s, None, value=value))
        return self

    def reset(self, channel: str, *, at_s: float) -> FakeBackend:
        """Reset a counter channel to 0 at ``at_s`` (like a driver reload)."""
        self._check_channel(channel)
        self._faults.append(_Fault("reset", channel, at_s, None))
        return self

    def release(self) -> None:
        """End any hang in progress now."""
        self._hang_release.set()

    # ------------------------------------------------------------- protocol
    def probe(self) -> Availability:
        """Report every channel as available (plus the scripted unavailable entries)."""
        self.probes += 1
        self._hang_in("probe")
        return Availability(
            channels=tuple(c.channel for c in self.channels), unavailable=tuple(self.unavailable)
        )

    def read(self) -> tuple[list[float], dict[int, str] | None]:
        """Values at the clock's current time, with the scheduled faults applied."""
        self.reads += 1
        t = self.elapsed_s()
        errors: dict[int, str] = {}
        for f in self._faults:
            active = f.at_s <= t and (f.until_s is None or t < f.until_s)
            if not active:
                continue
            if f.kind == "hang" and f.call == "read" and not f.fired:
                f.fired = True
                self._hang_release.clear()
                self._hang_release.wait(f.hang_s)
            elif f.kind == "raise":
                raise SensorReadError("scripted failure", backend=self.name)
            elif f.kind == "reset" and not f.fired:
                f.fired = True
                ch = self.channels[self._index[f.channel]]  # type: ignore[index]
                ch.offset_j = ch.start_j + ch.trace.energy_j(t)
        if self.read_delay_s and not self.clock.manual:
            time.sleep(self.read_delay_s)
        values = [c.value(t) for c in self.channels]
        for f in self._faults:
            active = f.at_s <= t and (f.until_s is None or t < f.until_s)
            if not active:
                continue
            if f.kind == "nan":
                for i, c in enumerate(self.channels):
                    if f.channel in (None, c.channel.name):
                        values[i] = math.nan
                        errors[i] = f"scripted read failure of {c.channel.name}"
            elif f.kind == "glitch" and not f.fired:
                f.fired = True
                values[self._index[f.channel]] = f.value  # type: ignore[index]
        return values, errors or None

    def close(self) -> None:
        """Count the call (nothing to release; a scheduled ``close`` hang blocks here)."""
        self.closed += 1
        self._hang_in("close")
