"""The study commands of the ``bertwatt`` CLI: plot, report, compare, statement, fit.

Each is a ``cmd_<name>(args) -> int`` like the rest of :mod:`bertwatt.cli`;
:func:`add_study_commands` adds their subparsers and returns the dispatch entries. Every command
reads reports of any kind (energy, fine-tuning, inference); heavy imports (pydantic, matplotlib,
rich) happen inside the commands.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "add_study_commands",
    "cmd_compare",
    "cmd_fit",
    "cmd_plot",
    "cmd_report",
    "cmd_statement",
]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return value


def _predictors(text: str) -> list[str]:
    from bertwatt.analysis.fit import PREDICTORS

    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in PREDICTORS]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"unknown predictor(s) {', '.join(bad) or '(none)'}; choose from {','.join(PREDICTORS)}"
        )
    return names


def _written(path: Path, what: str) -> None:
    print(f"bertwatt: {what} written to {path}", file=sys.stderr)


def cmd_plot(args: argparse.Namespace) -> int:
    """Draw a report: power per channel with phases shaded, cumulative energy, per-phase bars."""
    from bertwatt.viz._report import load_any
    from bertwatt.viz.plot import plot_report

    report = load_any(args.report)
    plot_report(report, args.output, width_px=args.width, height_px=args.height)
    _written(args.output, "figure")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write a report as one self-contained HTML page (figures embedded)."""
    from bertwatt.viz._report import load_any, write_atomic
    from bertwatt.viz.html import render_html

    report = load_any(args.report)
    write_atomic(args.output, render_html(report, figures=not args.no_figures))
    _written(args.output, "HTML report")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Runs side by side with ratios to the first: a table, and a chart with ``-o``."""
    from bertwatt.viz._report import expand_paths
    from bertwatt.viz.compare import compare_reports
    from bertwatt.viz.table import print_table

    paths = expand_paths(args.reports)
    labels = args.label.split(",") if args.label else None
    comp = compare_reports(paths, labels, phase=args.phase)
    what = f"phase {args.phase!r}" if args.phase else "whole run"
    print_table(
        comp.columns(),
        comp.table_rows(),
        title=f"{len(comp.rows)} runs ({what}); ratios to {comp.rows[0].label}",
    )
    if args.output:
        from bertwatt.viz.plot import plot_compare

        plot_compare(comp, args.output)
        _written(args.output, "chart")
    return 0


def cmd_statement(args: argparse.Namespace) -> int:
    """Print (or write) the energy and carbon statement of a report, in Markdown or LaTeX."""
    from bertwatt.viz._report import load_any, write_atomic
    from bertwatt.viz.statement import energy_statement

    text = energy_statement(load_any(args.report), args.format)
    if args.output:
        write_atomic(args.output, text)
        _written(args.output, "statement")
    else:
        sys.stdout.write(text)
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    """Fit energy against time, tokens, examples and FLOPs across runs; say which predicts best."""
    from bertwatt.analysis.fit import fit_runs, render_fit
    from bertwatt.viz._report import expand_paths

    paths = expand_paths(args.runs)
    analysis = fit_runs(paths, by=args.by, phase=args.phase, group_by=args.group_by)
    if args.json:
        import json

        print(json.dumps(_fit_json(analysis), indent=2))
    else:
        print(render_fit(analysis))
    if args.output:
        from bertwatt.viz.plot import plot_fit

        plot_fit(analysis, args.output)
        _written(args.output, "figure")
    return 0


def _fit_json(analysis: Any) -> dict[str, Any]:
    return {
        "phase": analysis.phase,
        "grouped_by": analysis.grouped_by,
        "groups": {
            name: {
                "runs": [p.label for p in res.runs],
                "best": res.best,
                "fits": {
                    p: {
                        "n": f.n,
                        "slope": f.slope,
                        "unit": f"J/{f.unit}",
                        "intercept_j": f.intercept,
                        "r2": f.r2,
                        "rmse_j": f.rmse_j,
                        "residuals_j": dict(zip(f.labels, f.residuals, strict=True)),
                    }
                    for p, f in res.fits.items()
                },
                "skipped": res.skipped,
            }
            for name, res in analysis.groups.items()
        },
    }


def add_study_commands(sub: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Add the plot, report, compare, statement and fit subparsers to ``sub`` (the result of
    ``add_subparsers``); returns ``{name: cmd_<name>}`` for the dispatch table."""
    p = sub.add_parser("plot", help="draw a report: power, cumulative energy, per-phase bars")
    p.add_argument("report", type=Path)
    p.add_argument(
        "--output", "-o", type=Path, required=True, help="image file (.png, .svg or .pdf)"
    )
    p.add_argument("--width", type=_positive_int, default=1200, help="pixels (default 1200)")
    p.add_argument("--height", type=_positive_int, default=1000, help="pixels (default 1000)")

    r = sub.add_parser("report", help="write a report as one self-contained HTML file")
    r.add_argument("report", type=Path)
    r.add_argument("--output", "-o", type=Path, required=True, help="the .html file to write")
    r.add_argument("--no-figures", action="store_true", help="leave the figure out")

    c = sub.add_parser("compare", help="runs side by side, with ratios to the first")
    c.add_argument("reports", nargs="+", type=Path, help="report files or directories")
    c.add_argument("--phase", help="compare one phase (e.g. train) instead of the whole run")
    c.add_argument("--label", help="comma-separated names for the runs, in order")
    c.add_argument("--output", "-o", type=Path, help="also draw a chart here (.png/.svg/.pdf)")

    s = sub.add_parser("statement", help="energy and carbon statement for a paper's appendix")
    s.add_argument("report", type=Path)
    s.add_argument("--format", choices=("md", "latex"), default="md")
    s.add_argument("--output", "-o", type=Path, help="write here instead of printing")

    f = sub.add_parser("fit", help="fit energy against time, tokens, examples, FLOPs across runs")
    f.add_argument("runs", nargs="+", type=Path, help="report files or directories")
    f.add_argument(
        "--by",
        type=_predictors,
        default=None,
        help="predictors, comma-separated: time,tokens_padded,tokens_nonpadding,examples,flops "
        "(default: all)",
    )
    f.add_argument("--phase", help="fit one phase (e.g. train) instead of the whole run")
    f.add_argument(
        "--group-by",
        choices=("auto", "hardware", "model", "none"),
        default="auto",
        help="fit groups separately (auto: by hardware and/or model when runs differ)",
    )
    f.add_argument("--json", action="store_true", help="machine-readable output")
    f.add_argument("--output", "-o", type=Path, help="also plot the fits here (.png/.svg/.pdf)")
    return {
        "plot": cmd_plot,
        "report": cmd_report,
        "compare": cmd_compare,
        "statement": cmd_statement,
        "fit": cmd_fit,
    }
