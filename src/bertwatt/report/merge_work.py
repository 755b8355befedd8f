"""The parts of a merge beyond energy: carbon kept per part, and fine-tuning / inference work.

Carbon: each part keeps its own intensity, zone and PUE. A part adds the emissions of the energy
it contributed to the merged total (all of its emissions when nothing of it overlapped another
part). When parts used different intensities, zones or PUEs, the summary's ``kind`` is
``"merged"``, ``parts`` lists each, and a note says so. When some parts have no emissions, the
merged report has none either (``carbon_note`` names the parts), never a partial sum as a total.

Work: fine-tuning reports merge into a fine-tuning report (examples, steps and tokens add; per
example, per step and per token figures are recomputed from the merged energies; phase metrics
merge by name); inference reports into an inference report (queries and tokens add).

Resumed runs: a resumed fine-tuning report's totals and phase metrics include its earlier
segments up to their last checkpoint (``resume.previous_energy_j``), whose channels are not in
the report. Its part adds that energy on top of its channels (said in ``total_basis``), its
carbon is its cumulative ``emissions_g``, and its phase metrics keep the earlier segments' share.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bertwatt.report.merge_parts import Part

__all__ = [
    "add_earlier_segments",
    "merge_carbon",
    "merge_phase_metrics",
    "merge_work",
    "result_class",
]

_J_PER_KWH = 3.6e6


# ---------------------------------------------------------------------------------- carbon
def carbon_part(p: Part, used_j: float) -> dict[str, Any]:
    """One part's carbon figures, scaled to the energy it contributed to the merge."""
    c = p.report.carbon
    assert c is not None
    own = p.report.energy_j or 0.0
    share = used_j / own if own > 0 else 0.0
    # a resumed report's own emissions include its earlier segments; its carbon summary does not
    grams = p.report.emissions_g if _resumed(p) and p.report.emissions_g is not None else None
    it_kwh = used_j / _J_PER_KWH
    return {
        "name": p.name,
        "run_id": p.report.run_id,
        "node_id": p.node,
        "kind": c.kind,
        "zone": c.zone,
        "intensity_g_per_kwh": c.intensity_g_per_kwh,
        "year": c.year,
        "source": c.source,
        "pue": c.pue,
        "it_energy_kwh": it_kwh,
        "emissions_g": (grams if grams is not None else c.emissions_g) * share,
    }


# ---------------------------------------------------------------------------- resumed runs
def _resumed(p: Part) -> bool:
    r = p.report.resume
    return r is not None and r.previous_energy_j is not None


def add_earlier_segments(
    parts: Sequence[Part], fields: dict[str, Any], used: dict[int, float], notes: list[str]
) -> None:
    """Add resumed parts' earlier segments (``resume.previous_energy_j``) to the merged total,
    to the energy each part contributed, and keep ``resume`` when one part carries it."""
    resumed = [p for p in parts if p.report.resume is not None]
    if not resumed:
        return
    for p in resumed:
        r = p.report.resume
        assert r is not None
        if r.previous_energy_j is None:
            fields["energy_j"] = None
            notes.append(f"{p.name}: its earlier segments measured no energy: total unknown")
            continue
        used[p.index] = used.get(p.index, 0.0) + r.previous_energy_j
        if fields["energy_j"] is not None:
            fields["energy_j"] += r.previous_energy_j
        fields["total_basis"] += (
            f"; plus {r.previous_energy_j:,.3f} J of {p.name}'s earlier segments up to its "
            f"checkpoint at step {r.from_step} (resume.previous_energy_j)"
        )
    e = fields["energy_j"]
    fields["energy_kwh"] = None if e is None else e / _J_PER_KWH
    if len(resumed) == 1:
        fields["resume"] = resumed[0].report.resume
    else:
        notes.append(
            f"{len(resumed)} parts were resumed runs: their resume details stay in their files"
        )


def _earlier_share(p: Part, name: str) -> tuple[float | None, float, float | None]:
    """(J, s, gCO2e) of a resumed part's phase metric that its earlier segments contributed."""
    if not _resumed(p):
        return 0.0, 0.0, 0.0
    m = getattr(p.report, "phase_metrics", {}).get(name)
    if m is None:
        return 0.0, 0.0, 0.0
    if name == "run":
        return 0.0, max(0.0, m.duration_s - p.report.duration_s), 0.0
    ph = p.report.phases.get(name)
    window_e = ph.energy_j if ph is not None else 0.0
    window_s = ph.duration_s if ph is not None else 0.0
    c = p.report.carbon
    window_g = c.phases.get(name, 0.0) if c is not None else 0.0
    energy = None if m.energy_j is None or window_e is None else m.energy_j - window_e
    grams = None if m.emissions_g is None else m.emissions_g - window_g
    return energy, max(0.0, m.duration_s - window_s), grams


def _same_basis(parts: Sequence[dict[str, Any]]) -> bool:
    keys = {(q["kind"], q["zone"], q["intensity_g_per_kwh"], q["pue"], q["source"]) for q in parts}
    return len(keys) == 1


