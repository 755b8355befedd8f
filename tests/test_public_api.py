"""The public surface is pinned: adding or removing a public name is a deliberate act."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

import bertwatt

ROOT = Path(__file__).resolve().parents[1]

#: Every public package and its pinned ``__all__``.
PUBLIC = {
    "bertwatt": [
        "BertwattError",
        "CarbonDataError",
        "CarbonIntensity",
        "ConfigError",
        "EnergyCallback",
        "EnergyMeter",
        "EnergyReport",
        "EstimateWarning",
        "FinetuneReport",
        "MeasurementWarning",
        "ReportError",
        "SensorReadError",
        "WindowEnergy",
        "__version__",
        "load_report",
        "measure_finetune",
        "measure_inference",
        "measure_repeated",
    ],
    "bertwatt.backends": [
        "Availability",
        "Backend",
        "Channel",
        "EstimateBackend",
        "NVMLBackend",
        "Provenance",
        "RAPLBackend",
        "ReadResult",
        "Unavailable",
        "WallPlugBackend",
        "create",
        "default_backends",
    ],
    "bertwatt.distributed": [
        "GPUOwnership",
        "RankInfo",
        "RankSession",
        "build_job_report",
        "claim_rank_path",
        "gpu_ownership",
        "node_gpus",
        "node_identity",
        "rank_file_name",
        "rank_files",
        "rank_info",
    ],
    "bertwatt.backends.wallplug": ["WallPlugBackend"],
    "bertwatt.carbon": [
        "CarbonIntensity",
        "ElectricityMaps",
        "LiveIntensity",
        "LiveReading",
        "SeriesIntensity",
        "StaticIntensity",
        "UKCarbonIntensity",
        "WattTime",
        "ZoneRecord",
        "apply_carbon",
        "format_zones",
        "search_zones",
    ],
    "bertwatt.cli": ["build_parser", "main"],
    "bertwatt.errors": [
        "BertwattError",
        "BertwattWarning",
        "CarbonDataError",
        "ConfigError",
        "EstimateWarning",
        "MeasurementWarning",
        "ReportError",
        "SensorReadError",
    ],
    "bertwatt.integrations": [
        "EnergyCallback",
        "FinetuneReport",
        "FinetuneSession",
        "InferenceReport",
        "measure_finetune",
        "measure_inference",
    ],
    "bertwatt.report": [
        "SCHEMA_VERSION",
        "CarbonSummary",
        "ChannelReport",
        "EnergyReport",
        "FinetuneReport",
        "HostInfo",
        "InferenceReport",
        "PhaseReport",
        "ResumeInfo",
        "RunInfo",
        "Segment",
        "load_report",
        "merge_paths",
        "merge_reports",
    ],
    "bertwatt.analysis": [
        "PREDICTORS",
        "FitAnalysis",
        "FitResult",
        "LinearFit",
        "RunPoint",
        "fit_line",
        "fit_runs",
        "render_fit",
        "run_points",
    ],
    "bertwatt.viz": [
        "compare_reports",
        "energy_statement",
        "plot_compare",
        "plot_fit",
        "plot_report",
        "print_report",
        "render_html",
    ],
    "bertwatt.testing": [
        "FakeBackend",
        "FakeChannel",
        "FakeClock",
        "FakeGPU",
        "FakeNVML",
        "FakePowercapTree",
        "PowerTrace",
        "SensorModel",
    ],
}


def test_every_public_package_is_pinned():
    packages = sorted(
        f"bertwatt.{p.parent.name}"
        for p in (ROOT / "src" / "bertwatt").glob("*/__init__.py")
        if not p.parent.name.startswith("_")
    )
    assert set(packages) <= set(PUBLIC), "a new public package: pin its __all__ here"


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_names_are_pinned(module):
    assert sorted(importlib.import_module(module).__all__) == sorted(PUBLIC[module])


def test_top_level_names():
    assert sorted(bertwatt.__all__) == sorted(PUBLIC["bertwatt"])


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_every_public_name_resolves_and_is_documented(module):
    mod = importlib.import_module(module)
    for name in mod.__all__:
        obj = getattr(mod, name)
        if name.startswith("__") or isinstance(obj, int | str):
            continue
        assert getattr(obj, "__doc__", None), f"{module}.{name} has no docstring"


def test_the_top_level_names_are_the_same_objects_as_their_homes():
    from bertwatt.carbon import CarbonIntensity
    from bertwatt.errors import EstimateWarning, MeasurementWarning
    from bertwatt.report import FinetuneReport, load_report
    from bertwatt.report.io import load_report as io_load

    assert bertwatt.CarbonIntensity is CarbonIntensity
    assert bertwatt.load_report is load_report is io_load
    assert bertwatt.MeasurementWarning is MeasurementWarning
    assert bertwatt.EstimateWarning is EstimateWarning
    assert bertwatt.FinetuneReport is FinetuneReport
    from bertwatt.integrations import report as old_home

    assert old_home.FinetuneReport is FinetuneReport


def test_every_exception_in_the_tree_is_raised_somewhere():
    # an exception class nothing raises is dead weight in the public tree
    import re

    from bertwatt import errors

    source = "\n".join(
        p.read_text(encoding="utf-8")
        for p in (ROOT / "src" / "bertwatt").rglob("*.py")
        if p.name != "errors.py"
    )
    for name in errors.__all__:
        cls = getattr(errors, name)
        if name in ("BertwattError", "BertwattWarning") or not issubclass(cls, Exception):
            continue
        used = re.search(rf"\b{name}\(", source) or re.search(
            rf"\b{name},\s*\n?\s*stacklevel", source
        )
        if issubclass(cls, Warning):
            used = re.search(rf"\b{name}\b", source)
        assert used, f"{name} is never raised or warned"


def test_declared_dependencies_are_imported():
    tomllib = pytest.importorskip("tomllib")
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    source = "\n".join(
        p.read_text(encoding="utf-8") for p in (ROOT / "src" / "bertwatt").rglob("*.py")
    )
    for dep in meta["project"]["dependencies"]:
        name = re.split(r"[<>=!~ \[]", dep, maxsplit=1)[0].replace("-", "_")
        assert re.search(rf"^\s*(import|from) {name}\b", source, re.M), f"{name} is never imported"


def test_unknown_attribute_is_attribute_error():
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        bertwatt.nope  # noqa: B018


def test_version_matches_pyproject():
    import pytest

    tomllib = pytest.importorskip("tomllib")
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert bertwatt.__version__ == meta["project"]["version"]


def test_py_typed_shipped():
    assert (ROOT / "src" / "bertwatt" / "py.typed").exists()
