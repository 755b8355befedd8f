"""Carbon: turn measured energy into emissions a reviewer can trace to a source and a year.

Public names (resolved on first use, so ``import bertwatt.carbon`` reads no file and opens no
connection):

- :class:`CarbonIntensity`: ``zone("FR")``, ``constant(350.0)``, ``from_csv(path)``,
  ``series(points)``, ``live(provider, fallback=...)``.
- :func:`apply_carbon`: an energy report in, the same report with emissions out.
- :class:`ZoneRecord`, :func:`search_zones`, :func:`format_zones`: the shipped zone tables.
- :mod:`bertwatt.carbon.providers`: live providers (Electricity Maps, UK Carbon Intensity API,
  WattTime), off unless you construct one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bertwatt._lazy import lazy_names

if TYPE_CHECKING:
    from bertwatt.carbon.apply import apply_carbon
    from bertwatt.carbon.intensity import (
        CarbonIntensity,
        LiveIntensity,
        SeriesIntensity,
        StaticIntensity,
    )
    from bertwatt.carbon.providers import (
        ElectricityMaps,
        LiveReading,
        UKCarbonIntensity,
        WattTime,
    )
    from bertwatt.carbon.zones import ZoneRecord, format_zones
    from bertwatt.carbon.zones import search as search_zones

__all__ = [
    "CarbonIntensity",
    "ElectricityMaps",
    "LiveIntensity",
    "LiveReading",
    "SeriesIntensity",
    "StaticIntensity",
    "UKCarbonIntensity",
    "WattTime",
    "ZoneRecord",
    "apply_carbon",
    "format_zones",
    "search_zones",
]

_WHERE = {
    "CarbonIntensity": ("bertwatt.carbon.intensity", "CarbonIntensity"),
    "LiveIntensity": ("bertwatt.carbon.intensity", "LiveIntensity"),
    "SeriesIntensity": ("bertwatt.carbon.intensity", "SeriesIntensity"),
    "StaticIntensity": ("bertwatt.carbon.intensity", "StaticIntensity"),
    "apply_carbon": ("bertwatt.carbon.apply", "apply_carbon"),
    "ElectricityMaps": ("bertwatt.carbon.providers", "ElectricityMaps"),
    "LiveReading": ("bertwatt.carbon.providers", "LiveReading"),
    "UKCarbonIntensity": ("bertwatt.carbon.providers", "UKCarbonIntensity"),
    "WattTime": ("bertwatt.carbon.providers", "WattTime"),
    "ZoneRecord": ("bertwatt.carbon.zones", "ZoneRecord"),
    "format_zones": ("bertwatt.carbon.zones", "format_zones"),
    "search_zones": ("bertwatt.carbon.zones", "search"),
}


__getattr__, __dir__ = lazy_names(__name__, globals(), _WHERE)
