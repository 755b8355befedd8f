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
import math
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TdpRecord", "lookup_tdp"]


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
def _data() -> bytes:
    """The packaged table (UTF-8, a few hundred kB), read once per process, kept as bytes:
    a lookup searches it for a few substrings and decodes only the lines it finds."""
    path = Path(__file__).with_name("data") / "cpu_tdp.csv"
    if path.is_file():  # an installed package or a source tree: no importlib.resources (15 ms)
        return path.read_bytes()
    from importlib import resources  # imported from a zip archive

    ref = resources.files(__package__ or "bertwatt.backends").joinpath("data")
    return ref.joinpath("cpu_tdp.csv").read_bytes()


@functools.cache
def _columns() -> tuple[int, int, int, int]:
    """Positions of model, tdp_watts, source and year in the table's header."""
    head = next(csv.reader([_data().partition(b"\n")[0].decode("utf-8")]))
    at = tuple(head.index(name) for name in ("model", "tdp_watts", "source", "year"))
    return at  # type: ignore[return-value]


def _lines_containing(needle: str, *, digits: bool = False) -> list[str]:
    """The data lines of the table holding ``needle`` (ASCII) as given, in lower case, upper
    case or capitalised, in table order, once each; with ``digits``, only where ``needle`` is a
    whole run of digits. An empty or non-ASCII needle gives every line.

    A lookup parses only these lines, not the 4,900 rows of the table: a first lookup in a
    process costs a substring search of the bytes (the window's start-up budget)."""
    data = _data()
    body = data.find(b"\n") + 1
    if not needle or not needle.isascii():
        return data[body:].decode("utf-8").splitlines()
    key = needle.encode("ascii")
    if digits:
        spans = []
        at = data.find(key, body)
        while at >= 0:
            end = at + len(key)
            if not data[at - 1 : at].isdigit() and not data[end : end + 1].isdigit():
                spans.append(at)
            at = data.find(key, end)
    else:  # the spellings a table name uses; a case-insensitive regex scan costs ~10x more
        spans = []
        for form in {key, key.lower(), key.upper(), key.capitalize()}:
            at = data.find(form, body)
            while at >= 0:
                spans.append(at)
                at = data.find(form, at + len(form))
        spans.sort()
    found: dict[int, str] = {}
    for at in spans:
        start = data.rfind(b"\n", 0, at) + 1
        if start not in found:
            stop = data.find(b"\n", at)
            found[start] = data[start : stop if stop >= 0 else len(data)].decode("utf-8")
    return [line.rstrip("\r") for line in found.values()]


@functools.lru_cache(maxsize=4096)
def _row(line: str) -> _Row | None:
    """One data line of the table with its normalised tokens; None when it has no usable TDP
    (such rows stay in the file as published)."""
    rec = next(csv.reader([line]), None)
    at_model, at_tdp, at_source, at_year = _columns()
    if rec is None or len(rec) <= max(_columns()):
        return None
    try:
        tdp_w = float(rec[at_tdp])
    except ValueError:
        return None
    if not (math.isfinite(tdp_w) and tdp_w > 0):
        return None
    model = rec[at_model]
    tokens = _normalise(model)
    return _Row(
        model,
        tdp_w,
        rec[at_source],
        rec[at_year],
        frozenset(tokens),
        frozenset(filter(_has_digit, tokens)),
    )


def _exact(name: str) -> _Row | None:
    """The row whose model is ``name`` (case and runs of blanks ignored); a tie takes the higher
    TDP."""
    words = name.split()
    if not words:
        return None
    key = " ".join(name.lower().split())
    runs = _DIGIT_RUN.findall(name)
    if runs:  # the row holds the same digits: find it by its longest run, a plain search
        lines = _lines_containing(max(runs, key=len), digits=True)
    else:
        longest = max((w for w in name.split() if w.isascii()), key=len, default="")
        lines = _lines_containing(longest)
    at_model = _columns()[0]
    lines = [
        line
        for line in lines
        for rec in csv.reader([line])
        if len(rec) > at_model and " ".join(rec[at_model].lower().split()) == key
    ]
    rows = [r for r in map(_row, lines) if r is not None]
    return max(rows, key=lambda r: r.tdp_w, default=None)


@functools.lru_cache(maxsize=256)  # a pure function of its argument: the table never changes
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
    if (exact := _exact(cpu_model)) is not None:
        return TdpRecord(exact.model, exact.tdp_w, exact.source, exact.year, "exact table name")
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
    for line in _lines_containing(_longest_digit_run(primary), digits=True):
        row = _row(line)
        if row is None or primary not in row.digits:
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
