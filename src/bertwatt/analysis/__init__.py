"""Cross-run analysis: fit energy against the work done across many reports (:mod:`.fit`).

Not imported by ``import bertwatt``. ``from bertwatt.analysis import fit_runs``.
"""

from bertwatt.analysis.fit import (
    PREDICTORS,
    FitAnalysis,
    FitResult,
    LinearFit,
    RunPoint,
    fit_line,
    fit_runs,
    render_fit,
    run_points,
)

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
