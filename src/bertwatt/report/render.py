"""Plain-text rendering of reports for terminals and logs.

Every string that comes from a report (names, sources, reasons, warnings) goes through
:func:`escape_controls` first, so a report cannot send terminal control sequences (``\x1b[2J``
clears the screen), carriage returns or bidirectional overrides to the terminal; an impossible
figure (NaN, infinite, negative energy) is shown as invalid, never as a number.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

from bertwatt.units import fmt_g, fmt_j, fmt_num

if TYPE_CHECKING:
    from bertwatt.report.models import EnergyReport
    from bertwatt.report.wall import WallFigures

__all__ = ["escape_controls", "estimate_line", "format_energy", "render_summary"]

# C0 and C1 controls, DEL, and the Unicode bidirectional/format controls that reorder text.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")
_CONTROLS_KEEP_NL = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]"
)


def _escape_one(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def escape_controls(text: Any, *, keep_newlines: bool = False) -> str:
    """``text`` with control characters shown as ``\\xNN`` / ``\\uNNNN`` escapes."""
    pattern = _CONTROLS_KEEP_NL if keep_newlines else _CONTROLS
    return pattern.sub(_escape_one, str(text))


def format_energy(energy_j: float | None) -> str:
    """Human-readable energy to 4 significant figures: J (with a prefix) below 10 kJ, else kWh
    with the joules beside, always with the unit; an impossible figure is said to be invalid."""
    if energy_j is None:
        return "not measured"
    if not math.isfinite(energy_j) or energy_j < 0:
        return f"invalid ({energy_j!r}, not a measurement)"
    if energy_j < 10_000:  # 4 significant figures: "12.35 J", "0.5 J", "237 uJ", never "-0.00 J"
        return f"{fmt_num(energy_j)} J" if energy_j == 0 or energy_j >= 1e-3 else fmt_j(energy_j)
    return f"{fmt_num(energy_j / 3.6e6)} kWh ({energy_j:,.0f} J)"


def _w(value: float | None) -> str:
    if value is None:
        return "-"
    if not math.isfinite(value) or value < 0:
        return "invalid"
    return f"{value:,.1f} W"


_e = escape_controls


def render_summary(report: EnergyReport) -> str:
    """A multi-line summary: totals, channels with provenance, phases, carbon, problems."""
    lines = []
    status = "" if report.status == "complete" else f" [{report.status}]"
    lines.append(
        f"bertwatt report{status}: {report.duration_s:,.2f} s on {_e(report.host.hostname)}"
        f" ({report.started_at:%Y-%m-%d %H:%M:%S} UTC)"
    )
    total = format_energy(report.energy_j) + _iv(report.energy_j, report.energy_interval_j)
    lines.append(f"  energy: {total}   mean power: {_w(report.mean_power_w)}")
    lines.append(f"  total: {_e(report.total_basis)}")
    if report.interval_basis:
        lines.append(f"  interval: {_e(report.interval_basis)}")
    est = estimate_line(report)
    if est:
        lines.append(f"  {est}")
    if report.resume is not None:
        lines.append(f"  {_resume_line(report)}")
    if report.baseline is not None:
        lines.append(
            f"  idle baseline: {_w(report.baseline.power_w)} over "
            f"{report.baseline.duration_s:.1f} s; energy above idle: "
            f"{format_energy(report.energy_above_idle_j)}"
        )
    multi_node = len({c.node_id for c in report.channels if c.node_id}) > 1
    if report.channels:
        lines.append("  channels:")
        for ch in report.channels:
            tag = "measured" if ch.provenance.kind == "measured" else "ESTIMATED"
            counted = "" if ch.counted else " (not added: inside/overlapping another)"
            energy = format_energy(ch.energy_j) + _iv(ch.energy_j, ch.energy_interval_j)
            node = f" [{_e(ch.node_id)}]" if multi_node and ch.node_id else ""
            lines.append(
                f"    {_e(ch.name):<18} {energy:>22}  mean {_w(ch.mean_power_w):>10}"
                f"  peak {_w(ch.peak_power_w):>10}  coverage {ch.coverage:6.1%}  {tag}: "
                f"{_e(ch.provenance.source)}{counted}{node}"
            )
    if report.phases:
        lines.append("  phases:")
        for ph in report.phases.values():
            times = f" x{ph.count}" if ph.count > 1 else ""
            energy = format_energy(ph.energy_j) + _iv(ph.energy_j, ph.energy_interval_j)
            lines.append(
                f"    {_e(ph.name):<18} {energy:>22}  {ph.duration_s:10.2f} s{times}"
                f"  mean {_w(ph.mean_power_w)}"
            )
    if report.wall is not None:
        lines.append("  software vs wall:")
        rows = [("run", report.wall.run), *report.wall.phases.items()]
        for name, fig in rows:
            lines.append(f"    {_e(name):<18} {_wall_line(fig)}")
    lines += _carbon_lines(report)
    if report.unavailable:
        lines.append("  not measured:")
        for u in report.unavailable:
            fix = f" Fix: {u.fix}" if u.fix else ""
            lines.append(f"    {_e(u.what)}: {_e(u.reason)}.{_e(fix)}")
    if report.warnings:
        lines.append("  warnings:")
        for w in report.warnings:
            lines.append(f"    - {_e(w)}")
    return "\n".join(lines)


def _iv(energy_j: float | None, interval: tuple[float, float] | None) -> str:
    from bertwatt.report.uncertainty import format_interval

    text = format_interval(energy_j, interval)
    return f" [{text}]" if text else ""


def _clip(text: str, at: str = " (", limit: int = 70) -> str:
    head = text.split(at, 1)[0].strip()
    return head if len(head) <= limit else head[: limit - 3] + "..."


def _estimate_facts(a: dict[str, str]) -> list[str]:
    facts = []
    tdp = a.get("tdp_w")
    src = a.get("tdp_source", "")
    if tdp:
        number, _, rest = tdp.partition(" ")
        if src.startswith("fallback"):
            why = _clip(src.removeprefix("fallback:"), " (").replace(";", ",")
            facts.append(f"TDP {number} W {rest} (FALLBACK: {why.strip()})")
        else:
            facts.append(f"TDP {number} W {rest} ({_clip(src)})")
    util = a.get("utilisation", "")
    model = a.get("power_model", "")
    if "this process" in util or "this process" in model:
        tree = "process tree" in util
        facts.append(
            "utilisation of this process tree (it and the processes it started)"
            if tree
            else "utilisation of this process only (child processes not counted)"
        )
    elif util:
        facts.append(f"utilisation of the whole machine ({_clip(util, ' (psutil')})")
    if a.get("w_per_gib"):
        facts.append(f"memory {_clip(a['w_per_gib'])} W/GiB")
    return facts


def estimate_line(report: EnergyReport) -> str:
    """One line with the key assumptions of every estimated channel ("" when none).

    TDP and where it came from (or the fallback), and whose utilisation was used (this process
    or the whole machine), so nobody has to dig them out of the JSON.
    """
    parts = []
    for ch in report.channels:
        if ch.provenance.kind != "estimated":
            continue
        facts = _estimate_facts(ch.provenance.assumptions)
        if facts:
            parts.append(f"{_e(ch.name)}: " + "; ".join(_e(f) for f in facts))
    return ("ESTIMATE assumptions: " + " | ".join(parts)) if parts else ""


def _resume_line(report: EnergyReport) -> str:
    r = report.resume
    assert r is not None
    step = f" at step {r.from_step}" if r.from_step is not None else ""
    lost = (
        f"; up to {format_energy(r.lost_energy_upper_j)} of the interrupted run was spent "
        "after its last checkpoint and is not included"
        if r.lost_energy_upper_j is not None
        else ""
    )
    return (
        f"resumed{step} from an interrupted run: {format_energy(r.previous_energy_j)} of "
        f"earlier sessions included ({len(report.segments)} segment(s)){lost}"
    )


def _carbon_lines(report: EnergyReport) -> list[str]:
    c = report.carbon
    if report.emissions_g is None or c is None:
        return [f"  emissions: {_e(report.carbon_note)}"] if report.carbon_note else []
    if not math.isfinite(report.emissions_g) or report.emissions_g < 0:
        return ["  emissions: invalid (not a figure)"]
    if c.kind != "merged":
        return [
            f"  emissions: {fmt_g(report.emissions_g)}  ({c.intensity_g_per_kwh:.1f} g/kWh, "
            f"zone {_e(c.zone or '-')}, {c.year or 'year n/a'}, {_e(c.source)}; PUE {c.pue:g})"
        ]
    lines = [
        f"  emissions: {fmt_g(report.emissions_g)}, added per part; the parts used "
        f"different intensities, zones or PUEs (mean {c.intensity_g_per_kwh:.1f} g/kWh, "
        f"PUE {c.pue:.3g}):"
    ]
    for p in c.parts[:20]:
        lines.append(
            f"    {_e(p.name)}: {fmt_g(p.emissions_g)} ({p.intensity_g_per_kwh:.1f} g/kWh, "
            f"zone {_e(p.zone or '-')}, {p.year or 'year n/a'}, {_e(p.source)}; PUE {p.pue:g})"
        )
    if len(c.parts) > 20:
        lines.append(f"    ... and {len(c.parts) - 20} more parts (see carbon.parts)")
    return lines


def _wall_line(fig: WallFigures) -> str:
    """One line: component J, wall J, wall / component, and what the sensors did not see."""
    ratio = "-" if fig.ratio is None else f"x{fig.ratio:.2f}"
    unseen = "-" if fig.unseen_j is None else format_energy(fig.unseen_j)
    if fig.wall_basis.startswith("energy counter"):
        basis = "counter"
    elif "integrated power" in fig.wall_basis:
        basis = "power"
    else:
        basis = _e(fig.wall_basis[:40])
    return (
        f"components {format_energy(fig.component_j):>22}  wall {format_energy(fig.wall_j):>22}"
        f"  wall/components {ratio:>6}  unseen {unseen} (wall from {basis})"
    )
