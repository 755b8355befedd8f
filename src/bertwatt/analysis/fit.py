"""Cross-run fits: which measure of work predicts energy best.

Given several reports, :func:`fit_runs` fits ``energy_j = intercept + slope x predictor`` by
ordinary least squares for each predictor (wall-clock ``time``, ``tokens_padded`` processed,
``tokens_nonpadding``, ``examples``, ``flops``), with R² and each run's residual, and names the
predictor with the highest R². Runs on different hardware or of different models are fitted in
separate groups (``group_by="auto"`` groups when they differ), since a slope in J per token only
means something on one machine and one model.

A predictor a report does not carry is left out for that report, and a predictor with fewer than
two runs, or with the same value in every run, is not fitted; both are stated, with the reason,
in :attr:`FitResult.skipped`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bertwatt.errors import ConfigError, ReportError

__all__ = [
    "PREDICTORS",
    "FitAnalysis",
    "FitResult",
    "LinearFit",
    "RunPoint",
    "fit_line",
    "fit_runs",
    "render_fit",
    "run_points",
]

#: predictor name -> (unit, what it is)
PREDICTORS: dict[str, tuple[str, str]] = {
    "time": ("s", "wall-clock duration"),
    "tokens_padded": ("token", "tokens processed, padding included"),
    "tokens_nonpadding": ("token", "non-padding tokens"),
    "examples": ("example", "examples (queries for inference)"),
    "flops": ("FLOP", "FLOPs as the report states them (an estimate)"),
}

_KEY = {
    "time": "duration_s",
    "tokens_padded": "tokens_padded",
    "tokens_nonpadding": "tokens_nonpadding",
    "examples": "examples",
    "flops": "flops",
}


@dataclass(frozen=True)
class RunPoint:
    """One run: its energy, the value of each predictor (None: not in the report), and what
    it ran on."""

    label: str
    energy_j: float
    values: dict[str, float | None]
    hardware: str
    model: str
    basis: str


@dataclass(frozen=True)
class LinearFit:
    """``energy_j = intercept + slope x predictor`` over ``n`` runs."""

    predictor: str
    unit: str
    n: int
    slope: float
    intercept: float
    r2: float | None
    labels: list[str]
    x: list[float]
    y: list[float]
    residuals: list[float]

    @property
    def rmse_j(self) -> float:
        """Root mean square of the residuals (J)."""
        return math.sqrt(math.fsum(r * r for r in self.residuals) / self.n)


@dataclass
class FitResult:
    """Fits of one group of runs, the best predictor, and the predictors not fitted (why)."""

    runs: list[RunPoint]
    fits: dict[str, LinearFit] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def best(self) -> str | None:
        """The fitted predictor with the highest R² (None when no fit has an R²)."""
        scored = [(f.r2, p) for p, f in self.fits.items() if f.r2 is not None]
        return max(scored)[1] if scored else None

    def ranking(self) -> list[str]:
        """Fitted predictors, highest R² first."""
        return sorted(self.fits, key=lambda p: -(self.fits[p].r2 or -math.inf))


@dataclass
class FitAnalysis:
    """Fits per group (``"all"`` when runs were not grouped) and how the runs were grouped."""

    groups: dict[str, FitResult]
    grouped_by: list[str]
    phase: str | None


def fit_line(x: Sequence[float], y: Sequence[float]) -> tuple[float, float, float | None]:
    """Least-squares ``(slope, intercept, r2)`` of ``y`` on ``x``.

    R² is ``1 - SS_res / SS_tot``; None when every ``y`` is the same (nothing to explain).
    Raises ConfigError for fewer than two points or when every ``x`` is the same.
    """
    n = len(x)
    if n != len(y):
        raise ConfigError(f"x and y differ in length ({n} and {len(y)})")
    if n < 2:
        raise ConfigError(f"a line needs at least 2 runs, got {n}")
    mx = math.fsum(x) / n
    my = math.fsum(y) / n
    sxx = math.fsum((a - mx) ** 2 for a in x)
    if sxx == 0:
        raise ConfigError("every run has the same value, so no slope can be fitted")
    sxy = math.fsum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    slope = sxy / sxx
    intercept = my - slope * mx
    ss_tot = math.fsum((b - my) ** 2 for b in y)
    ss_res = math.fsum((b - (intercept + slope * a)) ** 2 for a, b in zip(x, y, strict=True))
    r2 = None if ss_tot == 0 else 1.0 - ss_res / ss_tot
    return slope, intercept, r2


def _hardware(report: Any) -> str:
    from bertwatt.viz._report import field

    hosts = field(report, "hosts") or [field(report, "host")]
    parts = []
    for h in hosts:
        if h is None:
            continue
        gpus = field(h, "gpu_names") or []
        cpu = field(h, "cpu_model") or "unknown CPU"
        parts.append(cpu + (" + " + ", ".join(gpus) if gpus else ""))
    return " | ".join(sorted(set(parts))) or "unknown hardware"


def _model(report: Any) -> str:
    from bertwatt.viz._report import field

    run = field(report, "run")
    name = field(run, "model_name", "model_name_or_path", "model", "model_class")
    if isinstance(name, str) and name:
        return name
    name = field(field(report, "extra"), "model", "model_name")
    return str(name) if name else "unknown model"


def run_points(
    reports: Sequence[Any], labels: Sequence[str] | None = None, *, phase: str | None = None
) -> list[RunPoint]:
    """One :class:`RunPoint` per report (its whole run, or ``phase``); reports without an
    energy figure raise ReportError naming them."""
    from bertwatt.viz._report import run_label, work

    if labels is not None and len(labels) != len(reports):
        raise ConfigError(f"{len(labels)} labels for {len(reports)} reports")
    points = []
    for i, r in enumerate(reports):
        label = labels[i] if labels is not None else run_label(r)
        w = work(r, phase)
        energy = w["energy_j"]
        if energy is None or not math.isfinite(energy):
            raise ReportError(
                f"run {label!r} has no energy figure ({w['basis']}), so it cannot be fitted",
                fix="leave it out; `bertwatt show` says why nothing was measured",
            )
        values: dict[str, float | None] = {}
        for p, key in _KEY.items():
            v = w.get(key)
            # a count of 0 means the report did not count that work (e.g. a plain EnergyReport)
            if isinstance(v, (int, float)) and math.isfinite(v) and (p == "time" or v > 0):
                values[p] = float(v)
            else:
                values[p] = None
        points.append(RunPoint(label, float(energy), values, _hardware(r), _model(r), w["basis"]))
    return points


def _fit_group(points: list[RunPoint], by: Sequence[str]) -> FitResult:
    res = FitResult(runs=points)
    for p in by:
        have = [pt for pt in points if pt.values[p] is not None]
        missing = [pt.label for pt in points if pt.values[p] is None]
        if len(have) < 2:
            res.skipped[p] = (
                f"{len(have)} of {len(points)} runs carry {PREDICTORS[p][1]}"
                + (f" (not in: {', '.join(missing)})" if missing else "")
                + "; at least 2 are needed"
            )
            continue
        x = [v for pt in have if (v := pt.values[p]) is not None]
        y = [pt.energy_j for pt in have]
        try:
            slope, intercept, r2 = fit_line(x, y)
        except ConfigError as err:
            res.skipped[p] = str(err)
            continue
        res.fits[p] = LinearFit(
            predictor=p,
            unit=PREDICTORS[p][0],
            n=len(have),
            slope=slope,
            intercept=intercept,
            r2=r2,
            labels=[pt.label for pt in have],
            x=x,
            y=y,
            residuals=[b - (intercept + slope * a) for a, b in zip(x, y, strict=True)],
        )
        if missing:
            res.skipped[p] = f"fitted without {', '.join(missing)} (not in those reports)"
    return res


def fit_runs(
    reports: Sequence[Any],
    *,
    by: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    phase: str | None = None,
    group_by: Literal["auto", "hardware", "model", "none"] | Sequence[str] = "auto",
) -> FitAnalysis:
    """Fit energy against each predictor in ``by`` (default: all of :data:`PREDICTORS`).

    Args:
        reports: loaded reports (any kind) or paths to them.
        by: predictor names, a subset of :data:`PREDICTORS`.
        labels: a name per run (default: file stem for paths, else run id or start time).
        phase: fit a phase's energy and work (``"train"``) instead of the whole run.
        group_by: ``"auto"`` (by hardware and/or model when the runs differ in them),
            ``"hardware"``, ``"model"``, both as a list, or ``"none"``.
    """
    from bertwatt.viz._report import load_any

    preds = list(by) if by is not None else list(PREDICTORS)
    unknown = [p for p in preds if p not in PREDICTORS]
    if unknown or not preds:
        raise ConfigError(
            f"unknown predictor(s) {unknown}; choose from {', '.join(PREDICTORS)}"
            if unknown
            else "no predictor given"
        )
    loaded = []
    names = list(labels) if labels is not None else []
    for r in reports:
        if isinstance(r, (str, Path)):
            loaded.append(load_any(r))
            if labels is None:
                names.append(Path(r).stem)
        else:
            loaded.append(r)
            if labels is None:
                from bertwatt.viz._report import run_label

                names.append(run_label(r))
    if len(loaded) < 2:
        raise ConfigError(f"fitting needs at least 2 runs, got {len(loaded)}")
    points = run_points(loaded, names, phase=phase)
    if isinstance(group_by, str):
        if group_by == "auto":
            keys = [
                k
                for k, attr in (("hardware", "hardware"), ("model", "model"))
                if len({getattr(p, attr) for p in points}) > 1
            ]
        elif group_by == "none":
            keys = []
        elif group_by in ("hardware", "model"):
            keys = [group_by]
        else:
            raise ConfigError(f"group_by must be auto, hardware, model or none, not {group_by!r}")
    else:
        keys = list(group_by)
        bad = [k for k in keys if k not in ("hardware", "model")]
        if bad:
            raise ConfigError(f"can group by hardware and/or model, not {bad}")
    groups: dict[str, list[RunPoint]] = {}
    for p in points:
        key = " / ".join(getattr(p, k) for k in keys) if keys else "all"
        groups.setdefault(key, []).append(p)
    return FitAnalysis(
        groups={k: _fit_group(v, preds) for k, v in groups.items()}, grouped_by=keys, phase=phase
    )


def _g(v: float) -> str:
    return f"{v:.6g}"


def render_fit(analysis: FitAnalysis) -> str:
    """The fits as text: per group, one line per predictor (slope, intercept, R², RMSE), the
    residual of every run, the best predictor and what was not fitted."""
    lines = []
    what = f"phase {analysis.phase!r}" if analysis.phase else "whole run"
    lines.append(f"energy (J) of the {what} against each predictor, least squares")
    if analysis.grouped_by:
        lines.append(f"runs grouped by {' and '.join(analysis.grouped_by)} (they differ)")
    for name, res in analysis.groups.items():
        lines.append("")
        lines.append(
            f"group {name}: {len(res.runs)} runs" if name != "all" else f"{len(res.runs)} runs"
        )
        if res.fits:
            lines.append(
                f"  {'predictor':<18} {'n':>3} {'slope':>14} {'unit':<14} {'intercept J':>13} "
                f"{'R²':>8} {'RMSE J':>10}"
            )
            for p in res.ranking():
                f = res.fits[p]
                r2 = "n/a" if f.r2 is None else f"{f.r2:.4f}"
                lines.append(
                    f"  {p:<18} {f.n:>3} {_g(f.slope):>14} {'J/' + f.unit:<14} "
                    f"{_g(f.intercept):>13} {r2:>8} {_g(f.rmse_j):>10}"
                )
            lines.append("  residuals (J, measured - fitted):")
            fitted = res.ranking()
            lines.append(
                f"    {'run':<20} {'energy J':>12} " + " ".join(f"{p:>17}" for p in fitted)
            )
            for pt in res.runs:
                cells = []
                for p in fitted:
                    f = res.fits[p]
                    cells.append(
                        f"{_g(f.residuals[f.labels.index(pt.label)]):>17}"
                        if pt.label in f.labels
                        else f"{'-':>17}"
                    )
                lines.append(f"    {pt.label:<20} {_g(pt.energy_j):>12} " + " ".join(cells))
        best = res.best
        if best is not None:
            f = res.fits[best]
            r2 = "n/a" if f.r2 is None else f"{f.r2:.4f}"
            lines.append(f"  best predictor: {best} (R² {r2}), {_g(f.slope)} J/{f.unit}")
        else:
            lines.append("  no predictor could be fitted")
        for p, why in res.skipped.items():
            lines.append(f"  {p}: {why}")
    return "\n".join(lines)
