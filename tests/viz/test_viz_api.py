"""The public names of bertwatt.viz and bertwatt.analysis are pinned and documented."""

from __future__ import annotations

import importlib

import pytest

#: bertwatt.viz and bertwatt.analysis themselves are pinned in tests/test_public_api.py.
PUBLIC = {
    "bertwatt.viz.compare": ["QUANTITIES", "Comparison", "ComparisonRow", "compare_reports"],
    "bertwatt.viz.html": ["render_html"],
    "bertwatt.viz.plot": ["plot_compare", "plot_fit", "plot_report"],
    "bertwatt.viz.statement": ["energy_statement"],
    "bertwatt.viz.table": [
        "is_terminal",
        "plain_table",
        "print_report",
        "print_table",
        "report_tables",
    ],
    "bertwatt.cli.study": [
        "add_study_commands",
        "cmd_compare",
        "cmd_fit",
        "cmd_plot",
        "cmd_report",
        "cmd_statement",
    ],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_names_are_pinned_and_documented(module):
    mod = importlib.import_module(module)
    assert mod.__doc__
    assert sorted(mod.__all__) == sorted(PUBLIC[module])
    for name in mod.__all__:
        obj = getattr(mod, name)
        if callable(obj):
            assert obj.__doc__, f"{module}.{name} has no docstring"
