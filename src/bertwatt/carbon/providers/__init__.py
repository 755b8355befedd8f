"""Live carbon-intensity providers, off unless you construct one.

================================ ========== ====================================================
provider                         basis      needs
================================ ========== ====================================================
:class:`ElectricityMaps`         average    an API token
:class:`UKCarbonIntensity`       average    nothing (Great Britain, national or regional)
:class:`WattTime`                marginal   a username and password
================================ ========== ====================================================

Pass one to :meth:`bertwatt.carbon.CarbonIntensity.live` with a static fallback zone. Any object
with ``name``, ``zone`` and a blocking ``fetch() -> LiveReading`` works too (see
:class:`LiveProvider`).
"""

from __future__ import annotations

from bertwatt.carbon.providers._base import HTTPProvider, LiveProvider, LiveReading
from bertwatt.carbon.providers._cache import DiskCache, default_cache_dir
from bertwatt.carbon.providers._http import ProviderHTTPError, Secret
from bertwatt.carbon.providers.electricitymaps import ElectricityMaps
from bertwatt.carbon.providers.ukgrid import UKCarbonIntensity
from bertwatt.carbon.providers.watttime import WattTime

__all__ = [
    "DiskCache",
    "ElectricityMaps",
    "HTTPProvider",
    "LiveProvider",
    "LiveReading",
    "ProviderHTTPError",
    "Secret",
    "UKCarbonIntensity",
    "WattTime",
    "default_cache_dir",
]
