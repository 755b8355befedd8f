"""One self-contained HTML page per report: no external assets, figures embedded as data URIs.

The page holds the totals, the figure of :func:`bertwatt.viz.plot.plot_report` (when matplotlib
is installed; otherwise a line saying so and how to install it), the sensors with their
provenance and assumptions, energy and emissions per phase, the per-example and per-token
figures of fine-tuning and inference reports, the software-vs-wall comparison when the report has
one, the carbon intensity used, and every warning and unmeasured item with its fix. Each
embedded figure is an ``<img>`` inside a ``<figure id="fig-...">``, so tools can find it.
"""

from __future__ import annotations

import base64
from html import escape
from typing import Any

from bertwatt.viz._report import field, fmt_g, fmt_j, fmt_num, kind_of, phase_emissions

__all__ = ["render_html"]

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1100px;
color:#1d1d1f;background:#fff;line-height:1.45;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;
border-bottom:2px solid #4e79a7;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.92rem}
th,td{border:1px solid #d0d0d6;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#eef2f8}td.n{text-align:right;font-variant-numeric:tabular-nums}
.est{color:#a33;font-weight:600}.ok{color:#276b27;font-weight:600}
.totals{display:flex;gap:1rem;flex-wrap:wrap}.totals div{background:#eef2f8;border-radius:6px;
padding:.6rem 1rem}.totals b{display:block;font-size:1.3rem}
figure{margin:1rem 0}figure img{max-width:100%;height:auto;border:1px solid #d0d0d6}
.warn{background:#fff4e0;border-left:4px solid #e8a33d;padding:.4rem .8rem;margin:.3rem 0}
.muted{color:#666;font-size:.9rem}
"""


def _td(value: str, numeric: bool = False) -> str:
    return f'<td class="n">{escape(value)}</td>' if numeric else f"<td>{escape(value)}</td>"


def _table(cols: list[str], rows: list[list[str]], numeric_from: int = 1) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(_td(c, i >= numeric_from) for i, c in enumerate(r)) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _w(v: float | None) -> str:
    return "-" if v is None else f"{fmt_num(v)} W"


def _figure(report: Any) -> tuple[str, list[str]]:
    from bertwatt.viz.plot import plot_report

    try:
        png = plot_report(report, width_px=1100, height_px=950)
    except Exception as err:  # a figure that cannot be drawn is said on the page, not fatal
        return f'<p class="warn">No figure: {escape(str(err))}</p>', []
    data = base64.b64encode(png).decode("ascii")
    return (
        '<figure id="fig-power"><img alt="power per channel over time with phases shaded, '
        'cumulative energy, and energy per phase" src="data:image/png;base64,'
        + data
        + '"><figcaption>Power per channel over time (phases shaded), cumulative energy, and '
        "energy (and emissions) per phase.</figcaption></figure>",
        ["fig-power"],
    )


def _sensors(report: Any) -> str:
    rows = []
    for ch in field(report, "channels") or []:
        p = ch.provenance
        tag = "measured" if p.kind == "measured" else "ESTIMATED"
        rows.append(
            [
                ch.name + ("" if ch.counted else " (not added)"),
                tag,
                p.source + (f" ({p.method})" if p.method else ""),
                p.scope,
                "not measured" if ch.energy_j is None else fmt_j(ch.energy_j),
                _w(ch.mean_power_w),
                _w(ch.peak_power_w),
                f"{ch.coverage:.1%}",
                f"{ch.samples:,}",
            ]
        )
    if not rows:
        return "<p>No sensor delivered a reading.</p>"
    out = _table(
        ["channel", "kind", "source", "scope", "energy", "mean", "peak", "coverage", "samples"],
        rows,
        numeric_from=4,
    )
    for ch in report.channels:
        a = ch.provenance.assumptions
        notes = ch.provenance.notes
        if not a and not notes:
            continue
        out += f"<h3>{escape(ch.name)}: assumptions</h3>"
        if a:
            out += _table(["input", "value"], [[k, v] for k, v in a.items()], numeric_from=9)
        if notes:
            out += "<ul>" + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>"
    return out


def _phases(report: Any) -> str:
    phases = field(report, "phases") or {}
    if not phases:
        return "<p>No phases were recorded.</p>"
    em = phase_emissions(report)
    rows = [
        [
            name,
            f"{fmt_num(ph.duration_s)} s" + (f" ({ph.count} times)" if ph.count > 1 else ""),
            fmt_j(ph.energy_j),
            _w(ph.mean_power_w),
            f"{ph.coverage:.1%}",
            fmt_g(em[name]) if name in em else "-",
        ]
        for name, ph in phases.items()
    ]
    return _table(["phase", "time", "energy", "mean power", "coverage", "emissions"], rows)


def _work(report: Any) -> str:
    kind = kind_of(report)
    if kind == "finetune":
        metrics = field(report, "phase_metrics") or {}
        rows = [
            [
                name,
                fmt_j(m.energy_j),
                f"{m.examples:,}",
                f"{m.steps:,}",
                f"{m.tokens_padded:,}",
                f"{m.tokens_nonpadding:,}",
                "-" if m.padding_share is None else f"{m.padding_share:.1%}",
                fmt_j(m.j_per_example),
                fmt_j(m.j_per_step),
                fmt_j(m.j_per_token_padded),
                fmt_j(m.j_per_token_nonpadding),
            ]
            for name, m in metrics.items()
        ]
        head = (
            f"<p>Figures are {escape(report.figures or 'not stated')}. J/token counts every "
            "token processed, padding included; J/real token only non-padding tokens.</p>"
        )
        table = _table(
            [
                "phase",
                "energy",
                "examples",
                "steps",
                "tokens",
                "real tokens",
                "padding",
                "J/example",
                "J/step",
                "J/token",
                "J/real token",
            ],
            rows,
        )
        pad = field(report, "padding")
        extra = ""
        if pad is not None and pad.remedies:
            extra = (
                "<h3>Padding</h3><ul>"
                + "".join(f"<li>{escape(r)}</li>" for r in pad.remedies)
                + "</ul>"
            )
        return head + table + extra
    if kind == "inference":
        rows = [
            ["queries", f"{report.queries:,}"],
            ["batches", f"{report.batches:,}"],
            ["batch size", "-" if report.batch_size is None else str(report.batch_size)],
            ["tokens processed", f"{report.tokens_padded:,}"],
            ["non-padding tokens", f"{report.tokens_nonpadding:,}"],
            ["J per query", fmt_j(report.j_per_query)],
            ["J per token", fmt_j(report.j_per_token_padded)],
            ["J per non-padding token", fmt_j(report.j_per_token_nonpadding)],
        ]
        return f"<p>Figures are {escape(report.figures or 'not stated')}.</p>" + _table(
            ["", "value"], rows
        )
    return ""


def _flatten(prefix: str, value: Any, out: list[list[str]]) -> None:
    if hasattr(value, "model_dump"):
        value = value.model_dump()
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _flatten(f"{prefix}[{i}]", v, out)
    elif isinstance(value, float):
        out.append([prefix, fmt_num(value)])
    elif value is not None:
        out.append([prefix, str(value)])


def _wall(report: Any) -> str:
    wall = field(report, "wall")
    if wall is None:
        return ""
    rows: list[list[str]] = []
    _flatten("", wall, rows)
    if not rows:
        return ""
    return "<h2>Software sensors vs wall meter</h2>" + _table(["figure", "value"], rows)


def _run(report: Any) -> str:
    run = field(report, "run")
    segments = field(report, "segments") or []
    rows: list[list[str]] = []
    if run is not None:
        _flatten("", run, rows)
    out = _table(["", "value"], rows) if rows else ""
    if len(segments) > 1:
        out += f"<p>Resumed run: {len(segments)} segments.</p>"
    return "<h2>What was run</h2>" + out if out else ""


def _carbon(report: Any) -> str:
    c = field(report, "carbon")
    if c is None or field(report, "emissions_g") is None:
        note = field(report, "carbon_note") or "emissions not computed: no carbon intensity given"
        return f"<p>{escape(str(note))}</p>"
    rows = [
        ["emissions", fmt_g(report.emissions_g)],
        ["carbon intensity", f"{fmt_num(c.intensity_g_per_kwh)} gCO2e/kWh ({c.kind})"],
        ["zone", c.zone or "-"],
        ["source", c.source],
        ["year", "-" if c.year is None else str(c.year)],
        ["PUE", f"{fmt_num(c.pue)} ({c.pue_source})"],
        ["IT energy", f"{fmt_num(c.it_energy_kwh)} kWh"],
        ["facility energy", f"{fmt_num(c.facility_energy_kwh)} kWh"],
    ]
    notes = "".join(f'<p class="muted">{escape(n)}</p>' for n in c.notes)
    return _table(["", "value"], rows) + notes


def _problems(report: Any) -> str:
    items = []
    for u in field(report, "unavailable") or []:
        fix = f" <b>Fix:</b> {escape(u.fix)}" if u.fix else ""
        items.append(f'<div class="warn"><b>{escape(u.what)}</b>: {escape(u.reason)}.{fix}</div>')
    for w in field(report, "warnings") or []:
        items.append(f'<div class="warn">{escape(w)}</div>')
    return "".join(items) or "<p>None.</p>"


def render_html(report: Any, *, title: str | None = None, figures: bool = True) -> str:
    """The report (any kind) as one self-contained HTML document.

    Args:
        report: an EnergyReport, FinetuneReport or InferenceReport.
        title: the page title (default: kind, host and start time).
        figures: embed the figure (needs matplotlib); False leaves it out, saying so.
    """
    kind = kind_of(report)
    host = report.host
    heading = title or (
        f"bertwatt {kind} report: {host.hostname}, {report.started_at:%Y-%m-%d %H:%M:%S} UTC"
    )
    measured = all(c.provenance.kind == "measured" for c in report.channels if c.counted)
    any_counted = any(c.counted for c in report.channels)
    badge = (
        '<span class="ok">measured</span>'
        if measured and any_counted
        else '<span class="est">ESTIMATED (at least in part)</span>'
        if any_counted
        else '<span class="est">nothing measured</span>'
    )
    totals = [
        ("energy", fmt_j(report.energy_j)),
        ("time", f"{fmt_num(report.duration_s)} s"),
        ("mean power", _w(report.mean_power_w)),
    ]
    if field(report, "emissions_g") is not None:
        totals.append(("emissions", fmt_g(report.emissions_g)))
    cards = "".join(f"<div>{escape(k)}<b>{escape(v)}</b></div>" for k, v in totals)
    if figures:
        fig_html, _ids = _figure(report)
    else:
        fig_html = '<p class="muted">Figures left out (figures=False).</p>'
    status = field(report, "status") or "complete"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(heading)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(heading)}</h1>",
        f'<p class="muted">status {escape(str(status))}; figures {badge}; total: '
        f"{escape(report.total_basis)}; sampled every {escape(fmt_num(report.interval_s))} s; "
        f"bertwatt {escape(host.bertwatt_version)}, Python {escape(host.python)}</p>",
        f'<div class="totals">{cards}</div>',
        fig_html,
        _run(report),
        "<h2>Sensors and provenance</h2>",
        _sensors(report),
        "<h2>Energy and emissions per phase</h2>",
        _phases(report),
    ]
    work = _work(report)
    if work:
        parts += ["<h2>Work done: per example and per token</h2>", work]
    parts += [_wall(report), "<h2>Carbon</h2>", _carbon(report)]
    parts += ["<h2>Warnings and what was not measured</h2>", _problems(report), "</body></html>"]
    return "\n".join(p for p in parts if p)
