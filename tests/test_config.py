"""MeterConfig validation, the environment reader and PUE validation."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bertwatt.config import MeterConfig, validate_pue, zone_from_env
from bertwatt.errors import ConfigError

#: field -> (low, high) accepted seconds
RANGES = {
    "interval_s": (0.001, 3600.0),
    "checkpoint_interval_s": (0.01, 86400.0),
    "baseline_s": (0.0, 3600.0),
    "slow_read_timeout_s": (0.0, 600.0),
}


def test_defaults():
    cfg = MeterConfig()
    assert cfg.interval_s == 0.1
    assert cfg.output is None
    assert cfg.checkpoint_interval_s == 60.0
    assert cfg.baseline_s == 0.0
    assert cfg.sync_cuda is None
    assert cfg.edge_reads is True
    assert cfg.slow_read_timeout_s == 5.0
    assert cfg.timeline_points == 8192
    assert "interval_s=0.1" in repr(cfg)


def test_frozen_and_keyword_only():
    cfg = MeterConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.interval_s = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        MeterConfig(0.5)  # type: ignore[misc]


def test_output_becomes_a_path():
    assert MeterConfig(output="runs/r.json").output == Path("runs/r.json")
    assert MeterConfig(output=Path("/tmp/x.json")).output == Path("/tmp/x.json")


@pytest.mark.parametrize("field", sorted(RANGES))
def test_range_ends_are_accepted_and_stored_as_float(field):
    low, high = RANGES[field]
    for value in (low, high, int(high)):
        got = getattr(MeterConfig(**{field: value}), field)
        assert got == float(value) and type(got) is float


def test_timeline_points_range():
    assert MeterConfig(timeline_points=64).timeline_points == 64
    assert MeterConfig(timeline_points=10_000_000).timeline_points == 10_000_000


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(sorted(RANGES)).flatmap(
        lambda f: st.tuples(st.just(f), st.floats(*RANGES[f], allow_nan=False))
    )
)
def test_any_value_inside_the_range_is_accepted(item):
    field, value = item
    assert getattr(MeterConfig(**{field: value}), field) == value


_not_numbers = st.one_of(
    st.none(), st.booleans(), st.text(max_size=4), st.lists(st.integers(), max_size=2)
)


def _bad_seconds(field: str) -> st.SearchStrategy[object]:
    low, high = RANGES[field]
    return st.one_of(
        _not_numbers,
        st.sampled_from([math.nan, math.inf, -math.inf]),
        st.floats(max_value=low, exclude_max=True, allow_nan=False),
        st.floats(min_value=high, exclude_min=True, allow_nan=False),
        st.integers(min_value=int(high) + 1),
    )


BAD = {f: _bad_seconds(f) for f in RANGES}
BAD.update(
    {
        "timeline_points": st.one_of(
            _not_numbers,
            st.integers(max_value=63),
            st.integers(min_value=10_000_001),
            st.floats(64, 1e6),
        ),
        "output": st.one_of(st.just(""), st.integers(), st.floats(allow_nan=False), st.binary()),
        "sync_cuda": st.one_of(st.integers(), st.text(max_size=4)),
        "edge_reads": st.one_of(st.none(), st.integers(), st.text(max_size=4)),
    }
)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(BAD)).flatmap(lambda f: st.tuples(st.just(f), BAD[f])))
def test_bad_values_are_config_errors_naming_the_field(item):
    field, value = item
    with pytest.raises(ConfigError, match=field) as info:
        MeterConfig(**{field: value})
    assert isinstance(info.value, ValueError)


def test_zone_from_env(monkeypatch):
    monkeypatch.delenv("BERTWATT_ZONE", raising=False)
    assert zone_from_env() is None
    monkeypatch.setenv("BERTWATT_ZONE", "   ")
    assert zone_from_env() is None
    monkeypatch.setenv("BERTWATT_ZONE", " FR ")
    assert zone_from_env() == "FR"


def test_validate_pue():
    assert validate_pue(1) == 1.0 and type(validate_pue(1)) is float
    assert validate_pue(1.58) == 1.58
    assert validate_pue(3.0) == 3.0


@settings(max_examples=60, deadline=None)
@given(
    st.one_of(
        st.floats(max_value=1.0, exclude_max=True),
        st.floats(min_value=3.0, exclude_min=True),
        st.sampled_from([math.nan, True, False, None, "1.2", [1.2]]),
    )
)
def test_bad_pue_is_config_error(value):
    with pytest.raises(ConfigError, match="pue must be"):
        validate_pue(value)
