"""Runs side by side: values read from each report, ratios to the first."""

from __future__ import annotations

import pytest

from bertwatt.errors import ConfigError
from bertwatt.viz.compare import compare_reports


def test_values_and_ratios(finetune_report, carbon_report, energy_report):
    comp = compare_reports([carbon_report, finetune_report, energy_report], ["c", "f", "e"])
    c, f, e = comp.rows
    assert c.values["energy_j"] == carbon_report.energy_j
    assert c.values["emissions_g"] == carbon_report.emissions_g
    assert c.ratios["energy_j"] == 1.0
    run = finetune_report.phase_metrics["run"]
    assert f.basis == "phase_metrics['run']"
    assert f.values["energy_j"] == run.energy_j
    assert f.values["j_per_token_padded"] == run.j_per_token_padded
    assert f.values["j_per_token_nonpadding"] == run.j_per_token_nonpadding
    assert f.ratios["energy_j"] == run.energy_j / carbon_report.energy_j
    assert f.ratios["duration_s"] == run.duration_s / carbon_report.duration_s
    # the reference has no tokens: no ratio, never a made-up one
    assert f.ratios["j_per_token_padded"] is None
    assert e.values["emissions_g"] is None and e.ratios["emissions_g"] is None
    cols = comp.columns()
    assert cols[:4] == ["run", "kind", "energy", "ratio"]
    table = comp.table_rows()
    assert table[1][0] == "f" and table[1][1] == "finetune"
    assert table[2][cols.index("emissions")] == "-"


def test_one_phase(finetune_report):
    comp = compare_reports([finetune_report, finetune_report], ["a", "b"], phase="train")
    m = finetune_report.phase_metrics["train"]
    assert comp.rows[1].values["energy_j"] == m.energy_j
    assert comp.rows[1].ratios["energy_j"] == 1.0


def test_inference_reads_the_inference_phase(inference_report, energy_report):
    comp = compare_reports([energy_report, inference_report], ["e", "i"])
    i = comp.rows[1]
    assert i.kind == "inference" and i.basis == "inference phase"
    assert i.values["energy_j"] == inference_report.phases["inference"].energy_j
    assert i.values["j_per_token_padded"] == inference_report.j_per_token_padded


def test_paths_are_loaded(finetune_report, energy_report, tmp_path):
    a, b = tmp_path / "base.json", tmp_path / "tuned.json"
    energy_report.to_json(a)
    finetune_report.to_json(b)
    comp = compare_reports([a, b])
    assert [r.label for r in comp.rows] == ["base", "tuned"]
    assert comp.rows[1].kind == "finetune"


def test_bad_input(energy_report):
    with pytest.raises(ConfigError, match="at least 2"):
        compare_reports([energy_report])
    with pytest.raises(ConfigError, match="1 labels for 2 reports"):
        compare_reports([energy_report, energy_report], ["x"])
