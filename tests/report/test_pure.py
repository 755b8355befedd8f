"""The report layer is pure data: no sensor code, no carbon package, readable on its own."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "bertwatt"
V1 = ROOT / "tests" / "fixtures" / "v1"

SENSOR_SIDE = ("bertwatt.backends", "bertwatt.sampler", "bertwatt.timeline", "bertwatt.window")


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports inside functions included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def _imports_any(path: Path, prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in imported_modules(path) if m.startswith(prefixes))


def test_report_imports_no_sensor_code_and_no_carbon():
    for path in sorted((SRC / "report").glob("*.py")):
        bad = _imports_any(path, (*SENSOR_SIDE, "bertwatt.carbon", "bertwatt.meter"))
        assert not bad, f"{path.name} imports {bad}"


def test_carbon_does_not_import_the_report_layer():
    for path in sorted((SRC / "carbon").rglob("*.py")):
        bad = _imports_any(path, ("bertwatt.report",))
        assert not bad, f"{path.relative_to(SRC)} imports {bad}"


BLOCKER = """
import importlib.abc, sys
BLOCKED = ("bertwatt.backends", "bertwatt.sampler", "bertwatt.timeline", "bertwatt.window",
           "bertwatt.carbon", "bertwatt.meter", "bertwatt.probing", "torch", "transformers",
           "numpy", "psutil")
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.startswith(BLOCKED):
            raise ImportError(f"blocked import of {name}")
        return None
sys.meta_path.insert(0, Block())
"""


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_a_saved_report_is_readable_with_only_the_report_layer_and_pydantic(tmp_path):
    out = _run(
        f"""
        import json, sys
        from bertwatt.report import load_report, merge_reports
        kinds = []
        for name in ("energy", "finetune", "inference"):
            r = load_report({str(V1)!r} + "/" + name + ".json")
            assert r.summary()
            kinds.append(type(r).__name__)
        m = merge_reports([load_report({str(V1)!r} + "/energy.json")])
        m.to_json({str(tmp_path / "m.json")!r})
        loaded = sorted(k for k in sys.modules if k.startswith("bertwatt"))
        print(json.dumps({{"kinds": kinds, "modules": loaded}}))
        """
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["kinds"] == ["EnergyReport", "FinetuneReport", "InferenceReport"]
    assert not [m for m in result["modules"] if m.startswith(SENSOR_SIDE)]
    assert (tmp_path / "m.json").exists()


def test_the_blocker_really_blocks():
    out = _run("import bertwatt.window")
    assert out.returncode != 0 and "blocked import of bertwatt.window" in out.stderr


def test_with_carbon_takes_an_intensity_object_and_refuses_a_zone_name():
    import pytest

    from bertwatt.carbon import CarbonIntensity, apply_carbon
    from bertwatt.errors import ConfigError
    from bertwatt.report import load_report

    report = load_report(V1 / "energy.json")
    via_object = report.with_carbon(CarbonIntensity.zone("DE"), pue=1.2)
    via_function = apply_carbon(report, "DE", pue=1.2)
    assert via_object.emissions_g == via_function.emissions_g > 0
    assert via_object.carbon.zone == "DE" and via_object.carbon.pue == 1.2
    with pytest.raises(ConfigError, match="apply_carbon") as info:
        report.with_carbon("DE")
    assert "CarbonIntensity.zone" in info.value.fix
