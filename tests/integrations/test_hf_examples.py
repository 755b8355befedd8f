"""The examples run offline in a reduced size (``--quick``), in fresh interpreters; and importing
the integrations package stays light."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(args: list[str], timeout: float = 240) -> str:
    # one OpenMP thread: on a busy 2-core machine two spinning threads slow tiny models 20x
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    env.pop("BERTWATT_ZONE", None)
    out = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.mark.slow
def test_finetune_bert_quick(tmp_path):
    out = run(["examples/finetune_bert.py", "--quick", "--output-dir", str(tmp_path)])
    assert "fine-tuning figures are" in out
    assert "per phase" in out and "J/real tok" in out
    assert "Key figures" in out
    # measured or estimated, said in words
    assert ("measured:" in out) or ("ESTIMATED" in out)
    assert "emissions:" in out
    report = json.loads((tmp_path / "bertwatt" / "report.json").read_text())
    assert report["steps"] > 0 and report["tokens_padded"] > report["tokens_nonpadding"] > 0
    import bertwatt
    from bertwatt.report.finetune import FinetuneReport

    loaded = bertwatt.load_report(tmp_path / "bertwatt" / "report.json")
    assert type(loaded) is FinetuneReport and loaded.kind == "finetune"
    assert loaded.status == "complete" and [s.ended_by for s in loaded.segments] == ["completed"]
    assert loaded.run.model_class == "BertForSequenceClassification"
    assert loaded.run.dataset_sizes == {"train": 240, "eval": 80}


@pytest.mark.slow
def test_padding_comparison_quick():
    out = run(["examples/padding_comparison.py", "--quick"])
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert {"max_length", "dynamic", "dynamic+grouped"} <= set(lines)
    assert "max_length processed" in out


@pytest.mark.slow
def test_plain_pytorch_quick():
    out = run(["examples/plain_pytorch.py", "--quick"])
    assert "phases:" in out and "per example" in out


def test_import_of_the_integrations_package_loads_no_framework():
    code = (
        "import sys, json, bertwatt.integrations as i\n"
        "from bertwatt.integrations import FinetuneSession, measure_finetune\n"
        "import bertwatt.integrations.report, bertwatt.integrations.tokens\n"
        "print(json.dumps([m for m in ('torch', 'transformers') if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


def test_a_missing_framework_names_the_extra_to_install():
    code = (
        "import sys\n"
        "sys.modules['transformers'] = None\n"
        "import bertwatt.integrations as i\n"
        "try:\n"
        "    i.EnergyCallback\n"
        "except ImportError as err:\n"
        "    print(err)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "pip install 'bertwatt[hf]'" in out.stdout