def merge_carbon(
    parts: Sequence[Part], used: dict[int, float], energy_j: float | None, phases: dict[str, Any]
) -> dict[str, Any]:
    """``emissions_g``, ``carbon`` and ``carbon_note`` of the merged report."""
    with_c = [p for p in parts if p.report.carbon is not None and p.report.emissions_g is not None]
    if not with_c:
        why = sorted({p.report.carbon_note for p in parts if p.report.carbon_note})
        note = "emissions not computed for any part" + (f" ({why[0]})" if why else "")
        return {"emissions_g": None, "carbon": None, "carbon_note": note}
    rows = [carbon_part(p, used.get(p.index, 0.0)) for p in with_c]
    emissions = sum(r["emissions_g"] for r in rows)
    it_kwh = sum(r["it_energy_kwh"] for r in rows)
    facility = sum(r["it_energy_kwh"] * r["pue"] for r in rows)
    same = _same_basis(rows)
    first = with_c[0].report.carbon
    assert first is not None
    notes = [] if same else [_differ_note(rows)]
    missing = [p.name for p in parts if p not in with_c]
    summary = {
        "kind": first.kind if same else "merged",
        "zone": first.zone if same else None,
        "intensity_g_per_kwh": emissions / facility if facility > 0 else first.intensity_g_per_kwh,
        "year": first.year if same else None,
        "source": first.source if same else "per part (see parts)",
        "pue": facility / it_kwh if it_kwh > 0 else first.pue,
        "pue_source": first.pue_source if same else "per part (see parts)",
        "it_energy_kwh": it_kwh,
        "facility_energy_kwh": facility,
        "emissions_g": emissions,
        "phases": _phase_emissions(with_c, phases) if not missing else {},
        "notes": notes,
        "parts": rows,
    }
    if missing:
        return {
            "emissions_g": None,
            "carbon": summary,
            "carbon_note": "emissions not computed for "
            + ", ".join(missing[:5])
            + ("..." if len(missing) > 5 else "")
            + f"; carbon.parts holds the {len(rows)} part(s) that have them",
        }
    return {"emissions_g": emissions, "carbon": summary, "carbon_note": None}


def _differ_note(rows: Sequence[dict[str, Any]]) -> str:
    descr = sorted(
        {f"{r['zone'] or '-'} {r['intensity_g_per_kwh']:.4g} g/kWh PUE {r['pue']:g}" for r in rows}
    )
    return (
        "parts used different carbon intensities, zones or PUEs ("
        + "; ".join(descr[:6])
        + "): emissions add per part, each with its own; the intensity and PUE shown are "
        "energy-weighted means"
    )


def _phase_emissions(parts: Sequence[Part], phases: dict[str, Any]) -> dict[str, float]:
    """Per-phase emissions: each part's own, scaled to the merged phase energy."""
    out: dict[str, float] = {}
    for name, ph in phases.items():
        own = [
            (p.report.carbon.phases[name], p.report.phases[name].energy_j)
            for p in parts
            if p.report.carbon is not None
            and name in p.report.carbon.phases
            and name in p.report.phases
        ]
        total_j = sum(e or 0.0 for _, e in own)
        if own and ph.energy_j is not None and total_j > 0:
            out[name] = sum(g for g, _ in own) * ph.energy_j / total_j
    return out


# ------------------------------------------------------------------------------------ work
def result_class(parts: Sequence[Part]) -> str:
    """The merged kind: finetune if any part is (and none inference), inference if all are."""
    kinds = {p.report.kind for p in parts}
    if "finetune" in kinds and "inference" not in kinds:
        return "finetune"
    if kinds == {"inference"}:
        return "inference"
    return "energy"


def _ratio(energy: float | None, count: int) -> float | None:
    return energy / count if energy is not None and count > 0 else None


def metric_energy(
    name: str, fields: dict[str, Any], metrics: Sequence[Any]
) -> tuple[float | None, float]:
    """(J, s) of a phase metric in the merged report: merged phase, whole run, or the sum."""
    if name == "run":
        return fields["energy_j"], fields["duration_s"]
    ph = fields["phases"].get(name)
    if ph is not None:
        return ph.energy_j, ph.duration_s
    es = [m.energy_j for m in metrics]
    return (sum(es) if all(e is not None for e in es) else None), sum(m.duration_s for m in metrics)


