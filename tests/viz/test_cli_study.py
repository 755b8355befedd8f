"""bertwatt plot | report | compare | statement | fit, through main() and as a process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from imaging import png_size

from bertwatt.cli import main
from bertwatt.viz._report import fmt_j
from bertwatt.viz.statement import energy_statement


@pytest.fixture
def files(tmp_path, energy_report, finetune_report, carbon_report):
    paths = {}
    for name, r in (("energy", energy_report), ("tuned", finetune_report), ("co2", carbon_report)):
        paths[name] = tmp_path / f"{name}.json"
        r.to_json(paths[name])
    return paths


def clean(text: str) -> bool:
    return all(ch == "\n" or ch.isprintable() for ch in text)


def test_plot(files, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "power.png"
    assert main(["plot", str(files["tuned"]), "-o", str(out), "--width", "800"]) == 0
    assert png_size(out.read_bytes()) == (800, 1000)
    assert f"figure written to {out}" in capsys.readouterr().err


def test_plot_bad_suffix_is_one_line(files, tmp_path, capsys):
    assert main(["plot", str(files["tuned"]), "-o", str(tmp_path / "x.gif")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot tell the image format" in err and ".png" in err


def test_report(files, tmp_path):
    out = tmp_path / "r.html"
    assert main(["report", str(files["tuned"]), "-o", str(out), "--no-figures"]) == 0
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "bertwatt finetune report" in text


def test_statement_stdout_and_file(files, tmp_path, capsys, carbon_report):
    assert main(["statement", str(files["co2"])]) == 0
    out = capsys.readouterr().out
    assert out == energy_statement(carbon_report, "md")
    tex = tmp_path / "s.tex"
    assert main(["statement", str(files["co2"]), "--format", "latex", "-o", str(tex)]) == 0
    assert tex.read_text(encoding="utf-8") == energy_statement(carbon_report, "latex")


def test_compare_table(files, capsys, finetune_report, energy_report):
    assert main(["compare", str(files["energy"]), str(files["tuned"])]) == 0
    out = capsys.readouterr().out
    assert clean(out)
    assert "ratios to energy" in out
    lines = out.splitlines()
    tuned = next(line for line in lines if line.startswith("tuned"))
    ratio = finetune_report.phase_metrics["run"].energy_j / energy_report.energy_j
    assert fmt_j(finetune_report.energy_j) in tuned
    assert f"x{ratio:.3g}" in tuned


def test_compare_directory_and_chart(files, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    chart = tmp_path / "cmp.png"
    assert main(["compare", str(tmp_path), "--label", "a,b,c", "-o", str(chart)]) == 0
    assert png_size(chart.read_bytes()) == (1200, 800)
    assert "3 runs" in capsys.readouterr().out


def test_fit_text_json_and_plot(files, tmp_path, capsys):
    assert main(["fit", str(files["energy"]), str(files["co2"]), "--by", "time"]) == 0
    out = capsys.readouterr().out
    assert clean(out)
    assert "every run has the same value" in out  # both runs last 5 s
    assert main(["fit", str(files["energy"]), str(files["tuned"]), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["groups"]["all"]["runs"] == ["energy", "tuned"]


def test_fit_errors(files, capsys, tmp_path):
    assert main(["fit", str(files["energy"]), "--by", "watts"]) == 2
    assert "unknown predictor(s) watts" in capsys.readouterr().err
    assert main(["fit", str(files["energy"])]) == 1
    assert "at least 2 runs" in capsys.readouterr().err
    assert main(["fit", str(tmp_path / "missing.json"), str(files["energy"])]) == 1
    err = capsys.readouterr().err
    assert "cannot read report" in err and "missing.json" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["fit", str(empty)]) == 1
    assert "no *.json report in this directory" in capsys.readouterr().err


def test_as_a_process_output_has_no_control_characters(files):
    for args in (
        ["compare", str(files["energy"]), str(files["co2"])],
        ["statement", str(files["tuned"])],
        ["fit", str(files["energy"]), str(files["tuned"])],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "bertwatt", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert clean(proc.stdout) and proc.stdout.strip()
