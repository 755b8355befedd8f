"""Cross-run analysis: fit energy against the work done across many reports (:mod:`.fit`).

Not imported by ``import bertwatt``. ``from bertwatt.analysis import fit_runs``. The public
names are those of :mod:`bertwatt.analysis.fit` (its ``__all__``), listed once there.
"""

from bertwatt.analysis.fit import *  # noqa: F403 - re-export exactly fit.__all__
from bertwatt.analysis.fit import __all__ as __all__