def merge_phase_metrics(parts: Sequence[Part], fields: dict[str, Any]) -> dict[str, Any]:
    """Phase metrics by name: counts add, energies from the merged phases, ratios recomputed."""
    by_name: dict[str, list[Any]] = {}
    for p in parts:
        for name, m in getattr(p.report, "phase_metrics", {}).items():
            by_name.setdefault(name, []).append(m)
    carbon = fields.get("carbon")
    out = {}
    for name, ms in by_name.items():
        e, dur = metric_energy(name, fields, ms)
        # resumed parts: the earlier segments' share of a phase merged from the windows (a phase
        # only in phase metrics is summed from them above, earlier segments included)
        in_window = name == "run" or name in fields["phases"]
        earlier = [_earlier_share(p, name) for p in parts] if in_window else []
        emissions = fields.get("emissions_g") if name == "run" else None
        if name != "run" and carbon is not None and fields.get("emissions_g") is not None:
            emissions = carbon["phases"].get(name) if isinstance(carbon, dict) else None
        for je, js, jg in earlier:
            dur += js
            if name == "run":  # the total and its emissions include them already
                continue
            e = None if e is None or je is None else e + je
            emissions = None if emissions is None or jg is None else emissions + jg
        counts = {
            k: sum(getattr(m, k) for m in ms)
            for k in ("examples", "steps", "batches", "tokens_padded", "tokens_nonpadding")
        }
        tp, tn = counts["tokens_padded"], counts["tokens_nonpadding"]
        per_token = _ratio(e, tp)
        out[name] = {
            "name": name,
            "energy_j": e,
            "duration_s": dur,
            "mean_power_w": e / dur if e is not None and dur > 0 else None,
            **counts,
            "padding_share": (tp - tn) / tp if tp > 0 else None,
            "j_per_example": _ratio(e, counts["examples"]),
            "j_per_step": _ratio(e, counts["steps"]),
            "j_per_token_padded": per_token,
            "j_per_token_nonpadding": _ratio(e, tn),
            "padding_energy_j": (tp - tn) * per_token if per_token is not None else None,
            "emissions_g": emissions,
        }
    return out


def merge_padding(parts: Sequence[Part], fields: dict[str, Any], tp: int, tn: int) -> Any:
    """A padding summary recomputed from the merged tokens and the train phase's J per token."""
    pads = [pad for p in parts if (pad := getattr(p.report, "padding", None)) is not None]
    if not pads or tp <= 0:
        return None
    train = fields["phase_metrics"].get("train")
    per_token = train["j_per_token_padded"] if train else None
    energy = (tp - tn) * per_token if per_token is not None else None
    train_e = train["energy_j"] if train else None
    hist: dict[int, int] = {}
    for pad in pads:
        for k, v in pad.length_histogram.items():
            hist[k] = hist.get(k, 0) + v
    maxima = [pad.length_max for pad in pads if pad.length_max is not None]
    padded = [pad.padded_length_max for pad in pads if pad.padded_length_max is not None]
    return {
        "share": (tp - tn) / tp,
        "tokens_padding": tp - tn,
        "energy_j": energy,
        "energy_share": energy / train_e if energy is not None and train_e else None,
        "basis": "merged: padding tokens of every part x the merged train phase's J per token "
        "processed (linear attribution)",
        "large": any(pad.large for pad in pads),
        "length_max": max(maxima) if maxima else None,
        "padded_length_max": max(padded) if padded else None,
        "length_histogram": hist,
        "remedies": list(dict.fromkeys(r for pad in pads for r in pad.remedies)),
    }


def _finetune(parts: Sequence[Part], fields: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    fts = [p for p in parts if p.report.kind == "finetune"]
    total = {
        k: sum(getattr(p.report, k) for p in fts)
        for k in ("examples", "steps", "tokens_padded", "tokens_nonpadding")
    }
    out: dict[str, Any] = dict(total)
    carbon = fields.get("carbon")
    if carbon is not None and not isinstance(carbon, dict):
        fields = {**fields, "carbon": carbon.model_dump()}
    out["phase_metrics"] = merge_phase_metrics(fts, fields)
    out["padding"] = merge_padding(
        fts, {**fields, **out}, total["tokens_padded"], total["tokens_nonpadding"]
    )
    outside = [p.report.outside_phases_j for p in fts]  # type: ignore[attr-defined]
    out["outside_phases_j"] = sum(outside) if all(x is not None for x in outside) else None
    dropped = [
        what
        for what in ("step_energy", "prediction", "perspective")
        if any(getattr(p.report, what) is not None for p in fts)
    ]
    if dropped:
        notes.append(
            f"merged: {', '.join(dropped)} of the parts are not combined (each part's file "
            "keeps its own)"
        )
    return out


def _inference(parts: Sequence[Part], fields: dict[str, Any]) -> dict[str, Any]:
    reps = [p.report for p in parts]
    counts = {
        k: sum(getattr(r, k) for r in reps)
        for k in ("queries", "batches", "warmup_queries", "tokens_padded", "tokens_nonpadding")
    }
    ph = fields["phases"].get("inference")
    e = ph.energy_j if ph is not None else None
    sizes = {getattr(r, "batch_size", None) for r in reps}
    return {
        **counts,
        "batch_size": sizes.pop() if len(sizes) == 1 else None,
        "j_per_query": _ratio(e, counts["queries"]),
        "j_per_token_padded": _ratio(e, counts["tokens_padded"]),
        "j_per_token_nonpadding": _ratio(e, counts["tokens_nonpadding"]),
    }


def merge_work(
    kind: str, parts: Sequence[Part], fields: dict[str, Any], notes: list[str]
) -> dict[str, Any]:
    """The work fields of a ``kind`` report merged from ``parts`` (nothing for ``energy``)."""
    if kind == "finetune":
        return {"kind": kind, **_finetune(parts, fields, notes)}
    if kind == "inference":
        return {"kind": kind, **_inference(parts, fields)}
    return {"kind": "energy"}
