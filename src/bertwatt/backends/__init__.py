"""Energy backends: one module per sensor family behind the small protocol in ``base.py``.

=================== ====================================================== ==================
backend             what it measures                                        module
=================== ====================================================== ==================
``NVMLBackend``     NVIDIA GPU boards (energy counter, or power polling)    ``nvml.py``
``RAPLBackend``     CPU packages, DRAM, psys through Linux powercap sysfs   ``rapl.py``
``EstimateBackend`` CPU (and memory) power from TDP x utilisation: an       ``estimate.py``
                    estimate, always labelled as such (TDP table:           (``tdp.py``)
                    ``tdp.py``)
``WallPlugBackend`` the whole machine at the wall: Shelly, Tasmota, Redfish, ``wallplug/``
                    IPMI, any command or JSON endpoint (compared with the
                    components, never added to them)
=================== ====================================================== ==================

Names resolve lazily: ``import bertwatt.backends`` imports no vendor library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bertwatt._lazy import lazy_names
from bertwatt.backends.base import (
    Availability,
    Backend,
    Channel,
    Provenance,
    ReadResult,
    Unavailable,
)
from bertwatt.errors import ConfigError

if TYPE_CHECKING:
    from bertwatt.backends.estimate import EstimateBackend
    from bertwatt.backends.nvml import NVMLBackend
    from bertwatt.backends.rapl import RAPLBackend
    from bertwatt.backends.wallplug import WallPlugBackend

__all__ = [
    "Availability",
    "Backend",
    "Channel",
    "EstimateBackend",
    "NVMLBackend",
    "Provenance",
    "RAPLBackend",
    "ReadResult",
    "Unavailable",
    "WallPlugBackend",
    "create",
    "default_backends",
]

_LAZY = {
    "NVMLBackend": ("bertwatt.backends.nvml", "NVMLBackend"),
    "RAPLBackend": ("bertwatt.backends.rapl", "RAPLBackend"),
    "EstimateBackend": ("bertwatt.backends.estimate", "EstimateBackend"),
    "WallPlugBackend": ("bertwatt.backends.wallplug", "WallPlugBackend"),
}

#: Backend names accepted by :func:`create` and the CLI's ``--backend``.
REGISTRY = {
    "nvml": "NVMLBackend",
    "rapl": "RAPLBackend",
    "estimate": "EstimateBackend",
    "wallplug": "WallPlugBackend",
}


__getattr__, __dir__ = lazy_names(__name__, globals(), _LAZY)


def create(name: str, **options: Any) -> Backend:
    """Build a backend by its registry name (``"nvml"``, ``"rapl"``, ``"estimate"``,
    ``"wallplug"``; the last takes ``source="shelly+http://..."``)."""
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in REGISTRY:
        raise ConfigError(f"unknown backend {name!r}; known backends: {', '.join(REGISTRY)}")
    cls = __getattr__(REGISTRY[key])
    if key == "wallplug":
        source = options.pop("source", None)
        if source is None:
            raise ConfigError(
                "the wallplug backend needs source=, e.g. create('wallplug', "
                "source='shelly+http://192.168.1.50')"
            )
        return cls.from_source(source, **options)
    return cls(**options)


def default_backends() -> list[Backend]:
    """The sensors auto-detection tries, in order: RAPL (CPU, DRAM), then NVML (GPUs), then the
    wall meter named by ``BERTWATT_WALLPLUG`` when it is set.

    The meter adds :class:`EstimateBackend` afterwards only for the CPU when no sensor covers it.
    """
    from bertwatt.config import wallplug_from_env

    backends = [create("rapl"), create("nvml")]
    source = wallplug_from_env()
    if source is not None:
        backends.append(create("wallplug", source=source))
    return backends
