"""Argument checks shared by config objects and fakes: one clear ConfigError per bad value."""

from __future__ import annotations

import math

from bertwatt.errors import ConfigError

__all__ = ["check_number"]


def check_number(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    unit: str = "",
) -> float:
    """Return ``value`` as a finite float within the bounds, or raise ConfigError naming ``name``.

    Booleans and strings are refused even though Python would coerce them.
    """
    suffix = f" {unit}" if unit else ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number{suffix}, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    if low is not None and (v < low or (v == low and not low_inclusive)):
        op = ">=" if low_inclusive else ">"
        raise ConfigError(f"{name} must be {op} {low:g}{suffix}, got {value!r}")
    if high is not None and v > high:
        raise ConfigError(f"{name} must be <= {high:g}{suffix}, got {value!r}")
    return v
