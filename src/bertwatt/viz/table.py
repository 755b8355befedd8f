"""Tables for the terminal: rich when writing to a terminal, plain aligned text otherwise.

Plain output contains printable characters, spaces and newlines only (no colour codes, no
box-drawing escape sequences), so it can be piped, logged and diffed. rich is imported only when
the stream is a terminal and rich is installed; without rich a terminal gets the plain table.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import IO, Any

__all__ = ["is_terminal", "plain_table", "print_report", "print_table", "report_tables"]


def is_terminal(stream: IO[str] | None = None) -> bool:
    """True when ``stream`` (default stdout) is a terminal."""
    stream = stream if stream is not None else sys.stdout
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _clean(cell: object) -> str:
    text = str(cell)
    return "".join(ch if ch.isprintable() else " " for ch in text)


def _numeric(cell: str) -> bool:
    return cell == "-" or (
        bool(cell) and (cell[0].isdigit() or (cell[0] in "+-x" and len(cell) > 1))
    )


def _numeric_columns(rows: Sequence[Sequence[str]], n: int) -> list[bool]:
    """Right-align a column (not the first) when every cell in it is a number."""
    return [
        i > 0 and bool(rows) and all(_numeric(r[i]) for r in rows if i < len(r)) for i in range(n)
    ]


def plain_table(columns: Sequence[str], rows: Sequence[Sequence[object]], title: str = "") -> str:
    """Columns aligned with spaces; numbers (cells starting with a digit, sign, x or '-') right."""
    cols = [_clean(c) for c in columns]
    body = [[_clean(c) for c in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in body if i < len(r)]) for i, c in enumerate(cols)]

    right = _numeric_columns(body, len(cols))

    def line(cells: Sequence[str], header: bool = False) -> str:
        parts = []
        for i, w in enumerate(widths):
            c = cells[i] if i < len(cells) else ""
            parts.append(c.rjust(w) if right[i] and not header else c.ljust(w))
        return "  ".join(parts).rstrip()

    out = [title] if title else []
    out.append(line(cols, header=True))
    out.append("  ".join("-" * w for w in widths))
    out.extend(line(r) for r in body)
    return "\n".join(out)


def print_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    title: str = "",
    file: IO[str] | None = None,
    rich: bool | None = None,
) -> None:
    """Print a table: rich on a terminal (``rich=None``), plain otherwise or with ``rich=False``."""
    stream = file if file is not None else sys.stdout
    use_rich = is_terminal(stream) if rich is None else rich
    if use_rich:
        console = _console(stream)
        if console is not None:
            console.print(_rich_table(columns, rows, title))
            return
    print(plain_table(columns, rows, title), file=stream)


def _console(stream: IO[str]) -> Any:
    try:
        from rich.console import Console
    except ImportError:
        return None
    return Console(file=stream, highlight=False, soft_wrap=False)


def _rich_table(columns: Sequence[str], rows: Sequence[Sequence[object]], title: str) -> Any:
    from rich.table import Table

    table = Table(title=title or None, title_justify="left", header_style="bold")
    cells = [[str(c) for c in r] for r in rows]
    right = _numeric_columns(cells, len(columns))
    for i, c in enumerate(columns):
        table.add_column(str(c), justify="right" if right[i] else "left", overflow="fold")
    for r in rows:
        table.add_row(*[str(c) for c in r])
    return table


def report_tables(report: Any) -> list[tuple[str, list[str], list[list[str]]]]:
    """The report as (title, columns, rows) tables: totals, channels, phases, and work figures."""
    from bertwatt.viz._report import field, fmt_g, fmt_j, fmt_num, kind_of

    tables = []
    carbon = field(report, "carbon")
    totals = [
        ["energy", fmt_j(field(report, "energy_j"))],
        ["duration", f"{fmt_num(field(report, 'duration_s'))} s"],
        ["mean power", _w(field(report, "mean_power_w"))],
        ["total", str(field(report, "total_basis") or "-")],
    ]
    if field(report, "emissions_g") is not None and carbon is not None:
        totals.append(
            [
                "emissions",
                f"{fmt_g(report.emissions_g)} ({fmt_num(carbon.intensity_g_per_kwh)} g/kWh, "
                f"zone {carbon.zone or '-'}, {carbon.year or 'year n/a'}, {carbon.source}; "
                f"PUE {fmt_num(carbon.pue)})",
            ]
        )
    elif field(report, "carbon_note"):
        totals.append(["emissions", str(report.carbon_note)])
    host = field(report, "host")
    title = f"bertwatt {kind_of(report)} report"
    if host is not None and field(report, "started_at") is not None:
        title += f": {host.hostname}, {report.started_at:%Y-%m-%d %H:%M:%S} UTC"
    tables.append((title, ["", "value"], totals))
    chans = field(report, "channels") or []
    if chans:
        rows = []
        for ch in chans:
            prov = ch.provenance
            rows.append(
                [
                    ch.name + ("" if ch.counted else " (not added)"),
                    fmt_j(ch.energy_j) if ch.energy_j is not None else "not measured",
                    _w(ch.mean_power_w),
                    _w(ch.peak_power_w),
                    f"{ch.coverage:.1%}",
                    ("measured" if prov.kind == "measured" else "ESTIMATED") + f": {prov.source}",
                ]
            )
        tables.append(
            ("channels", ["channel", "energy", "mean", "peak", "coverage", "source"], rows)
        )
    phases = field(report, "phases") or {}
    if phases:
        from bertwatt.viz._report import phase_emissions

        em = phase_emissions(report)
        rows = [
            [
                name,
                fmt_j(ph.energy_j),
                f"{fmt_num(ph.duration_s)} s" + (f" x{ph.count}" if ph.count > 1 else ""),
                _w(ph.mean_power_w),
                fmt_g(em[name]) if name in em else "-",
            ]
            for name, ph in phases.items()
        ]
        tables.append(("phases", ["phase", "energy", "time", "mean", "emissions"], rows))
    metrics = field(report, "phase_metrics") or {}
    if metrics:
        rows = [
            [
                name,
                fmt_j(m.energy_j),
                f"{m.examples:,}",
                f"{m.tokens_padded:,}",
                f"{m.tokens_nonpadding:,}",
                fmt_j(m.j_per_example),
                fmt_j(m.j_per_token_padded),
                fmt_j(m.j_per_token_nonpadding),
            ]
            for name, m in metrics.items()
        ]
        tables.append(
            (
                "work (J/token: per token processed, padding included)",
                [
                    "phase",
                    "energy",
                    "examples",
                    "tokens",
                    "real tokens",
                    "J/example",
                    "J/token",
                    "J/real token",
                ],
                rows,
            )
        )
    if kind_of(report) == "inference":
        rows = [
            ["queries", f"{field(report, 'queries') or 0:,}"],
            ["batch size", str(field(report, "batch_size") or "-")],
            ["J/query", fmt_j(field(report, "j_per_query"))],
            ["J/token", fmt_j(field(report, "j_per_token_padded"))],
            ["J/real token", fmt_j(field(report, "j_per_token_nonpadding"))],
        ]
        tables.append(("inference", ["", "value"], rows))
    problems = [
        [u.what, u.reason + (f" Fix: {u.fix}" if u.fix else "")]
        for u in field(report, "unavailable") or []
    ]
    problems += [["warning", w] for w in field(report, "warnings") or []]
    if problems:
        tables.append(("not measured and warnings", ["what", "detail"], problems))
    return tables


def _w(value: float | None) -> str:
    from bertwatt.viz._report import fmt_num

    return "-" if value is None else f"{fmt_num(value)} W"


def print_report(report: Any, *, file: IO[str] | None = None, rich: bool | None = None) -> None:
    """Print a report as tables (rich on a terminal, plain otherwise)."""
    stream = file if file is not None else sys.stdout
    for i, (title, cols, rows) in enumerate(report_tables(report)):
        if i:
            print(file=stream)
        print_table(cols, rows, title=title, file=stream, rich=rich)
