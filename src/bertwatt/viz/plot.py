"""Figures of reports: power and energy over time, per-phase bars, run comparisons and fits.

The only module that imports matplotlib (the ``plot`` extra: ``pip install 'bertwatt[plot]'``),
always with the non-interactive Agg backend, inside the drawing functions. Each function returns
the image as bytes (PNG by default, or the format named by ``path``'s suffix: png, svg, pdf) and
writes it to ``path`` when given. Figures are ``width_px`` x ``height_px`` pixels for raster
formats.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bertwatt.errors import ConfigError, ReportError
from bertwatt.viz._report import (
    fmt_g,
    fmt_j,
    phase_emissions,
    phase_spans,
    series,
    write_atomic,
)

if TYPE_CHECKING:
    from bertwatt.analysis.fit import FitAnalysis
    from bertwatt.viz.compare import Comparison

__all__ = ["plot_compare", "plot_fit", "plot_report"]

_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
_PHASE_COLOURS = ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#edc948", "#76b7b2", "#ff9da7")


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as err:
        raise ConfigError(
            "drawing figures needs matplotlib, which is not installed",
            fix="pip install 'bertwatt[plot]'",
        ) from err
    matplotlib.use("Agg", force=True)
    from matplotlib import pyplot

    return pyplot


def _format(path: str | Path | None, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in _FORMATS.values():
            raise ConfigError(
                f"image format must be one of {sorted(_FORMATS.values())}, not {fmt!r}"
            )
        return fmt
    if path is None:
        return "png"
    suffix = Path(path).suffix.lower()
    if suffix not in _FORMATS:
        raise ConfigError(
            f"cannot tell the image format from {str(path)!r}",
            fix=f"end the file name with one of {', '.join(sorted(_FORMATS))}",
        )
    return _FORMATS[suffix]


def _save(fig: Any, path: str | Path | None, fmt: str | None, dpi: int) -> bytes:
    plt = _pyplot()
    kind = _format(path, fmt)
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format=kind, dpi=dpi)
    finally:
        plt.close(fig)
    data = buf.getvalue()
    if path is not None:
        write_atomic(Path(path), data)
    return data


def _figure(width_px: int, height_px: int, dpi: int, rows: int) -> tuple[Any, Any]:
    if width_px < 200 or height_px < 150:
        raise ConfigError(f"figure of {width_px}x{height_px} px is too small (at least 200x150)")
    plt = _pyplot()
    fig, axes = plt.subplots(
        rows, 1, figsize=(width_px / dpi, height_px / dpi), dpi=dpi, squeeze=False
    )
    fig.set_layout_engine("constrained")
    return fig, [a[0] for a in axes]


def plot_report(
    report: Any,
    path: str | Path | None = None,
    *,
    width_px: int = 1200,
    height_px: int = 1000,
    dpi: int = 100,
    fmt: str | None = None,
) -> bytes:
    """Power per channel over time with phases shaded, cumulative energy, per-phase bars.

    The bars show each phase's energy, and its emissions when the report has carbon figures.
    Raises ReportError when the report holds no timeline and no phase to draw.
    """
    _format(path, fmt)
    chans = series(report)
    phases = {
        name: ph
        for name, ph in (getattr(report, "phases", None) or {}).items()
        if getattr(ph, "energy_j", None) is not None
    }
    if not chans and not phases:
        raise ReportError(
            "nothing to plot: the report has no channel timeline and no phase with energy",
            fix="measure with an EnergyMeter (timelines are stored by default)",
        )
    fig, (ax_p, ax_e, ax_b) = _figure(width_px, height_px, dpi, 3)
    colours = {n: _PHASE_COLOURS[i % len(_PHASE_COLOURS)] for i, n in enumerate(phases)}
    rows = {n: i for i, n in enumerate(dict.fromkeys(n for n, _, _ in phase_spans(report)))}
    strip = min(0.06, 0.3 / max(1, len(rows)))
    for ax in (ax_p, ax_e):
        labelled: set[str] = set()
        for name, start, end in phase_spans(report):
            colour = colours.get(name, "#bbbbbb")
            ax.axvspan(start, end, color=colour, alpha=0.07, linewidth=0)
            top = 1.0 - rows[name] * strip
            ax.axvspan(
                start,
                end,
                ymin=top - strip,
                ymax=top,
                color=colour,
                alpha=0.7,
                linewidth=0,
                label=None if name in labelled else f"phase {name}",
            )
            labelled.add(name)
    ax_e.sharex(ax_p)
    for ch in chans:
        pts = [(t, p) for t, p in zip(ch.offsets_s, ch.power_w, strict=True) if p is not None]
        tag = "" if ch.measured else " (ESTIMATED)"
        if pts:
            ax_p.step([t for t, _ in pts], [p for _, p in pts], where="pre", label=ch.name + tag)
        ax_e.plot(ch.offsets_s, ch.energy_j, label=ch.name + tag)
    total = list(getattr(report, "timeline", None) or [])
    if total:
        ax_e.plot(
            [t for t, _ in total],
            [e for _, e in total],
            color="black",
            linewidth=2,
            label="total counted",
        )
    # power from 0 (an honest scale), with room above the data for the phase strips
    for ax in (ax_p, ax_e):
        top = ax.get_ylim()[1]
        if top > 0:
            ax.set_ylim(0, top / max(0.5, 1.0 - len(rows) * strip - 0.02))
    ax_p.set_title("Power per channel")
    ax_p.set_ylabel("power (W)")
    ax_p.set_xlabel("time since start (s)")
    ax_e.set_title(f"Cumulative energy (total {fmt_j(getattr(report, 'energy_j', None))})")
    ax_e.set_ylabel("energy (J)")
    ax_e.set_xlabel("time since start (s)")
    for ax in (ax_p, ax_e):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize="small", framealpha=0.8)
    _phase_bars(ax_b, phases, phase_emissions(report), colours)
    return _save(fig, path, fmt, dpi)


def _phase_bars(ax: Any, phases: dict[str, Any], emissions: dict[str, float], colours: Any) -> None:
    names = list(phases)
    if not names:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no phases recorded", ha="center", va="center")
        return
    energy = [float(phases[n].energy_j) for n in names]
    with_em = [n for n in names if n in emissions]
    width = 0.4 if with_em else 0.7
    xs = list(range(len(names)))
    bars = ax.bar(
        [x - (width / 2 if with_em else 0) for x in xs],
        energy,
        width,
        color=[colours[n] for n in names],
        label="energy (J)",
    )
    labels = [
        fmt_j(e) + (f"\n{fmt_g(emissions[n])}" if n in emissions else "")
        for n, e in zip(names, energy, strict=True)
    ]
    ax.bar_label(bars, labels=labels, fontsize="x-small", padding=2)
    ax.margins(y=0.2)
    ax.set_ylabel("energy (J)")
    ax.set_xticks(xs, names)
    ax.set_title("Energy per phase" + (" and emissions" if with_em else ""))
    if with_em:
        ax2 = ax.twinx()
        ems = [emissions.get(n, 0.0) if n in emissions else float("nan") for n in names]
        ax2.bar([x + width / 2 for x in xs], ems, width, color="#888888", label="gCO2e")
        ax2.margins(y=0.2)
        ax2.set_ylabel("emissions (gCO2e)")


def plot_compare(
    comparison: Comparison,
    path: str | Path | None = None,
    *,
    width_px: int = 1200,
    height_px: int = 800,
    dpi: int = 100,
    fmt: str | None = None,
) -> bytes:
    """One bar panel per quantity of a :class:`~bertwatt.viz.compare.Comparison` that any run
    has (energy, time, J/token padded and non-padding, emissions), labelled with the ratio to
    the first run."""
    _format(path, fmt)
    quantities = [q for q in comparison.quantities if comparison.has(q)]
    if not quantities:
        raise ReportError("nothing to compare: no run has energy, time or emissions")
    cols = 2 if len(quantities) > 1 else 1
    rows = (len(quantities) + cols - 1) // cols
    if width_px < 200 or height_px < 150:
        raise ConfigError(f"figure of {width_px}x{height_px} px is too small (at least 200x150)")
    plt = _pyplot()
    fig, axes = plt.subplots(
        rows, cols, figsize=(width_px / dpi, height_px / dpi), dpi=dpi, squeeze=False
    )
    fig.set_layout_engine("constrained")
    flat = [a for row in axes for a in row]
    labels = [r.label for r in comparison.rows]
    for ax, q in zip(flat, quantities, strict=False):
        values = [r.values.get(q) for r in comparison.rows]
        ratios = [r.ratios.get(q) for r in comparison.rows]
        heights = [v if v is not None else 0.0 for v in values]
        bars = ax.bar(range(len(labels)), heights, color=_PHASE_COLOURS[0])
        ax.bar_label(
            bars,
            labels=[
                "not in report" if v is None else (f"x{r:.3g}" if r is not None else "")
                for v, r in zip(values, ratios, strict=True)
            ],
            fontsize="small",
        )
        ax.set_xticks(range(len(labels)), labels, rotation=20 if len(labels) > 3 else 0)
        ax.set_title(comparison.titles[q])
    for ax in flat[len(quantities) :]:
        ax.set_axis_off()
    return _save(fig, path, fmt, dpi)


def plot_fit(
    analysis: FitAnalysis,
    path: str | Path | None = None,
    *,
    width_px: int = 1200,
    height_px: int | None = None,
    dpi: int = 100,
    fmt: str | None = None,
) -> bytes:
    """Energy against each predictor (one panel each, per group), with the fitted line, R² and
    the residuals below."""
    _format(path, fmt)
    panels = [(g, f) for g, res in analysis.groups.items() for f in res.fits.values()]
    if not panels:
        raise ReportError("nothing to plot: no predictor could be fitted (see the reasons)")
    plt = _pyplot()
    cols = min(3, len(panels))
    rows = (len(panels) + cols - 1) // cols
    height = height_px or 380 * rows * 2
    fig, axes = plt.subplots(
        rows * 2,
        cols,
        figsize=(width_px / dpi, height / dpi),
        dpi=dpi,
        squeeze=False,
        height_ratios=[3, 1] * rows,
    )
    fig.set_layout_engine("constrained")
    for i, (group, f) in enumerate(panels):
        ax, axr = axes[(i // cols) * 2][i % cols], axes[(i // cols) * 2 + 1][i % cols]
        ax.scatter(f.x, f.y, color=_PHASE_COLOURS[0], zorder=3)
        for x, y, lab in zip(f.x, f.y, f.labels, strict=True):
            ax.annotate(lab, (x, y), fontsize="x-small", xytext=(3, 3), textcoords="offset points")
        lo, hi = min(f.x), max(f.x)
        ax.plot([lo, hi], [f.intercept + f.slope * lo, f.intercept + f.slope * hi], color="black")
        r2 = "n/a" if f.r2 is None else f"{f.r2:.4f}"
        best = " (best)" if analysis.groups[group].best == f.predictor else ""
        where = f"{group}: " if len(analysis.groups) > 1 else ""
        ax.set_title(f"{where}energy vs {f.predictor}{best}, R² {r2}", fontsize="medium")
        ax.set_xlabel(f"{f.predictor} ({f.unit})")
        ax.set_ylabel("energy (J)")
        axr.axhline(0, color="#888888", linewidth=1)
        axr.scatter(f.x, f.residuals, color=_PHASE_COLOURS[1], s=12)
        axr.set_ylabel("residual (J)")
    for j in range(len(panels), rows * cols):
        axes[(j // cols) * 2][j % cols].set_axis_off()
        axes[(j // cols) * 2 + 1][j % cols].set_axis_off()
    return _save(fig, path, fmt, dpi)
