"""examples/padding_sweep.py runs offline in a reduced size, and `bertwatt fit` reads its output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out


@pytest.mark.slow
def test_sweep_then_fit(tmp_path):
    pytest.importorskip("transformers")
    runs = tmp_path / "runs"
    out = run(["examples/padding_sweep.py", str(runs), "--train-examples", "48", "--repeats", "1"])
    names = sorted(p.stem for p in runs.glob("*.json"))
    assert names == ["dynamic-0", "pad128-0", "pad32-0", "pad64-0"]
    assert "runs/pad128-0.json" in out.stderr.replace(str(tmp_path) + "/", "")
    fit = run(["-m", "bertwatt", "fit", str(runs), "--phase", "train", "--json"])
    data = json.loads(fit.stdout)["groups"]["all"]
    assert data["runs"] == names
    assert set(data["fits"]) >= {"time", "tokens_padded", "tokens_nonpadding"}
    padded = {r: json.loads((runs / f"{r}.json").read_text())["tokens_padded"] for r in names}
    # 48 examples padded to 32, 64 and 128 tokens: the counts the fit used
    assert (padded["pad32-0"], padded["pad64-0"], padded["pad128-0"]) == (1536, 3072, 6144)
    assert padded["dynamic-0"] < padded["pad64-0"]
