"""The peers benchmark, reduced (one trace, one peer), so that it cannot rot.

``benchmarks/peers/run.py --quick --tools bertwatt,zeus --traces constant`` installs Zeus into the
benchmark's own venv (PyPI only; cached under ~/.cache/bertwatt), runs both tools on the shared
fake GPU and checks what they measured. Marked ``slow`` (a few minutes the first time); set
``BERTWATT_SKIP_PEERS=1`` to skip it on a machine without PyPI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("BERTWATT_SKIP_PEERS") == "1", reason="BERTWATT_SKIP_PEERS=1"
    ),
]


def test_reduced_peers_run_measures_both_tools_on_the_shared_fake(tmp_path: Path):
    out = tmp_path / "peers.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BERTWATT")}
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "peers" / "run.py"),
            "--quick",
            "--tools",
            "bertwatt,zeus",
            "--traces",
            "constant",
            "--no-docs",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=1500,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    data = json.loads(out.read_text())
    by = {(tuple(r["tool"]), r["counter"]): r["windows"] for r in data["energy"]}
    assert set(by) == {
        ((t, c), k)
        for t in ("bertwatt", "zeus")
        for c in ("default", "best")
        for k in (True, False)
    }
    # Both tools measured the same constant 250 W GPU through the fake pynvml.
    for (tool, counter), windows in by.items():
        assert isinstance(windows, list), (tool, counter, windows)
        for w in windows:
            if tool[0] == "zeus" and not counter:
                continue  # Zeus's power path may fail without a GPU: the row reports it
            assert w["error"] is None, (tool, counter, w)
            assert w["truth_j"] == pytest.approx(250.0 * (w["t_end"] - w["t_begin"]))
    # bertwatt's counter path at its defaults: the counter moves every 100 ms, so a window of
    # ~6 s errs by at most 2 x 0.1 s of 250 W over the window, and far less on average.
    for w in by[(("bertwatt", "default"), True)]:
        assert abs(w["rel"]) < 0.05
    for w in by[(("bertwatt", "default"), False)]:
        assert abs(w["rel"]) < 0.05
    costs = data["costs"]
    assert costs["bertwatt|default"]["import_s"] > 0
    assert costs["zeus|default"].get("error") is None
    assert "README table" in proc.stdout and "| energy error, counter path" in proc.stdout
