"""Text rendering: control characters escaped, impossible figures never shown as numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from bertwatt.report import load_report
from bertwatt.report.render import escape_controls, format_energy

V1 = Path(__file__).resolve().parents[1] / "fixtures" / "v1"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain", "plain"),
        ("\x1b[2J", "\\x1b[2J"),
        ("a\rb", "a\\x0db"),
        ("tab\there", "tab\\x09here"),
        ("nul\x00", "nul\\x00"),
        ("del\x7f", "del\\x7f"),
        ("csi\x9b", "csi\\x9b"),
        ("bidi\u202egnp.exe", "bidi\\u202egnp.exe"),
        ("iso\u2066x\u2069", "iso\\u2066x\\u2069"),
        ("line\u2028sep", "line\\u2028sep"),
        ("two\nlines", "two\\x0alines"),
        ("ünïcödé and 中文", "ünïcödé and 中文"),
    ],
)
def test_escape_controls(text, shown):
    assert escape_controls(text) == shown


def test_escape_controls_can_keep_newlines():
    assert escape_controls("a\nb\x1b", keep_newlines=True) == "a\nb\\x1b"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "not measured"),
        (12.345, "12.35 J"),
        (36_000_000.0, "10 kWh (36,000,000 J)"),
        (5_425_200_000.0, "1,507 kWh (5,425,200,000 J)"),
        (0.000237, "237 uJ"),
        (0.0, "0 J"),
        (0.5, "0.5 J"),
        (float("nan"), "invalid (nan, not a measurement)"),
        (float("inf"), "invalid (inf, not a measurement)"),
        (-1e12, "invalid (-1000000000000.0, not a measurement)"),
    ],
)
def test_format_energy(value, shown):
    assert format_energy(value) == shown


def test_summary_of_a_report_with_a_negative_channel_never_prints_it_as_energy():
    report = load_report(V1 / "energy.json")
    ch = report.channels[0].model_copy(update={"energy_j": -5.0, "peak_power_w": float("nan")})
    text = report.model_copy(update={"channels": [ch]}).summary()
    assert "-5.00 J" not in text and "invalid (-5.0" in text and "nan W" not in text


def test_multi_node_summary_names_the_node_of_each_channel():
    report = load_report(V1 / "energy.json")
    a = report.channels[0].model_copy(update={"node_id": "node-a"})
    b = report.channels[0].model_copy(update={"node_id": "node-b"})
    text = report.model_copy(update={"channels": [a, b]}).summary()
    assert "[node-a]" in text and "[node-b]" in text
    assert "[vm]" not in report.summary()  # one node: no tag
