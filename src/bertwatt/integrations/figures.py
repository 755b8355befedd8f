"""The ``energy/...`` figures of a running fine-tuning session (for the Trainer's log lines).

Cheap: no report is built; the meter's snapshot, the step records and the counts so far. For a
resumed run the earlier sessions' checkpointed figures are added, so the figures are cumulative.
Which of them reach a log line is chosen by :mod:`~bertwatt.integrations.logkeys`.
"""

from __future__ import annotations

from bertwatt.distributed.share import rank_share_figures
from bertwatt.integrations.predict import predict_run
from bertwatt.integrations.snapshot import SessionSnapshot
from bertwatt.integrations.tokens import WorkCounts

__all__ = ["live_metrics", "step_record_totals"]

_J_PER_KWH = 3.6e6


def live_metrics(s: SessionSnapshot) -> dict[str, float]:
    """``energy/...`` figures for the Trainer's log (cheap: no report is built).

    Cumulative over the segments of a resumed run: the earlier sessions' checkpointed
    figures are added to this session's. On a rank of a distributed job the energy figures are
    the rank's own share (:func:`bertwatt.distributed.share.rank_share_figures`).
    """
    out: dict[str, float] = {}
    prev = s.previous
    snap = s.meter.snapshot()
    energy_now = snap.energy_j
    if prev is not None and energy_now is not None:
        energy_now = None if prev.energy_j is None else prev.energy_j + energy_now
    if energy_now is not None:
        out["energy/kwh"] = energy_now / _J_PER_KWH
    if snap.energy_j is not None and snap.duration_s > 0:
        out["energy/mean_power_w"] = snap.energy_j / snap.duration_s
    s.step_log.resolve(s.meter)
    steps, energy, counts, _ = s.step_log.totals()
    if prev is not None:
        r = prev.step_records
        steps += int(r.get("steps", 0))
        energy += r.get("energy_j", 0.0)
        counts = WorkCounts(
            examples=counts.examples + int(r.get("examples", 0)),
            tokens_padded=counts.tokens_padded + int(r.get("tokens_padded", 0)),
            tokens_nonpadding=counts.tokens_nonpadding + int(r.get("tokens_nonpadding", 0)),
        )
    if steps:
        out["energy/j_per_step"] = energy / steps
    if counts.examples:
        out["energy/j_per_example"] = energy / counts.examples
    if counts.tokens_padded:
        out["energy/j_per_token_padded"] = energy / counts.tokens_padded
    if counts.tokens_nonpadding:
        out["energy/j_per_token_nonpadding"] = energy / counts.tokens_nonpadding
    train = s.phase_counts("train")
    if prev is not None:
        train = WorkCounts(
            tokens_padded=train.tokens_padded + prev.tokens_padded,
            tokens_nonpadding=train.tokens_nonpadding + prev.tokens_nonpadding,
            tokens_unknown=train.tokens_unknown,
        )
    if train.padding_share is not None:
        out["energy/padding_share"] = train.padding_share
    factor = s.intensity_g_per_kwh
    if factor is not None and snap.energy_j is not None:
        grams = snap.energy_j / _J_PER_KWH * factor
        if prev is None:
            out["energy/gco2e"] = grams
        elif prev.emissions_g is not None:
            out["energy/gco2e"] = prev.emissions_g + grams
    if s.prediction is not None:
        now = predict_run(s) or s.prediction
        predicted: float | None = now.energy_j
        if prev is not None and predicted is not None:
            predicted = None if prev.energy_j is None else prev.energy_j + predicted
        if predicted is not None:
            out["energy/predicted_kwh"] = predicted / _J_PER_KWH
            if factor is not None:
                out["energy/predicted_gco2e"] = predicted / _J_PER_KWH * factor
    return rank_share_figures(s.meter, out)


def step_record_totals(s: SessionSnapshot) -> dict[str, float]:
    """Per-step record totals (steps, energy_j, examples, tokens), earlier segments included."""
    s.step_log.resolve(s.meter)
    steps, energy, counts, _ = s.step_log.totals()
    out = {
        "steps": float(steps),
        "energy_j": energy,
        "examples": float(counts.examples),
        "tokens_padded": float(counts.tokens_padded),
        "tokens_nonpadding": float(counts.tokens_nonpadding),
    }
    if s.previous is not None:
        for k, v in s.previous.step_records.items():
            out[k] = out.get(k, 0.0) + v
    return out
