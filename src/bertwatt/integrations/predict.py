"""Predicting a run's energy from its first steps, and the carbon factor for live figures.

The prediction is deliberately simple and stated in full: energy measured so far (from train
begin), plus the optimizer steps still to go times the mean energy per step of the latest half of
the steps measured (the first steps of a run are slower: allocation, kernel selection, caches),
plus the evaluations and checkpoints
still to come times their measured mean. Steps carry the data-loading and logging energy between
them, so nothing is double counted. At the end the report compares it with the actual energy.
"""

from __future__ import annotations

import bisect
import logging
import math
import time
from typing import TYPE_CHECKING, Any

from bertwatt.integrations.snapshot import Prediction, SessionSnapshot

if TYPE_CHECKING:
    from bertwatt.meter import EnergyMeter

__all__ = ["IntensityNow", "Prediction", "predict_run"]

logger = logging.getLogger(__name__)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def predict_run(snap: SessionSnapshot) -> Prediction | None:
    """Predict the energy from train begin to train end, or None when too little is known."""
    total = snap.total_steps
    meter = snap.meter
    if not total or snap.train_start_mark is None or snap.chain_mark is None:
        return None
    if not meter.running:
        return None
    log = snap.step_log
    log.resolve(meter)
    records = [
        (log.steps[k], log.energy_j[k])
        for k in range(len(log))
        if log.resolved[k] and math.isfinite(log.energy_j[k])
    ]
    if len(records) >= 2:
        # Leave the warm-up out: use the most recent half of the measured steps.
        records = records[len(records) // 2 :]
    steps_known = sum(s for s, _ in records)
    if not steps_known:
        return None
    j_per_step = sum(e for _, e in records) / steps_known
    steps_at_ref = snap.chain_steps
    so_far = meter.energy_between(snap.train_start_mark, snap.chain_mark)
    if so_far.energy_j is None:
        return None
    remaining = max(0, total - steps_at_ref)
    energy = so_far.energy_j + remaining * j_per_step
    basis = [
        f"{so_far.energy_j:,.1f} J measured over the first {steps_at_ref} of {total} steps",
        f"plus {remaining} steps x {j_per_step:.4g} J per step (mean of the latest "
        f"{steps_known} measured steps, the earlier half left out as warm-up)",
    ]
    train = snap.counts.get("train")
    if train is not None and snap.steps_done:
        basis.append(
            f"at {train.tokens_padded / snap.steps_done:,.0f} tokens processed per step so far"
        )
    notes: list[str] = []
    for mode, expected, what in (
        ("eval", snap.expected_evals, "evaluation"),
        ("checkpoint", snap.expected_saves, "checkpoint"),
    ):
        if not expected:
            continue
        done = list(snap.mode_energies.get(mode, ()))
        left = max(0, expected - len(done))
        if not left:
            continue
        mean = _mean(done)
        if mean is None:
            notes.append(f"{left} {what}(s) still to come are not included: none measured yet")
            continue
        energy += left * mean
        basis.append(f"plus {left} {what}(s) x {mean:.4g} J (mean of {len(done)} measured)")
    return Prediction(
        at_step=snap.steps_done,
        total_steps=total,
        energy_j=energy,
        basis="; ".join(basis),
        notes=tuple(notes),
    )


class IntensityNow:
    """gCO2e per kWh of IT energy (intensity x PUE) right now, for live log figures.

    Static intensities and series are supported; a live provider's latest reading is used when
    one has arrived. None when no carbon intensity is configured or bertwatt.carbon is missing.
    The final report's emissions come from :mod:`bertwatt.carbon` (integrated over the run),
    not from this.
    """

    def __init__(self, meter: EnergyMeter) -> None:
        self._meter = meter
        self._resolved = False
        self._intensity: Any = None
        self._pue = 1.0

    def _resolve(self) -> None:
        self._resolved = True
        try:
            from bertwatt.carbon.intensity import as_intensity
            from bertwatt.config import zone_from_env
        except ImportError:
            return
        carbon = self._meter.carbon
        if carbon is None:
            carbon = zone_from_env()
        if carbon is None:
            return
        try:
            self._intensity = as_intensity(carbon)
        except Exception as err:
            logger.debug("carbon intensity %r unusable for live figures: %s", carbon, err)
            return
        self._pue = float(self._meter.pue or 1.0)

    def __call__(self) -> float | None:
        """The factor in gCO2e/kWh, or None."""
        if not self._resolved:
            self._resolve()
        ci = self._intensity
        if ci is None:
            return None
        g = getattr(ci, "g_per_kwh", None)
        if g is None:
            points = getattr(ci, "points", None)
            if points:
                i = bisect.bisect_right([p[0] for p in points], time.time()) - 1
                g = points[max(0, i)][1]
            else:
                reading_fn = getattr(ci, "reading", None)
                reading = None
                if callable(reading_fn):
                    try:
                        reading = reading_fn(timeout_s=0)
                    except Exception:
                        reading = None
                g = getattr(reading, "g_per_kwh", None)
        if g is None:
            return None
        return float(g) * self._pue
