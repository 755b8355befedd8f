"""Python warnings for the doubts a report carries (estimates, low coverage, nothing measured)."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from bertwatt.errors import EstimateWarning, MeasurementWarning

if TYPE_CHECKING:
    from bertwatt.report.models import EnergyReport
    from bertwatt.report.snapshot import WindowSnapshot

__all__ = ["emit_snapshot_warnings", "emit_warnings"]


def emit_warnings(report: EnergyReport, stacklevel: int = 2) -> None:
    """Warn (EstimateWarning / MeasurementWarning) about the doubts a report carries.

    ``stacklevel`` counts from the caller of this function, as in :func:`warnings.warn`.
    """
    counted = [c for c in report.channels if c.counted]
    _warn(
        estimated=[c.name for c in counted if c.provenance.kind == "estimated"],
        nothing=report.energy_j is None,
        low=[c.name for c in counted if c.energy_j is not None and c.coverage < 0.95],
        stacklevel=stacklevel + 1,
    )


def emit_snapshot_warnings(snap: WindowSnapshot, stacklevel: int = 2) -> None:
    """The warnings :func:`emit_warnings` gives for the report of ``snap``, without building it
    (no pydantic): a meter leaving a ``with`` block warns at once and builds its report later."""
    duration_ns = max(0, snap.t_end_ns - snap.t_start_ns)
    counted = [c for c in snap.channels if c.counted]
    measured = [c for c in counted if c.samples]
    _warn(
        estimated=[c.name for c in counted if c.provenance.kind == "estimated"],
        nothing=not measured,
        low=[
            c.name
            for c in measured
            if (min(1.0, c.covered_ns / duration_ns) if duration_ns else 0.0) < 0.95
        ],
        stacklevel=stacklevel + 1,
    )


def _warn(*, estimated: list[str], nothing: bool, low: list[str], stacklevel: int) -> None:
    stacklevel += 1
    if estimated:
        warnings.warn(
            f"bertwatt: {', '.join(estimated)} estimated, not measured (see the report's "
            "provenance for the model and its assumptions)",
            EstimateWarning,
            stacklevel=stacklevel,
        )
    if nothing:
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
