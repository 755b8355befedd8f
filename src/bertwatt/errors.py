"""Exceptions and warning categories raised by bertwatt.

The tree is branched by what the user can do about it::

    BertwattError
    ├── ConfigError (also ValueError)     bad argument or environment value: fix the call
    ├── SensorReadError                    a sensor failed while being read
    ├── CarbonDataError                    unknown zone, bad intensity table or series
    └── ReportError                        a report cannot be written, read or merged

    BertwattWarning (UserWarning)
    ├── MeasurementWarning                 a figure is less trustworthy than usual (short window,
    │                                      low coverage, rejected readings)
    └── EstimateWarning                    a figure is estimated, not measured

Every exception carries optional ``backend``, ``where`` (the file, call or URL involved) and ``fix``
fields; ``str()`` renders them on one line. Exceptions pickle, so they survive being sent between
``torch.distributed`` processes.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BertwattError",
    "BertwattWarning",
    "CarbonDataError",
    "ConfigError",
    "EstimateWarning",
    "MeasurementWarning",
    "ReportError",
    "SensorReadError",
]


class BertwattError(Exception):
    """Base class of every error bertwatt raises on purpose."""

    def __init__(
        self,
        message: str,
        *,
        backend: str | None = None,
        where: str | None = None,
        fix: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.backend = backend
        self.where = where
        self.fix = fix

    def __str__(self) -> str:
        text = self.message
        if self.backend:
            text = f"{self.backend}: {text}"
        if self.where and self.where not in text:
            text = f"{text} ({self.where})"
        if self.fix:
            text = f"{text}. Fix: {self.fix}"
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild,
            (type(self), self.message, self.backend, self.where, self.fix),
        )


def _rebuild(
    cls: type[BertwattError],
    message: str,
    backend: str | None,
    where: str | None,
    fix: str | None,
) -> BertwattError:
    return cls(message, backend=backend, where=where, fix=fix)


class ConfigError(BertwattError, ValueError):
    """An argument, config object or environment variable has a value bertwatt cannot use."""


class SensorReadError(BertwattError):
    """A sensor that was available failed while being read."""


class CarbonDataError(BertwattError):
    """A carbon-intensity zone, table or time series is unknown or malformed."""


class ReportError(BertwattError):
    """A report cannot be written, read, validated or merged."""


class BertwattWarning(UserWarning):
    """Base class of bertwatt's warnings."""


class MeasurementWarning(BertwattWarning):
    """A measured figure is less trustworthy than usual (short window, gaps, rejected readings)."""


class EstimateWarning(BertwattWarning):
    """A figure is estimated from a model rather than measured by a sensor."""
