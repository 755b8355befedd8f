"""docs/reliability.md names a test for every fault: each named test must exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reliability.md"


def test_every_test_the_reliability_doc_names_exists():
    text = DOC.read_text(encoding="utf-8")
    named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", text)
    assert len(named) > 100, "the fault table lost its rows"
    missing = []
    for path, name in sorted(set(named)):
        source = ROOT / path
        if not source.is_file() or not re.search(
            rf"^\s*(async\s+)?def {name}\(", source.read_text(encoding="utf-8"), re.M
        ):
            missing.append(f"{path}::{name}")
    assert not missing, f"docs/reliability.md names tests that do not exist: {missing}"


def test_every_fault_test_file_is_named_in_the_reliability_doc():
    text = DOC.read_text(encoding="utf-8")
    files = sorted(p.name for p in (ROOT / "tests" / "faults").glob("test_*.py"))
    unnamed = [f for f in files if f != Path(__file__).name and f"tests/faults/{f}" not in text]
    assert not unnamed, f"fault test files missing from docs/reliability.md: {unnamed}"
