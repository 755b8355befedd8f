"""Terminal tables: rich on a terminal, plain text (no control characters) otherwise."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys

import pytest

from bertwatt.viz._report import fmt_g, fmt_j, fmt_num
from bertwatt.viz.table import plain_table, print_report, print_table, report_tables


def no_control_characters(text: str) -> bool:
    return all(ch == "\n" or ch.isprintable() for ch in text)


def test_plain_table_aligns_and_cleans():
    out = plain_table(
        ["run", "energy", "note"], [["a", "1.5 J", "ok"], ["bb\x1b[31m", "12 J", "x"]]
    )
    assert no_control_characters(out)
    lines = out.splitlines()
    assert lines[0].startswith("run") and set(lines[1]) <= {"-", " "}
    assert lines[2].index("1.5 J") + len("1.5 J") == lines[3].index("12 J") + len("12 J")


def test_not_a_terminal_gets_plain_text(finetune_report):
    buf = io.StringIO()
    print_report(finetune_report, file=buf)
    text = buf.getvalue()
    assert no_control_characters(text)
    assert "│" not in text and "┃" not in text
    assert fmt_j(finetune_report.energy_j) in text
    for name, ph in finetune_report.phases.items():
        assert name in text and fmt_j(ph.energy_j) in text
        assert fmt_g(finetune_report.carbon.phases[name]) in text


def test_rich_when_asked():
    pytest.importorskip("rich")
    buf = io.StringIO()
    print_table(["a", "b"], [["x", "1"]], title="t", file=buf, rich=True)
    assert "┃" in buf.getvalue() or "│" in buf.getvalue()


def test_report_tables_cover_every_kind(energy_report, finetune_report, inference_report):
    titles = [t for t, _, _ in report_tables(finetune_report)]
    assert titles[0].startswith("bertwatt finetune report")
    assert "channels" in titles and "phases" in titles and titles[3].startswith("work")
    inf = dict((t, rows) for t, _, rows in report_tables(inference_report))
    assert ["J/query", fmt_j(inference_report.j_per_query)] in inf["inference"]
    plain = dict((t, rows) for t, _, rows in report_tables(energy_report))
    assert plain["not measured and warnings"][0][0] == "rapl:dram"
    totals = report_tables(energy_report)[0][2]
    assert ["duration", f"{fmt_num(energy_report.duration_s)} s"] in totals


def _show(path: str, tty: bool) -> str:
    env = {**os.environ, "COLUMNS": "160", "TERM": "xterm"}
    cmd = [sys.executable, "-m", "bertwatt", "show", path]
    if not tty:
        return subprocess.run(
            cmd, capture_output=True, text=True, check=True, env=env, timeout=120
        ).stdout
    main, child = pty.openpty()
    try:
        proc = subprocess.Popen(cmd, stdout=child, stderr=subprocess.PIPE, env=env)
        os.close(child)
        chunks = []
        while True:
            try:
                data = os.read(main, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        os.close(main)
    return b"".join(chunks).decode("utf-8", "replace")


def test_show_on_a_terminal_uses_tables_and_plain_otherwise(carbon_report, tmp_path):
    pytest.importorskip("rich")
    path = tmp_path / "r.json"
    carbon_report.to_json(path)
    plain = _show(str(path), tty=False)
    assert plain.strip() == carbon_report.summary().strip()
    assert no_control_characters(plain)
    term = _show(str(path), tty=True)
    assert "│" in term or "┃" in term
    assert fmt_j(carbon_report.energy_j) in term
    assert fmt_g(carbon_report.emissions_g) in term
