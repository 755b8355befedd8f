"""docs/carbon.md against the code: its python examples run, its facts match the tables."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

from bertwatt.carbon import zones

DOC = Path(__file__).resolve().parents[2] / "docs" / "carbon.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_doc_has_examples() -> None:
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_python_examples_run(
    index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # e.g. estimated-energy warnings on machines without sensors
        exec(compile(BLOCKS[index], f"docs/carbon.md block {index}", "exec"), {})
    capsys.readouterr()


def test_doc_table_counts_match_the_shipped_tables() -> None:
    text = DOC.read_text(encoding="utf-8")
    by_table: dict[str, int] = {}
    for rec in zones.all_zones():
        by_table[rec.table] = by_table.get(rec.table, 0) + 1
    assert f"countries ({by_table['countries']})" in text
    assert f"US states ({by_table['us_states']})" in text
    cloud = [r for r in zones.all_zones() if r.table == "cloud_regions"]
    gcp = sum(r.key.startswith("gcp:") for r in cloud)
    aws_known = sum(r.key.startswith("aws:") and r.year == 2023 for r in cloud)
    aws_unknown = sum(r.key.startswith("aws:") and r.year is None for r in cloud)
    assert f"Google Cloud ({gcp})" in text
    assert f"AWS, US regions ({aws_known})" in text
    assert f"AWS, other regions ({aws_unknown})" in text
    years = [r.year for r in zones.all_zones() if r.table == "countries"]
    assert f"2023 for {years.count(2023)} countries, 2022 for {years.count(2022)}" in text
