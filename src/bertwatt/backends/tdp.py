"""The packaged CPU TDP table and the brand-string matching behind :func:`lookup_tdp`.

The table is ``data/cpu_tdp.csv`` (``model, tdp_watts, source, year``; see ``data/README.md``),
shipped as package data and read once per process through ``importlib.resources``. Rows without a
usable figure stay in the file as published and are skipped here. The TDP of a row is the thermal
design power of one package (socket), W. Used by the labelled estimate
(:mod:`bertwatt.backends.estimate`), never by a measuring backend.
"""

from __future__ import annotations

import csv
import functools
import io
import logging
import math
import re
from dataclasses import dataclass
from importlib import resources

__all__ = ["TdpRecord", "lookup_tdp"]

logger = logging.getLogger(__name__)

_VENDORS = frozenset({"intel", "amd", "apple"})


@dataclass(frozen=True, slots=True)
class TdpRecord:
    """One row of the CPU TDP table, as matched by :func:`lookup_tdp`.

    Attributes:
        model: the table's model name, e.g. ``"Intel Xeon Gold 6248"``.
        tdp_w: thermal design power of one package (socket), W.
        source: where the row's figure comes from.
        year: year of the figure or compilation (``"unknown"`` when not established).
        matched_on: how the brand string was matched to the row.
    """

    model: str
    tdp_w: float
    source: str
    year: str
    matched_on: str


def _normalise(text: str) -> list[str]:
    """Brand string or table name -> lower-case tokens without trademarks, clocks and filler."""
    s = text.lower()
    for mark in ("(r)", "(tm)", "(c)", "®", "™"):
        s = s.replace(mark, " ")
    s = re.split(r"@|\swith\s|\sw/\s", s)[0]  # clock speed, "with Radeon Graphics"
    s = re.sub(r"\([^)]*\)", " ", s).replace(",", " ")
    s = re.sub(r"\b\d+(?:st|nd|rd|th) gen\b", " ", s)  # "13th Gen Intel(R) Core(TM) ..."
    s = re.sub(r"\b\d+-cores?\b|\b[\d.]+\s*[gm]hz\b|\b(?:cpu|processor)\b", " ", s)
    s = re.sub(r"\bcore2\b", "core 2", s)  # "Core(TM)2 Duo"
    s = re.sub(r"\b(i[3579])\s+(\d{3,5}[a-z]*)\b", r"\1-\2", s)  # "Core i7 920" -> "i7-920"
    return [t for t in s.split() if t != "0"]  # "E5-2680 0": Sandy Bridge's empty version


def _has_digit(token: str) -> bool:
    return any(c.isdigit() for c in token)


@dataclass(frozen=True, slots=True)
class _Row:
    model: str
    tdp_w: float
    source: str
    year: str
    tokens: frozenset[str]
    digits: frozenset[str]


_DIGIT_RUN = re.compile(r"\d+")


def _longest_digit_run(text: str) -> str:
    return max(_DIGIT_RUN.findall(text), key=len, default="")


@functools.cache
def _table() -> tuple[
    tuple[tuple[str, float, str, str], ...], dict[str, tuple[int, ...]], dict[str, int]
]:
    """The packaged table, read once per process, with two cheap indexes: the longest run of
    digits of each name -> rows, and exact name -> row. Names are normalised only for the rows a
    lookup looks at (:func:`_row`), so a first lookup costs a CSV parse, not 5,000
    normalisations."""
    ref = resources.files(__package__ or "bertwatt.backends").joinpath("data")
    text = ref.joinpath("cpu_tdp.csv").read_text(encoding="utf-8")
    rows: list[tuple[str, float, str, str]] = []
    index: dict[str, list[int]] = {}
    exact: dict[str, int] = {}
    skipped = 0
    records = csv.reader(io.StringIO(text))
    head = next(records)
    at = {name: head.index(name) for name in ("model", "tdp_watts", "source", "year")}
    for rec in records:
        try:
            tdp_w = float(rec[at["tdp_watts"]])
        except ValueError:
            tdp_w = math.nan
        if not (math.isfinite(tdp_w) and tdp_w > 0):
            skipped += 1  # kept in the file as published, unusable as a figure
            continue
        model = rec[at["model"]]
        # normalising never creates digits: a row holding a token holds its digit runs
        for run in set(_DIGIT_RUN.findall(model)):
            index.setdefault(run, []).append(len(rows))
        key = " ".join(model.lower().split())
        if key not in exact or rows[exact[key]][1] < tdp_w:  # a tie takes the higher TDP
            exact[key] = len(rows)
        rows.append((model, tdp_w, rec[at["source"]], rec[at["year"]]))
    logger.debug("cpu_tdp.csv: %d usable rows, %d without a usable TDP", len(rows), skipped)
    return tuple(rows), {k: tuple(v) for k, v in index.items()}, exact


@functools.lru_cache(maxsize=4096)
def _row(pos: int) -> _Row:
    """Row ``pos`` of the table with its normalised tokens."""
    model, tdp_w, source, year = _table()[0][pos]
    tokens = _normalise(model)
    return _Row(
        model, tdp_w, source, year, frozenset(tokens), frozenset(filter(_has_digit, tokens))
    )


def lookup_tdp(cpu_model: str) -> TdpRecord | None:
    """Find the TDP of a CPU from its brand string, e.g. ``/proc/cpuinfo``'s "model name".

    The brand string and the table names are normalised ("Intel(R) Xeon(R) Gold 6248 CPU @
    2.50GHz" -> ``intel xeon gold 6248``). The brand's model number (its longest token holding a
    digit) must appear as an exact token in the row; every number token of the row must appear in
    the brand, as must the brand's version tokens (``v4``); rows naming another vendor are
    rejected. Among the rows left, the one sharing the most tokens with the fewest extra wins;
    rows told apart only by a note or clock ("945 (95W)", "945 (125W)") tie, and the higher TDP
    is taken. A table name given exactly matches its own row. A string without a model number
    ("Intel(R) Xeon(R) Processor") matches nothing.

    Args:
        cpu_model: the CPU brand string.

    Returns:
        The matched row, or None when no row matches.
    """
    _rows, index, exact = _table()
    if (pos := exact.get(" ".join(cpu_model.lower().split()))) is not None:
        row = _row(pos)
        return TdpRecord(row.model, row.tdp_w, row.source, row.year, "exact table name")
    tokens = _normalise(cpu_model)
    digits = [t for t in tokens if _has_digit(t)]
    if not digits:
        return None
    primary = max(reversed(digits), key=len)
    if len(primary) < 2:
        return None
    brand = frozenset(tokens)
    versions = {t for t in digits if re.fullmatch(r"v\d+", t)}
    vendor = brand & _VENDORS
    best: tuple[tuple[int, int, float], _Row] | None = None
    for pos in index.get(_longest_digit_run(primary), ()):
        row = _row(pos)
        if primary not in row.digits:
            continue
        if not row.digits <= brand or not versions <= row.tokens:
            continue
        if vendor and (row.tokens & _VENDORS) - vendor:
            continue
        shared = len(row.tokens & brand)
        score = (shared - len(row.tokens - brand), shared, row.tdp_w)
        if best is None or score > best[0]:
            best = (score, row)
    if best is None:
        return None
    row = best[1]
    how = f"model number {primary!r}; {len(row.tokens & brand)}/{len(row.tokens)} row tokens shared"
    return TdpRecord(row.model, row.tdp_w, row.source, row.year, how)
