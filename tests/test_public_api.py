"""The public surface is pinned: adding or removing a public name is a deliberate act."""

from __future__ import annotations

from pathlib import Path

import bertwatt
import bertwatt.backends
import bertwatt.testing

ROOT = Path(__file__).resolve().parents[1]


def test_top_level_names():
    assert sorted(bertwatt.__all__) == [
        "BertwattError",
        "CarbonDataError",
        "ConfigError",
        "EnergyCallback",
        "EnergyMeter",
        "EnergyReport",
        "FinetuneReport",
        "ReportError",
        "SensorReadError",
        "SensorUnavailable",
        "WindowEnergy",
        "__version__",
        "measure_finetune",
        "measure_inference",
    ]


def test_every_public_name_resolves_and_is_documented():
    for module in (bertwatt, bertwatt.backends, bertwatt.testing):
        for name in module.__all__:
            obj = getattr(module, name)
            if name.startswith("__"):
                continue
            assert getattr(obj, "__doc__", None), f"{module.__name__}.{name} has no docstring"


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
