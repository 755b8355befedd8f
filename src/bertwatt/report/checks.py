"""Python warnings for the doubts a report carries (estimates, low coverage, nothing measured)."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from bertwatt.errors import EstimateWarning, MeasurementWarning

if TYPE_CHECKING:
    from bertwatt.report.models import EnergyReport

__all__ = ["emit_warnings"]


def emit_warnings(report: EnergyReport, stacklevel: int = 2) -> None:
    """Warn (EstimateWarning / MeasurementWarning) about the doubts a report carries.

    ``stacklevel`` counts from the caller of this function, as in :func:`warnings.warn`.
    """
    stacklevel += 1
    counted = [c for c in report.channels if c.counted]
    estimated = [c.name for c in counted if c.provenance.kind == "estimated"]
    if estimated:
        warnings.warn(
            f"bertwatt: {', '.join(estimated)} estimated, not measured (see the report's "
            "provenance for the model and its assumptions)",
            EstimateWarning,
            stacklevel=stacklevel,
        )
    low = [c.name for c in counted if c.energy_j is not None and c.coverage < 0.95]
    if report.energy_j is None:
        warnings.warn(
            "bertwatt: no energy was measured; report.unavailable says why and how to fix it",
            MeasurementWarning,
            stacklevel=stacklevel,
        )
    elif low:
        warnings.warn(
            f"bertwatt: {', '.join(low)} covered less than 95% of the window; the energy is a "
            "lower bound (see report.warnings)",
            MeasurementWarning,
            stacklevel=stacklevel,
        )
