"""The exception tree: branches, one-line rendering with the fix, pickling, warning categories."""

from __future__ import annotations

import pickle

import pytest

from bertwatt import errors
from bertwatt.errors import (
    BertwattError,
    BertwattWarning,
    CarbonDataError,
    ConfigError,
    EstimateWarning,
    MeasurementWarning,
    ReportError,
    SensorReadError,
)

BRANCHES = [ConfigError, SensorReadError, CarbonDataError, ReportError]


def test_tree():
    for cls in BRANCHES:
        assert issubclass(cls, BertwattError)
        assert cls.__doc__
    assert issubclass(ConfigError, ValueError)
    assert not issubclass(SensorReadError, ValueError)
    # SensorUnavailable was removed: nothing raised it (an unusable sensor is recorded in the
    # report's `unavailable` list with its fix, never raised).
    assert not hasattr(errors, "SensorUnavailable")
    assert issubclass(MeasurementWarning, BertwattWarning)
    assert issubclass(EstimateWarning, BertwattWarning)
    assert issubclass(BertwattWarning, UserWarning)
    assert sorted(errors.__all__) == sorted(
        [c.__name__ for c in BRANCHES]
        + ["BertwattError", "BertwattWarning", "EstimateWarning", "MeasurementWarning"]
    )


def test_str_renders_backend_where_and_fix():
    err = SensorReadError(
        "cannot read energy_uj (permission denied)",
        backend="rapl",
        where="/sys/class/powercap/intel-rapl:0/energy_uj",
        fix="sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj",
    )
    assert str(err) == (
        "rapl: cannot read energy_uj (permission denied) "
        "(/sys/class/powercap/intel-rapl:0/energy_uj). "
        "Fix: sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj"
    )
    assert "\n" not in str(err)


def test_where_is_not_repeated_when_the_message_names_it():
    err = ReportError("cannot read /x/run.json", where="/x/run.json")
    assert str(err) == "cannot read /x/run.json"
    assert str(BertwattError("plain")) == "plain"


@pytest.mark.parametrize("cls", [BertwattError, *BRANCHES])
def test_pickle_round_trip_keeps_type_and_fields(cls):
    err = cls("message", backend="nvml", where="nvmlInit", fix="install the driver")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls
    assert (back.message, back.backend, back.where, back.fix) == (
        "message",
        "nvml",
        "nvmlInit",
        "install the driver",
    )
    assert str(back) == str(err)


def test_config_error_is_caught_as_value_error():
    with pytest.raises(ValueError, match="bad"):
        raise ConfigError("bad")
