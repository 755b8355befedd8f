"""Which figures of a report are impossible: NaN, infinite or negative energies, powers, emissions.

A report holding one is refused on load and by merge (:class:`~bertwatt.errors.ReportError`), so
it is never displayed as a figure nor added into a total. Checked fields are the ones whose
name says they are an energy (``*_j``, ``*_kwh``), an emission (``*_g``) or a power (``*_w``),
in the report and every nested model, list and mapping of models, plus per-channel phase
energies and per-phase emissions. Two differences may be negative and are left alone:
``energy_above_idle_j`` (a run can draw less than its idle baseline) and ``between_steps_j``.
Stored timelines are not walked (they are thinned copies of the checked totals).
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel

__all__ = ["check_figures", "figure_problems"]

_UNITS = ("_j", "_kwh", "_g", "_w")
_SIGNED = frozenset({"energy_above_idle_j", "between_steps_j", "error"})
_SKIP = frozenset({"timeline"})
#: Fields holding name -> figure mappings (per-channel phase energies, per-phase emissions).
_FIGURE_MAPS = frozenset({"channels", "phases", "channels_w"})


def _bad(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value):
        return f"is {value!r}"
    if value < 0:
        return f"is negative ({value!r})"
    return None


def _is_figure_name(name: str) -> bool:
    return name not in _SIGNED and name.endswith(_UNITS)


def _walk(obj: Any, where: str, out: list[str], limit: int) -> None:
    if len(out) >= limit:
        return
    if isinstance(obj, BaseModel):
        _walk_model(obj, where, out, limit)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            if isinstance(v, BaseModel):
                _walk(v, f"{where}[{i}]", out, limit)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, BaseModel):
                _walk(v, f"{where}[{k!r}]", out, limit)


def _walk_model(obj: BaseModel, where: str, out: list[str], limit: int) -> None:
    for name in type(obj).model_fields:
        if name in _SKIP:
            continue
        value = getattr(obj, name)
        path = f"{where}.{name}" if where else name
        if _is_figure_name(name):
            _check_value(value, path, out)
        elif name in _FIGURE_MAPS and isinstance(value, dict):
            _walk_figure_map(value, path, out, limit)
        else:
            _walk(value, path, out, limit)


def _walk_figure_map(value: dict[Any, Any], path: str, out: list[str], limit: int) -> None:
    for key, v in value.items():
        if isinstance(v, int | float):
            _check_value(v, f"{path}[{key!r}]", out)
        else:
            _walk(v, f"{path}[{key!r}]", out, limit)


def _check_value(value: Any, path: str, out: list[str]) -> None:
    if isinstance(value, list):
        for i, v in enumerate(value):
            problem = _bad(v)
            if problem:
                out.append(f"{path}[{i}] {problem}")
                return
        return
    problem = _bad(value)
    if problem:
        out.append(f"{path} {problem}")


def figure_problems(report: BaseModel, limit: int = 5) -> list[str]:
    """Up to ``limit`` descriptions of impossible figures in ``report`` (empty when sound)."""
    out: list[str] = []
    _walk(report, "", out, limit)
    return out[:limit]


def check_figures(report: BaseModel, where: str | None = None) -> None:
    """Raise :class:`~bertwatt.errors.ReportError` naming the first impossible figures."""
    problems = figure_problems(report, limit=3)
    if problems:
        from bertwatt.errors import ReportError

        raise ReportError(
            "invalid report: impossible figure(s): " + "; ".join(problems),
            where=where,
            fix="a NaN, infinite or negative energy is never a measurement: re-measure, or "
            "correct the file by hand if you know the true figure",
        )
