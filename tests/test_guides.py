"""Documented examples run and say what the docs say they do."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def blocks(doc: str) -> list[str]:
    text = (ROOT / "docs" / doc).read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_testing_guide_first_example_runs_and_its_asserts_hold():
    code = blocks("testing.md")[0]
    assert "FakeClock" in code and "assert" in code
    exec(compile(code, "docs/testing.md", "exec"), {})


def test_testing_guide_fake_gpu_and_powercap_examples_run(tmp_path):
    from bertwatt import EnergyMeter

    gpu = blocks("testing.md")[2]
    powercap = next(b for b in blocks("testing.md") if "FakePowercapTree" in b)
    namespace: dict[str, object] = {"EnergyMeter": EnergyMeter, "tmp_path": tmp_path}
    exec(compile(gpu, "docs/testing.md", "exec"), namespace)
    report = namespace["meter"].report  # type: ignore[attr-defined]
    assert abs(report.energy_j - (250.0 + 120.0) * 10) < 1e-6
    exec(compile(powercap, "docs/testing.md", "exec"), namespace)
    assert any(c.name == "cpu:package-0" for c in namespace["backend"].probe().channels)  # type: ignore[attr-defined]


def test_every_doc_linked_from_the_readme_exists():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / link).is_file(), link


def test_testing_guide_sensor_model_example_runs():
    code = next(b for b in blocks("testing.md") if "SensorModel(gain=1.03)" in b)
    namespace: dict[str, object] = {}
    exec(compile(code, "docs/testing.md", "exec"), namespace)
    gpu = namespace["gpu"]
    assert gpu.sensor.power_reading == "average"  # type: ignore[attr-defined]
    assert gpu.power_at(13.0) == 300.0  # type: ignore[attr-defined]
