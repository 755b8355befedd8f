"""docs/reports.md and docs/study.md against the code: images exist, links resolve, the stated
test bound is the test's, the Python example runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from imaging import png_size

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


@pytest.mark.parametrize("doc", ["reports.md", "study.md"])
def test_images_and_links_exist(doc):
    text = (DOCS / doc).read_text(encoding="utf-8")
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert images
    for img in images:
        data = (DOCS / img).read_bytes()
        w, h = png_size(data)
        assert w >= 600 and h >= 400, img
    for link in re.findall(r"(?<!!)\[[^\]]*\]\(([^)#]+\.md)[^)]*\)", text):
        assert (DOCS / link).is_file(), link


def test_study_states_the_tested_bound():
    import sys

    sys.path.insert(0, str(ROOT / "tests" / "analysis"))
    try:
        from test_fit import SWEEP_R2_BOUND
    finally:
        sys.path.pop(0)
    text = (DOCS / "study.md").read_text(encoding="utf-8")
    assert f"R² above **{SWEEP_R2_BOUND}**" in text


def test_study_python_example_runs(tmp_path, monkeypatch, capsys):
    from viz_reports import make_finetune

    runs = tmp_path / "runs"
    for name, padded, real in (
        ("pad32-0", 512, 400),
        ("pad128-0", 2048, 500),
        ("dynamic-0", 900, 450),
    ):
        make_finetune(step_s=padded / 2048, tokens_padded=padded, tokens_nonpadding=real).to_json(
            runs / f"{name}.json"
        )
    code = re.findall(r"```python\n(.*?)```", (DOCS / "study.md").read_text("utf-8"), re.S)[-1]
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/study.md", "exec"), {})
    out = capsys.readouterr().out
    assert "best predictor: " in out
    assert out.strip().splitlines()[-1].split()[0] in ("time", "tokens_padded")
