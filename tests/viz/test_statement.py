"""The energy statement: every number in it is a number of the report."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pytest

from bertwatt.errors import ConfigError
from bertwatt.report.models import EnergyReport
from bertwatt.viz._report import fmt_num
from bertwatt.viz.statement import energy_statement

NUMBER = re.compile(r"(?<![A-Za-z\d.,])\d[\d,]*(?:\.\d+)?(?:e[+-]\d+)?")


def leaves(value: Any, numbers: list[float], strings: list[str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            strings.append(str(k))
            leaves(v, numbers, strings)
    elif isinstance(value, (list, tuple)):
        for v in value:
            leaves(v, numbers, strings)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, (int, float)):
        numbers.append(value)
    elif isinstance(value, datetime):
        strings.append(f"{value:%Y-%m-%d %H:%M:%S}")
    else:
        strings.append(str(value))


def unexplained_numbers(text: str, report: Any) -> list[str]:
    """Numbers in ``text`` that are neither a report number (as the statement prints it: 4
    significant figures, whole numbers with separators, shares as percentages with one decimal)
    nor part of a text field of the report (assumptions, sources, versions, dates)."""
    numbers: list[float] = []
    strings: list[str] = []
    leaves(report.model_dump(), numbers, strings)
    allowed = set()
    for v in numbers:
        allowed.add(fmt_num(v))
        allowed.add(f"{v * 100:.1f}")  # coverage and padding share as a percentage
        if float(v).is_integer():
            allowed.add(f"{int(v):,}")
            allowed.add(str(int(v)))
    if getattr(report, "padding_share", None) is not None:
        allowed.add(f"{report.padding_share * 100:.1f}")
    bad = []
    for m in NUMBER.finditer(text):
        token = m.group(0).rstrip(",")
        if token in allowed or any(token in s for s in strings):
            continue
        bad.append(token)
    return bad


@pytest.mark.parametrize("fmt", ["md", "latex"])
@pytest.mark.parametrize("which", ["finetune_report", "carbon_report", "energy_report"])
def test_every_number_comes_from_the_report(fmt, which, request):
    report = request.getfixturevalue(which)
    text = energy_statement(report, fmt)
    assert unexplained_numbers(text, report) == []


def test_the_checker_catches_an_invented_number(carbon_report):
    text = energy_statement(carbon_report) + "\nThat is 12.34 J per token.\n"
    assert unexplained_numbers(text, carbon_report) == ["12.34"]


def test_phase_table_rows(finetune_report):
    r = finetune_report
    text = energy_statement(r)
    for name, ph in r.phases.items():
        row = (
            f"| {name} | {fmt_num(ph.duration_s)} | {fmt_num(ph.energy_j)} | "
            f"{fmt_num(ph.energy_kwh)} | {fmt_num(r.carbon.phases[name])} |"
        )
        assert row in text
    assert (
        f"| whole window | {fmt_num(r.duration_s)} | {fmt_num(r.energy_j)} | "
        f"{fmt_num(r.energy_kwh)} | {fmt_num(r.emissions_g)} |"
    ) in text


def test_carbon_hardware_software_coverage(carbon_report):
    r = carbon_report
    c = r.carbon
    text = energy_statement(r)
    assert f"Emissions: {fmt_num(r.emissions_g)} gCO2e" in text
    assert f"PUE of {fmt_num(c.pue)} ({c.pue_source})" in text
    assert f"{fmt_num(c.intensity_g_per_kwh)} gCO2e/kWh" in text
    assert "source: test grid figure; year 2024" in text and "zone XX" in text
    assert f"bertwatt {r.host.bertwatt_version} on Python {r.host.python}" in text
    assert r.host.os in text
    for ch in r.channels:
        assert f"{ch.name} ({ch.provenance.scope}): measured by {ch.provenance.source}" in text
        assert f"coverage {ch.coverage * 100:.1f}% of the window" in text
    assert "All energy figures are measured by hardware sensors." in text
    assert "not measured: rapl:dram (no dram domain here)" in text


def test_estimates_and_their_assumptions(finetune_report):
    text = energy_statement(finetune_report)
    assert "Energy figures are partly ESTIMATED" in text
    assert "cpu:pkg (other): ESTIMATED by bertwatt.testing fake power" in text
    assert "**Estimates and their assumptions.**" in text
    share = finetune_report.padding_share
    assert f"{finetune_report.tokens_padded:,} tokens processed including padding" in text
    assert f"(padding {share * 100:.1f}%)" in text


def test_without_carbon_the_note_is_given(energy_report):
    text = energy_statement(energy_report)
    assert energy_report.carbon_note in text
    assert "emissions (gCO2e)" not in text


def test_latex_is_escaped_and_balanced(finetune_report):
    text = energy_statement(finetune_report, "latex")
    assert "\\begin{tabular}" in text and "\\end{tabular}" in text
    assert text.count("\\begin{") == text.count("\\end{")
    prose = text.replace(" & ", " ")  # column separators of the tabular
    assert re.search(r"(?<!\\)[%_&#$]", prose) is None, "unescaped LaTeX special character"
    opened = text.count("{") - text.count("\\{")
    closed = text.count("}") - text.count("\\}")
    assert opened == closed
    assert "CO\\textsubscript{2}e" in text


def test_inference_statement(inference_report):
    text = energy_statement(inference_report)
    assert (
        f"Inference: 100 queries in 10 batches of 10, {fmt_num(inference_report.j_per_query)}"
        in text
    )
    assert unexplained_numbers(text, inference_report) == []


class RunReport(EnergyReport):
    """A report with schema 2's ``run`` and ``segments`` (read through their attributes)."""

    run: dict[str, Any] | None = None
    segments: list[dict[str, Any]] = []


def test_what_was_run(carbon_report):
    r = RunReport.model_validate(
        {
            **carbon_report.model_dump(),
            "run": {
                "model_name": "prajjwal1/bert-tiny",
                "parameters_total": 4385920,
                "batch_size": 16,
                "flops_estimate": 1.2345678e15,
                "flops_basis": "6 x parameters x tokens processed",
                "dataset_sizes": {"train": 2000},
            },
            "segments": [{"index": 0}, {"index": 1}],
        }
    )
    for fmt in ("md", "latex"):
        text = energy_statement(r, fmt)
        assert unexplained_numbers(text, r) == []
    text = energy_statement(r)
    assert "**What was run.**" in text
    assert "- model: prajjwal1/bert-tiny" in text and "- parameters: 4,385,920" in text
    assert "training FLOPs: 1.235e+15 (an ESTIMATE: 6 x parameters x tokens processed)" in text
    assert "data set sizes: train 2,000" in text
    assert "interrupted and resumed: 2 segments" in text
    assert "What was run" not in energy_statement(carbon_report)


def test_bad_format():
    with pytest.raises(ConfigError, match="'md' or 'latex'"):
        energy_statement(None, "html")  # type: ignore[arg-type]
