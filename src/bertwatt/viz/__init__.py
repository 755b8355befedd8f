"""Reports people look at: figures (``plot``), one self-contained HTML page (``html``), a paper's
energy statement (``statement``), runs side by side (``compare``) and terminal tables (``table``).

Nothing here is imported by ``import bertwatt``, and names resolve lazily: matplotlib (the
``plot`` extra) is imported only by :mod:`bertwatt.viz.plot`, with the Agg backend, when a figure
is drawn; rich only by :mod:`bertwatt.viz.table` when output goes to a terminal. Every number
shown is read from a report (or computed from its numbers, and then said so); nothing is filled in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bertwatt._lazy import lazy_names

if TYPE_CHECKING:
    from bertwatt.viz.compare import compare_reports
    from bertwatt.viz.html import render_html
    from bertwatt.viz.plot import plot_compare, plot_fit, plot_report
    from bertwatt.viz.statement import energy_statement
    from bertwatt.viz.table import print_report

__all__ = [
    "compare_reports",
    "energy_statement",
    "plot_compare",
    "plot_fit",
    "plot_report",
    "print_report",
    "render_html",
]

_LAZY = {
    "compare_reports": "bertwatt.viz.compare",
    "energy_statement": "bertwatt.viz.statement",
    "plot_compare": "bertwatt.viz.plot",
    "plot_fit": "bertwatt.viz.plot",
    "plot_report": "bertwatt.viz.plot",
    "print_report": "bertwatt.viz.table",
    "render_html": "bertwatt.viz.html",
}

__getattr__, __dir__ = lazy_names(__name__, globals(), _LAZY)
