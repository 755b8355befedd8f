"""Validated configuration objects, and the only place bertwatt reads environment variables.

Environment variables read (each only when the code that needs it runs, never at import):

=================== =============================================================
``BERTWATT_ZONE``   default carbon-intensity zone (e.g. ``FR``, ``US-CA``), used
                    when no ``carbon=`` is given. Unset: emissions are not computed.
``XDG_CACHE_HOME``  base of the on-disk cache of live carbon providers
                    (default ``~/.cache``; a relative value is ignored, per XDG).
``CUDA_VISIBLE_     which GPUs this process uses (CUDA's variable): the NVML
DEVICES``           backend measures those by default.
``CUDA_DEVICE_      CUDA's GPU numbering (``PCI_BUS_ID`` or fastest first), to
ORDER``             warn when CUDA and NVML indices may differ.
``BERTWATT_         a wall-plug or BMC meter to add to the sensors, as a source
WALLPLUG``          string (``shelly+http://192.168.1.50``; docs/wallplug.md).
``BERTWATT_         the user name for that meter (when the source has none).
WALLPLUG_USER``
``BERTWATT_         a file holding the meter's password (whitespace stripped);
WALLPLUG_PASSWORD_  preferred over ``BERTWATT_WALLPLUG_PASSWORD``.
FILE``
``BERTWATT_         the meter's password itself.
WALLPLUG_PASSWORD``
=================== =============================================================
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from bertwatt._checks import check_number
from bertwatt.errors import ConfigError

if TYPE_CHECKING:
    from bertwatt.backends.base import Channel

__all__ = [
    "DEFAULT_MAX_POWER_W",
    "MeterConfig",
    "cuda_device_order",
    "cuda_visible_devices",
    "user_cache_dir",
    "validate_pue",
    "wallplug_credentials_from_env",
    "wallplug_from_env",
    "zone_from_env",
]


#: The highest power (W) a channel of each scope can plausibly draw, used when neither the backend
#: nor ``MeterConfig.max_power_w`` gives one. Generous on purpose (the largest accelerator boards
#: draw about 1.2 kW, a wall plug on a full 8-GPU server about 10 kW): the bound exists so that one
#: glitch (a 1e12 W reading) cannot dominate a total, not to second-guess real hardware.
DEFAULT_MAX_POWER_W: Mapping[str, float] = MappingProxyType(
    {
        "gpu-board": 2_000.0,
        "cpu-package": 2_000.0,
        "cpu-core": 2_000.0,
        "cpu-uncore": 2_000.0,
        "dram": 1_000.0,
        "platform": 5_000.0,
        "system": 50_000.0,
        "other": 50_000.0,
    }
)


def _max_power_map(value: object) -> Mapping[str, float] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(
            "max_power_w must map a scope (e.g. 'gpu-board') or a channel name to watts, "
            f"got {value!r}"
        )
    out: dict[str, float] = {}
    for key, watts in value.items():
        if not isinstance(key, str) or not key:
            raise ConfigError(f"max_power_w keys must be scope or channel names, got {key!r}")
        out[key] = check_number(f"max_power_w[{key!r}]", watts, low=0.0, low_inclusive=False)
    return MappingProxyType(out)


def _positive(name: str, value: object, *, low: float, high: float) -> float:
    return check_number(name, value, low=low, high=high, unit="s")


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterConfig:
    """How an :class:`~bertwatt.EnergyMeter` samples, checkpoints and reports.

    Attributes:
        interval_s: sampling period of the background sampler (default 0.1 s).
        output: where to write the JSON report; a partial report is checkpointed there while the
            run goes on (temp file + rename), and the final report replaces it at stop.
        checkpoint_interval_s: how often the partial report is written when ``output`` is set.
        baseline_s: seconds of idle measurement before the window starts (0 = none). The report
            then gives idle power and energy above idle.
        sync_cuda: synchronise CUDA at window edges. ``None`` (default): only when torch is
            already imported and CUDA is initialised.
        edge_reads: read non-blocking backends exactly at every window edge (default True).
        slow_read_timeout_s: how long ``stop()`` waits for blocking (network) backends to deliver
            a sample taken after the window closed; ``stop()`` returns within this plus one
            second whatever the backends do (a hung read or close is left on a daemon thread).
        probe_timeout_s: how long ``start()`` waits for the backends' ``probe()`` and first
            ``read()`` together (default 10 s); a backend that has not answered by then is
            reported unavailable (probe) or gapped (first read) with the reason.
        edge_timeout_s: how long a window edge (mark, phase begin/end, stop) waits for a
            non-blocking backend's edge read (default 0.25 s); past it, that backend's edges are
            resolved from its timeline until it answers promptly again, and the report says so.
        timeline_points: stored points per channel before older points are thinned (memory bound
            on long runs; totals are unaffected).
        max_power_w: plausibility bounds in watts, keyed by channel name (``"gpu:0"``) or scope
            (``"gpu-board"``, ``"system"``, ...). A reading implying more is rejected and recorded.
            A channel name wins over a scope, which wins over the backend's own bound; without
            either, :data:`DEFAULT_MAX_POWER_W` of the channel's scope applies.
    """

    interval_s: float = 0.1
    output: Path | None = None
    checkpoint_interval_s: float = 60.0
    baseline_s: float = 0.0
    sync_cuda: bool | None = None
    edge_reads: bool = True
    slow_read_timeout_s: float = 5.0
    probe_timeout_s: float = 10.0
    edge_timeout_s: float = 0.25
    timeline_points: int = 8192
    max_power_w: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_power_w", _max_power_map(self.max_power_w))
        object.__setattr__(
            self, "interval_s", _positive("interval_s", self.interval_s, low=0.001, high=3600.0)
        )
        object.__setattr__(
            self,
            "checkpoint_interval_s",
            _positive("checkpoint_interval_s", self.checkpoint_interval_s, low=0.01, high=86400.0),
        )
        object.__setattr__(
            self, "baseline_s", _positive("baseline_s", self.baseline_s, low=0.0, high=3600.0)
        )
        object.__setattr__(
            self,
            "slow_read_timeout_s",
            _positive("slow_read_timeout_s", self.slow_read_timeout_s, low=0.0, high=600.0),
        )
        object.__setattr__(
            self,
            "probe_timeout_s",
            _positive("probe_timeout_s", self.probe_timeout_s, low=0.0, high=600.0),
        )
        object.__setattr__(
            self,
            "edge_timeout_s",
            _positive("edge_timeout_s", self.edge_timeout_s, low=0.0, high=10.0),
        )
        if self.output is not None:
            if not isinstance(self.output, str | os.PathLike):
                raise ConfigError(f"output must be a path, got {self.output!r}")
            if str(self.output) == "":
                raise ConfigError("output must be a non-empty path")
            raw = os.fspath(self.output)
            if (b"\x00" if isinstance(raw, bytes) else "\x00") in raw:
                raise ConfigError(f"output must not contain a NUL byte: {str(self.output)[:200]!r}")
            object.__setattr__(self, "output", Path(self.output))
        if self.sync_cuda is not None and not isinstance(self.sync_cuda, bool):
            raise ConfigError(f"sync_cuda must be True, False or None, got {self.sync_cuda!r}")
        if not isinstance(self.edge_reads, bool):
            raise ConfigError(f"edge_reads must be True or False, got {self.edge_reads!r}")
        tp = self.timeline_points
        if isinstance(tp, bool) or not isinstance(tp, int) or not 64 <= tp <= 10_000_000:
            raise ConfigError(f"timeline_points must be an int between 64 and 10000000, got {tp!r}")

    def max_power_for(self, channel: Channel) -> float:
        """The plausibility bound (W) that applies to ``channel`` (see ``max_power_w``)."""
        overrides = self.max_power_w or {}
        if channel.name in overrides:
            return overrides[channel.name]
        scope = channel.provenance.scope
        if scope in overrides:
            return overrides[scope]
        if channel.max_power_w:
            return float(channel.max_power_w)
        return DEFAULT_MAX_POWER_W.get(scope, DEFAULT_MAX_POWER_W["other"])


def zone_from_env() -> str | None:
    """Return the ``BERTWATT_ZONE`` environment variable, or None when unset or empty.

    A value that is not a known zone is returned as is (the report's carbon note then says it is
    not usable), after a :class:`~bertwatt.errors.BertwattWarning` naming the fix, once per
    value and process (:func:`bertwatt.carbon.zones.check_env_zone`).
    """
    value = os.environ.get("BERTWATT_ZONE", "").strip()
    if not value:
        return None
    from bertwatt.carbon.zones import check_env_zone

    check_env_zone(value, stacklevel=3)
    return value


def validate_pue(pue: object) -> float:
    """Check a power usage effectiveness value (facility energy / IT energy) and return it.

    PUE is 1.0 for a facility with no overhead; published fleet averages are around 1.1 for
    hyperscale data centres and 1.5-1.6 in industry surveys. Values outside [1.0, 3.0] are
    almost certainly a mistake (a percentage, or overhead given instead of the ratio).
    """
    if isinstance(pue, bool) or not isinstance(pue, int | float) or not math.isfinite(pue):
        raise ConfigError(f"pue must be a number between 1.0 and 3.0, got {pue!r}")
    if not 1.0 <= float(pue) <= 3.0:
        raise ConfigError(
            f"pue must be between 1.0 and 3.0 (facility energy / IT energy), got {pue!r}"
        )
    return float(pue)


def cuda_visible_devices() -> str | None:
    """Return ``CUDA_VISIBLE_DEVICES`` as set (None when unset; an empty string means no GPU)."""
    return os.environ.get("CUDA_VISIBLE_DEVICES")


def cuda_device_order() -> str:
    """Return ``CUDA_DEVICE_ORDER`` (CUDA's default is ``FASTEST_FIRST``)."""
    return os.environ.get("CUDA_DEVICE_ORDER", "FASTEST_FIRST")


def user_cache_dir() -> Path:
    """The XDG cache base: ``$XDG_CACHE_HOME`` when absolute, else ``~/.cache``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    return Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"


# --------------------------------------------------------------------------- wall-plug meters
def wallplug_from_env() -> str | None:
    """The ``BERTWATT_WALLPLUG`` source string (e.g. ``shelly+http://192.168.1.50``), or None."""
    value = os.environ.get("BERTWATT_WALLPLUG", "").strip()
    return value or None


def wallplug_credentials_from_env() -> tuple[str | None, str | None, str | None]:
    """``(user, password, password_file)`` for a wall meter from ``BERTWATT_WALLPLUG_*``.

    The password file wins over the password variable when both are set; empty values are unset.
    """
    user = os.environ.get("BERTWATT_WALLPLUG_USER", "").strip() or None
    password_file = os.environ.get("BERTWATT_WALLPLUG_PASSWORD_FILE", "").strip() or None
    password = None
    if password_file is None:
        password = os.environ.get("BERTWATT_WALLPLUG_PASSWORD", "").strip() or None
    return user, password, password_file
