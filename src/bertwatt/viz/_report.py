"""Reading what the viz modules show out of a report, tolerant of its kind and schema version.

Energy, fine-tuning and inference reports (schema 1, and schema 2 with ``kind``, ``run_id``,
``run`` and ``segments``) are read through their public attributes with :func:`field`, so a field
that a report kind lacks is ``None`` here, never a made-up 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bertwatt.errors import ReportError

__all__ = [
    "ChannelSeries",
    "expand_paths",
    "field",
    "fmt_g",
    "fmt_j",
    "fmt_num",
    "kind_of",
    "load_any",
    "phase_emissions",
    "phase_spans",
    "run_label",
    "series",
    "work",
    "write_atomic",
]


def field(obj: Any, *names: str) -> Any:
    """The first of ``names`` that ``obj`` has (attribute or mapping key) and is not None."""
    for name in names:
        if obj is None:
            return None
        value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
        if value is not None:
            return value
    return None


def kind_of(report: Any) -> str:
    """``"energy"``, ``"finetune"`` or ``"inference"`` (schema 2's ``kind``, else by fields)."""
    kind = field(report, "kind")
    if isinstance(kind, str) and kind in ("energy", "finetune", "inference"):
        return kind
    if hasattr(report, "phase_metrics"):
        return "finetune"
    if hasattr(report, "j_per_query"):
        return "inference"
    return "energy"


def load_any(path: str | Path) -> Any:
    """Load a report of any kind and schema version from ``path`` (bounded; ReportError naming
    the file when it cannot)."""
    from bertwatt.report.io import load_report

    return load_report(Path(path))


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; a directory becomes its ``*.json`` files, sorted."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(q for q in p.glob("*.json") if q.is_file())
            if not found:
                raise ReportError("no *.json report in this directory", where=str(p))
            out.extend(found)
        else:
            out.append(p)
    return out


def run_label(report: Any, path: str | Path | None = None) -> str:
    """A short name for a run: the file's stem, else its run id, else its start time."""
    if path is not None:
        return Path(path).stem
    run_id = field(report, "run_id")
    if run_id:
        return str(run_id)[:12]
    started = field(report, "started_at")
    return f"{started:%Y-%m-%d %H:%M:%S}" if started is not None else "run"


@dataclass(frozen=True)
class ChannelSeries:
    """One channel's stored timeline: offsets (s), power (W) and cumulative energy (J)."""

    name: str
    measured: bool
    offsets_s: list[float]
    power_w: list[float | None]
    energy_j: list[float]


def series(report: Any) -> list[ChannelSeries]:
    """Every channel with a stored timeline; power is the stored value, else the slope of the
    cumulative energy between neighbouring points (said in the figure legend)."""
    out = []
    for ch in field(report, "channels") or []:
        points = list(field(ch, "timeline") or [])
        if not points:
            continue
        offs = [float(p[0]) for p in points]
        energy = [float(p[1]) for p in points]
        power: list[float | None] = [None if p[2] is None else float(p[2]) for p in points]
        if all(v is None for v in power):
            power = [None]
            power += [
                (energy[i] - energy[i - 1]) / (offs[i] - offs[i - 1])
                if offs[i] > offs[i - 1]
                else None
                for i in range(1, len(offs))
            ]
        prov = field(ch, "provenance")
        host = field(ch, "host")
        name = str(ch.name) if not host else f"{host}/{ch.name}"
        out.append(ChannelSeries(name, field(prov, "kind") == "measured", offs, power, energy))
    return out


def phase_spans(report: Any) -> Iterator[tuple[str, float, float]]:
    """(phase name, start offset s, end offset s) for every occurrence of every phase."""
    for name, ph in (field(report, "phases") or {}).items():
        for start, end in field(ph, "intervals") or []:
            yield str(name), float(start), float(end)


def phase_emissions(report: Any) -> dict[str, float]:
    """Emissions per phase (g CO2e) as the report's carbon summary states them."""
    carbon = field(report, "carbon")
    return {str(k): float(v) for k, v in (field(carbon, "phases") or {}).items()}


def work(report: Any, phase: str | None = None) -> dict[str, Any]:
    """Energy, time and work of a run (or one of its phases) with where they were read.

    Keys: ``energy_j``, ``duration_s``, ``examples``, ``tokens_padded``, ``tokens_nonpadding``,
    ``j_per_token_padded``, ``j_per_token_nonpadding``, ``emissions_g``, ``flops``, ``basis``;
    a value the report does not carry is None.
    """
    kind = kind_of(report)
    out: dict[str, Any] = dict.fromkeys(
        (
            "energy_j",
            "duration_s",
            "examples",
            "tokens_padded",
            "tokens_nonpadding",
            "j_per_token_padded",
            "j_per_token_nonpadding",
            "emissions_g",
        )
    )
    metrics = field(report, "phase_metrics") or {}
    name = phase if phase is not None else ("run" if "run" in metrics else None)
    if name is not None and name in metrics:
        m = metrics[name]
        for key in out:
            out[key] = field(m, key)
        out["basis"] = f"phase_metrics[{name!r}]"
    elif phase is not None:
        ph = (field(report, "phases") or {}).get(phase)
        if ph is None:
            known = sorted(set(field(report, "phases") or {}) | set(metrics))
            raise ReportError(f"no phase {phase!r} in this report; phases: {known}")
        out["energy_j"] = field(ph, "energy_j")
        out["duration_s"] = field(ph, "duration_s")
        out["emissions_g"] = phase_emissions(report).get(phase)
        out["basis"] = f"phases[{phase!r}]"
    elif kind == "inference":
        ph = (field(report, "phases") or {}).get("inference")
        out["energy_j"] = field(ph, "energy_j") if ph is not None else field(report, "energy_j")
        out["duration_s"] = (
            field(ph, "duration_s") if ph is not None else field(report, "duration_s")
        )
        out["examples"] = field(report, "queries")
        for key in ("tokens_padded", "tokens_nonpadding"):
            out[key] = field(report, key)
        for key in ("j_per_token_padded", "j_per_token_nonpadding"):
            out[key] = field(report, key)
        out["emissions_g"] = phase_emissions(report).get("inference")
        out["basis"] = "inference phase" if ph is not None else "whole report"
    else:
        out["energy_j"] = field(report, "energy_j")
        out["duration_s"] = field(report, "duration_s")
        out["emissions_g"] = field(report, "emissions_g")
        out["basis"] = "whole report"
    # Counts of 0 in a report mean "not counted" for ratios; keep them, but ratios stay None.
    out["flops"] = _flops(report)
    return out


def _flops(report: Any) -> float | None:
    run = field(report, "run")
    for holder in (run, field(run, "flops"), field(report, "extra")):
        value = field(
            holder, "flops", "training_flops", "flops_estimate", "estimated_flops", "value"
        )
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def fmt_num(value: float | None, digits: int = 4) -> str:
    """``value`` rounded to ``digits`` significant figures (trailing zeros dropped), with
    thousands separators; '-' for None."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if value == 0:
        return "0"
    a = abs(value)
    if 1e-3 <= a < 1e6:
        decimals = max(0, digits - 1 - math.floor(math.log10(a)))
        text = f"{value:,.{decimals}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    mantissa, exp = f"{value:.{digits - 1}e}".split("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{exp}"


def fmt_j(value: float | None) -> str:
    """Energy with one unit style: J (mJ/uJ below 1 J, kJ/MJ above 10 kJ), 4 significant figures."""
    if value is None:
        return "-"
    a = abs(value)
    if a == 0:
        return "0 J"
    for scale, unit in ((1e6, "MJ"), (1e3, "kJ")):
        if a >= 10 * scale:
            return f"{fmt_num(value / scale)} {unit}"
    if a >= 1:
        return f"{fmt_num(value)} J"
    if a >= 1e-3:
        return f"{fmt_num(value * 1e3)} mJ"
    return f"{fmt_num(value * 1e6)} uJ"


def fmt_g(value: float | None) -> str:
    """Emissions in g CO2e (kg above 10 kg; mg below 1 g), 4 significant figures."""
    if value is None:
        return "-"
    a = abs(value)
    if a >= 1e4:
        return f"{fmt_num(value / 1e3)} kgCO2e"
    if a >= 1 or a == 0:
        return f"{fmt_num(value)} gCO2e"
    return f"{fmt_num(value * 1e3)} mgCO2e"


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` atomically, only ever replacing a regular file (ReportError
    otherwise); the same writer as reports."""
    from bertwatt.report.io import write_text_atomic

    write_text_atomic(Path(path), data)
