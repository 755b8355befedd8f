"""Plain-text rendering of reports for terminals and logs."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bertwatt.report.models import EnergyReport
    from bertwatt.report.wall import WallFigures

__all__ = ["format_energy", "render_summary"]


def format_energy(energy_j: float | None) -> str:
    """Human-readable energy: J below 10 kJ, else kWh, always with the unit."""
    if energy_j is None:
        return "not measured"
    if abs(energy_j) < 10_000:
        return f"{energy_j:,.2f} J"
    return f"{energy_j / 3.6e6:,.4f} kWh ({energy_j:,.0f} J)"


def _w(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f} W"


def render_summary(report: EnergyReport) -> str:
    """A multi-line summary: totals, channels with provenance, phases, carbon, problems."""
    lines = []
    status = "" if report.status == "complete" else f" [{report.status}]"
    lines.append(
        f"bertwatt report{status}: {report.duration_s:,.2f} s on {report.host.hostname}"
        f" ({report.started_at:%Y-%m-%d %H:%M:%S} UTC)"
    )
    lines.append(
        f"  energy: {format_energy(report.energy_j)}   mean power: {_w(report.mean_power_w)}"
    )
    lines.append(f"  total: {report.total_basis}")
    if report.baseline is not None:
        lines.append(
            f"  idle baseline: {_w(report.baseline.power_w)} over "
            f"{report.baseline.duration_s:.1f} s; energy above idle: "
            f"{format_energy(report.energy_above_idle_j)}"
        )
    if report.channels:
        lines.append("  channels:")
        for ch in report.channels:
            tag = "measured" if ch.provenance.kind == "measured" else "ESTIMATED"
            counted = "" if ch.counted else " (not added: inside/overlapping another)"
            energy = format_energy(ch.energy_j)
            lines.append(
                f"    {ch.name:<18} {energy:>22}  mean {_w(ch.mean_power_w):>10}"
                f"  peak {_w(ch.peak_power_w):>10}  coverage {ch.coverage:6.1%}  {tag}: "
                f"{ch.provenance.source}{counted}"
            )
    if report.phases:
        lines.append("  phases:")
        for ph in report.phases.values():
            times = f" x{ph.count}" if ph.count > 1 else ""
            energy = format_energy(ph.energy_j)
            lines.append(
                f"    {ph.name:<18} {energy:>22}  {ph.duration_s:10.2f} s{times}"
                f"  mean {_w(ph.mean_power_w)}"
            )
    if report.wall is not None:
        lines.append("  software vs wall:")
        rows = [("run", report.wall.run), *report.wall.phases.items()]
        for name, fig in rows:
            lines.append(f"    {name:<18} {_wall_line(fig)}")
    if report.emissions_g is not None and report.carbon is not None:
        c = report.carbon
        lines.append(
            f"  emissions: {report.emissions_g:,.3f} gCO2e  ({c.intensity_g_per_kwh:.1f} g/kWh, "
            f"zone {c.zone or '-'}, {c.year or 'year n/a'}, {c.source}; PUE {c.pue:g})"
        )
    elif report.carbon_note:
        lines.append(f"  emissions: {report.carbon_note}")
    if report.unavailable:
        lines.append("  not measured:")
        for u in report.unavailable:
            fix = f" Fix: {u.fix}" if u.fix else ""
            lines.append(f"    {u.what}: {u.reason}.{fix}")
    if report.warnings:
        lines.append("  warnings:")
        for w in report.warnings:
            lines.append(f"    - {w}")
    return "\n".join(lines)


def _wall_line(fig: WallFigures) -> str:
    """One line: component J, wall J, wall / component, and what the sensors did not see."""
    ratio = "-" if fig.ratio is None else f"x{fig.ratio:.2f}"
    unseen = "-" if fig.unseen_j is None else format_energy(fig.unseen_j)
    basis = (
        "counter"
        if fig.wall_basis.startswith("energy counter")
        else ("power" if "integrated power" in fig.wall_basis else fig.wall_basis[:40])
    )
    return (
        f"components {format_energy(fig.component_j):>22}  wall {format_energy(fig.wall_j):>22}"
        f"  wall/components {ratio:>6}  unseen {unseen} (wall from {basis})"
    )
