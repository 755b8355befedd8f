"""Figures: size, non-trivial content, the numbers they print, formats and errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("matplotlib", reason="the plot extra (matplotlib) is not installed")

import matplotlib
from imaging import pixel_stats, png_size

from bertwatt.errors import ConfigError, ReportError
from bertwatt.viz._report import fmt_g, fmt_j
from bertwatt.viz.compare import compare_reports
from bertwatt.viz.plot import plot_compare, plot_report


def svg_text(make: object) -> str:
    """Draw with real text in the SVG (not glyph paths), so the labels can be read back."""
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        return make().decode("utf-8")  # type: ignore[operator]


def test_report_figure_has_the_requested_size_and_content(finetune_report, tmp_path):
    out = tmp_path / "power.png"
    data = plot_report(finetune_report, out, width_px=900, height_px=700)
    assert out.read_bytes() == data
    assert png_size(data) == (900, 700)
    inked, colours = pixel_stats(data)
    assert inked > 0.05, "the figure is almost blank"
    assert colours > 50


def test_default_size(energy_report):
    assert png_size(plot_report(energy_report)) == (1200, 1000)


def test_phase_bars_print_the_report_energies_and_emissions(finetune_report):
    svg = svg_text(lambda: plot_report(finetune_report, fmt="svg"))
    for name, ph in finetune_report.phases.items():
        assert f">{fmt_j(ph.energy_j)}<" in svg, name
        assert f">{fmt_g(finetune_report.carbon.phases[name])}<" in svg, name
    assert f"Cumulative energy (total {fmt_j(finetune_report.energy_j)})" in svg
    assert "gpu:0" in svg and "cpu:pkg (ESTIMATED)" in svg
    assert "phase train" in svg and "phase eval" in svg


def test_without_carbon_there_are_no_emission_bars(energy_report):
    svg = svg_text(lambda: plot_report(energy_report, fmt="svg"))
    assert "gCO2e" not in svg
    assert "Energy per phase<" in svg


def test_format_follows_the_suffix(energy_report, tmp_path):
    assert plot_report(energy_report, tmp_path / "a.svg").lstrip().startswith(b"<?xml")
    assert plot_report(energy_report, tmp_path / "a.pdf").startswith(b"%PDF")


def test_unknown_suffix_is_refused_before_drawing(energy_report, tmp_path):
    with pytest.raises(ConfigError, match=r"cannot tell the image format.*\.png"):
        plot_report(energy_report, tmp_path / "a.gif")
    assert not (tmp_path / "a.gif").exists()


def test_too_small(energy_report):
    with pytest.raises(ConfigError, match="too small"):
        plot_report(energy_report, width_px=100, height_px=100)


def test_nothing_to_plot(energy_report):
    empty = energy_report.model_copy(update={"phases": {}, "channels": [], "timeline": []})
    with pytest.raises(ReportError, match="nothing to plot"):
        plot_report(empty)


def test_power_is_derived_from_energy_when_not_stored(energy_report):
    for ch in energy_report.channels:
        ch.timeline = [(t, e, None) for t, e, _ in ch.timeline]
    inked, _ = pixel_stats(plot_report(energy_report))
    assert inked > 0.05


def test_compare_chart(finetune_report, energy_report):
    comp = compare_reports([energy_report, finetune_report], ["a", "b"])
    data = plot_compare(comp, width_px=800, height_px=600)
    assert png_size(data) == (800, 600)
    svg = svg_text(lambda: plot_compare(comp, fmt="svg"))
    ratio = finetune_report.energy_j / energy_report.energy_j
    assert f">x{ratio:.3g}<" in svg
    assert ">not in report<" in svg  # J/token of the plain energy report


def test_missing_matplotlib_names_the_extra(energy_report, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ConfigError, match=r"pip install 'bertwatt\[plot\]'"):
        plot_report(energy_report)


def test_only_plot_imports_matplotlib():
    code = (
        "import sys; import bertwatt.viz.html, bertwatt.viz.statement, bertwatt.viz.compare, "
        "bertwatt.viz.table, bertwatt.analysis, bertwatt.cli.study, bertwatt.cli; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'rich')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"
