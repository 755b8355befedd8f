"""A report whose emissions are not computed, and why: no import of the carbon data.

Split from :mod:`bertwatt.carbon.apply` so that a meter with no zone configured (no ``carbon=``,
no ``BERTWATT_ZONE``) says so on its report without loading the intensity tables' code.
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["NO_ZONE_NOTE", "uncomputed"]

#: The note on a report measured with no carbon-intensity zone.
NO_ZONE_NOTE = (
    "emissions not computed: no carbon-intensity zone was given. Set one with "
    "EnergyMeter(carbon=CarbonIntensity.zone('FR')) (or any zone from `bertwatt zones`), "
    "bertwatt.carbon.apply_carbon(report, 'FR'), or the BERTWATT_ZONE environment variable"
)


def update(report: Any, **fields: Any) -> Any:
    """A copy of ``report`` with ``fields`` set.

    The report fills its own carbon model from plain fields (``EnergyReport.with_emissions``),
    so the carbon package never imports the report layer and neither imports the other.
    """
    fill = getattr(report, "with_emissions", None)
    if callable(fill):
        return fill(**fields)
    return dataclasses.replace(report, **fields)


def uncomputed(report: Any, note: str) -> Any:
    """A copy of ``report`` with no emissions and ``note`` saying why."""
    return update(report, emissions_g=None, carbon=None, carbon_note=note)
