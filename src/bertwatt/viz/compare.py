"""Runs side by side: energy, time, J per token (padded and non-padding) and emissions, each
with its ratio to the first run.

Values are read from each report (:func:`bertwatt.viz._report.work`: the whole run of a
fine-tuning report is its ``phase_metrics["run"]``, an inference report its ``inference``
phase); a ratio is this run's value divided by the first run's, and is absent when either value
is absent or the first is 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bertwatt.errors import ConfigError
from bertwatt.viz._report import fmt_g, fmt_j, fmt_num, load_any, run_label, work

__all__ = ["QUANTITIES", "Comparison", "ComparisonRow", "compare_reports"]

#: quantity -> title
QUANTITIES: dict[str, str] = {
    "energy_j": "energy (J)",
    "duration_s": "time (s)",
    "j_per_token_padded": "J per token processed (padding included)",
    "j_per_token_nonpadding": "J per non-padding token",
    "emissions_g": "emissions (gCO2e)",
}


@dataclass(frozen=True)
class ComparisonRow:
    """One run: its label, what the values were read from, the values and the ratios."""

    label: str
    kind: str
    basis: str
    values: dict[str, float | None]
    ratios: dict[str, float | None]


@dataclass
class Comparison:
    """Rows in the order given; ratios are to the first row."""

    rows: list[ComparisonRow]
    phase: str | None = None
    quantities: tuple[str, ...] = tuple(QUANTITIES)
    titles: dict[str, str] = field(default_factory=lambda: dict(QUANTITIES))

    def has(self, quantity: str) -> bool:
        """True when any run has a value for ``quantity``."""
        return any(r.values.get(quantity) is not None for r in self.rows)

    def columns(self) -> list[str]:
        """Table header: run, then value and ratio of every quantity some run has."""
        cols = ["run", "kind"]
        short = {
            "energy_j": "energy",
            "duration_s": "time",
            "j_per_token_padded": "J/token",
            "j_per_token_nonpadding": "J/real token",
            "emissions_g": "emissions",
        }
        for q in self.quantities:
            if self.has(q):
                cols += [short[q], "ratio"]
        return cols

    def table_rows(self) -> list[list[str]]:
        """Formatted cells matching :meth:`columns`."""
        out = []
        for r in self.rows:
            cells = [r.label, r.kind]
            for q in self.quantities:
                if not self.has(q):
                    continue
                cells.append(_fmt(q, r.values.get(q)))
                ratio = r.ratios.get(q)
                cells.append("-" if ratio is None else f"x{fmt_num(ratio, 3)}")
            out.append(cells)
        return out


def _fmt(q: str, v: float | None) -> str:
    if v is None:
        return "-"
    if q == "duration_s":
        return f"{fmt_num(v)} s"
    if q == "emissions_g":
        return fmt_g(v)
    return fmt_j(v)


def compare_reports(
    reports: Sequence[Any], labels: Sequence[str] | None = None, *, phase: str | None = None
) -> Comparison:
    """Compare reports (loaded, or paths) of any kind; the first is the reference for ratios."""
    if len(reports) < 2:
        raise ConfigError(f"compare needs at least 2 reports, got {len(reports)}")
    if labels is not None and len(labels) != len(reports):
        raise ConfigError(f"{len(labels)} labels for {len(reports)} reports")
    rows: list[ComparisonRow] = []
    first: dict[str, float | None] = {}
    from bertwatt.viz._report import kind_of

    for i, rep in enumerate(reports):
        path = rep if isinstance(rep, (str, Path)) else None
        report = load_any(rep) if path is not None else rep
        label = labels[i] if labels is not None else run_label(report, path)
        w = work(report, phase)
        values = {q: (None if w.get(q) is None else float(w[q])) for q in QUANTITIES}
        if i == 0:
            first = values
        ratios = {
            q: (values[q] / first[q])  # type: ignore[operator]
            if values[q] is not None and first.get(q) not in (None, 0.0)
            else None
            for q in QUANTITIES
        }
        rows.append(ComparisonRow(label, kind_of(report), w["basis"], values, ratios))
    return Comparison(rows=rows, phase=phase)
