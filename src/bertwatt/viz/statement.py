"""An energy and carbon statement for a paper's appendix, in Markdown or LaTeX.

The statement says on what hardware the work ran, what was measured and how (sensor, method,
scope, sampling interval, coverage), which figures are estimates and on what assumptions, the
energy and emissions per phase and in total, the carbon intensity used (zone, source, year), the
PUE and where it came from, and the bertwatt and Python versions. Every number in it is a value
of the report, printed to 4 significant figures (coverage as a percentage with one decimal);
nothing is filled in: what the report does not hold is said to be missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from bertwatt.errors import ConfigError
from bertwatt.viz._report import field as get
from bertwatt.viz._report import fmt_num, kind_of, phase_emissions

__all__ = ["energy_statement"]


def _n(value: float | None) -> str:
    return "n/a" if value is None else fmt_num(value)


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


@dataclass
class _Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    bullets: list[str] = field(default_factory=list)
    table: tuple[list[str], list[list[str]]] | None = None


def _hardware(report: Any) -> _Section:
    hosts = get(report, "hosts") or [report.host]
    seen: dict[str, int] = {}
    for h in hosts:
        cpu = h.cpu_model or "CPU model not recorded"
        cpus = f" ({h.logical_cpus} logical CPUs)" if h.logical_cpus else ""
        gpus = ", ".join(h.gpu_names) if h.gpu_names else "no GPU"
        desc = f"{cpu}{cpus}; {gpus}; {h.os}"
        seen[desc] = seen.get(desc, 0) + 1
    sec = _Section("Hardware")
    for desc, count in seen.items():
        sec.bullets.append(desc + (f" ({count} processes)" if count > 1 else ""))
    return sec


def _measured(report: Any) -> tuple[_Section, _Section | None]:
    sec = _Section("What was measured and how")
    counted = [c for c in report.channels if c.counted]
    estimated = [c for c in counted if c.provenance.kind == "estimated"]
    if not counted:
        sec.paragraphs.append("No energy sensor delivered a reading; no energy was measured.")
    elif estimated and len(estimated) == len(counted):
        sec.paragraphs.append("All energy figures are ESTIMATES, not measurements.")
    elif estimated:
        sec.paragraphs.append("Energy figures are partly ESTIMATED (marked below).")
    else:
        sec.paragraphs.append("All energy figures are measured by hardware sensors.")
    sec.paragraphs.append(
        f"The window lasted {_n(report.duration_s)} s, from {report.started_at:%Y-%m-%d %H:%M:%S}"
        f" to {report.ended_at:%Y-%m-%d %H:%M:%S} UTC, sampled every {_n(report.interval_s)} s. "
        f"Total: {report.total_basis}."
    )
    for c in report.channels:
        p = c.provenance
        tag = "measured" if p.kind == "measured" else "ESTIMATED"
        how = f"{p.source}" + (f" ({p.method})" if p.method else "")
        added = "" if c.counted else "; inside or overlapping another channel, not added"
        energy = "no reading" if c.energy_j is None else f"{_n(c.energy_j)} J"
        sec.bullets.append(
            f"{c.name} ({p.scope}): {tag} by {how}; {energy}; coverage {_pct(c.coverage)} of the "
            f"window{added}"
        )
    for u in get(report, "unavailable") or []:
        sec.bullets.append(f"not measured: {u.what} ({u.reason})")
    est_sec = None
    if estimated:
        est_sec = _Section("Estimates and their assumptions")
        for c in estimated:
            for key, value in c.provenance.assumptions.items():
                est_sec.bullets.append(f"{c.name}: {key} = {value}")
            for note in c.provenance.notes:
                est_sec.bullets.append(f"{c.name}: {note}")
    return sec, est_sec


def _phases(report: Any) -> _Section:
    sec = _Section("Energy and emissions per phase")
    em = phase_emissions(report)
    has_em = report.emissions_g is not None
    cols = ["phase", "time (s)", "energy (J)", "energy (kWh)"] + (
        ["emissions (gCO2e)"] if has_em else []
    )
    rows = []
    for name, ph in (report.phases or {}).items():
        row = [name, _n(ph.duration_s), _n(ph.energy_j), _n(ph.energy_kwh)]
        if has_em:
            row.append(_n(em.get(name)))
        rows.append(row)
    total = ["whole window", _n(report.duration_s), _n(report.energy_j), _n(report.energy_kwh)]
    if has_em:
        total.append(_n(report.emissions_g))
    rows.append(total)
    sec.table = (cols, rows)
    if report.phases:
        sec.paragraphs.append(
            "Phases may overlap or leave parts of the window out, so they need not add up to "
            "the whole window."
        )
    if kind_of(report) == "finetune":
        share = report.padding_share
        sec.paragraphs.append(
            f"Training work: {report.steps:,} optimizer steps, {report.examples:,} examples, "
            f"{report.tokens_padded:,} tokens processed including padding, "
            f"{report.tokens_nonpadding:,} non-padding tokens"
            + (f" (padding {_pct(share)})." if share is not None else ".")
        )
    elif kind_of(report) == "inference":
        sec.paragraphs.append(
            f"Inference: {report.queries:,} queries in {report.batches:,} batches"
            + (f" of {report.batch_size}" if report.batch_size else "")
            + f", {_n(report.j_per_query)} J per query."
        )
    return sec


def _carbon(report: Any) -> _Section:
    sec = _Section("Carbon")
    c = report.carbon
    if c is None or report.emissions_g is None:
        note = report.carbon_note or "emissions not computed: no carbon intensity was given"
        sec.paragraphs.append(note.rstrip(".") + ".")
        return sec
    sec.paragraphs.append(
        f"Emissions: {_n(report.emissions_g)} gCO2e, from {_n(c.it_energy_kwh)} kWh of IT "
        f"energy times a PUE of {_n(c.pue)} ({c.pue_source}), {_n(c.facility_energy_kwh)} kWh at "
        f"the facility, at a carbon intensity of {_n(c.intensity_g_per_kwh)} gCO2e/kWh "
        f"({c.kind}; zone {c.zone or 'not stated'}; source: {c.source}; "
        f"year {c.year if c.year is not None else 'not stated'})."
    )
    for part in get(c, "parts") or []:
        sec.bullets.append(
            f"{get(part, 'name') or 'part'}: {_n(get(part, 'emissions_g'))} gCO2e at "
            f"{_n(get(part, 'intensity_g_per_kwh'))} gCO2e/kWh, zone "
            f"{get(part, 'zone') or 'not stated'}, PUE {_n(get(part, 'pue'))}"
        )
    for note in c.notes:
        sec.bullets.append(note)
    return sec


def _software(report: Any) -> _Section:
    h = report.host
    sec = _Section("Software")
    sec.paragraphs.append(
        f"Measured with bertwatt {h.bertwatt_version} on Python {h.python} "
        f"(report schema version {report.schema_version})."
    )
    warnings = get(report, "warnings") or []
    if warnings:
        sec.bullets.extend(f"warning: {w}" for w in warnings)
    return sec


_RUN_FIELDS = (
    ("model_name", "model"),
    ("model_class", "model class"),
    ("parameters_total", "parameters"),
    ("parameters_trainable", "trainable parameters"),
    ("precision", "precision"),
    ("max_seq_length", "maximum sequence length"),
    ("batch_size", "batch size"),
    ("gradient_accumulation_steps", "gradient accumulation steps"),
    ("world_size", "processes"),
)


def _run(report: Any) -> _Section | None:
    """What was run (schema 2's ``run``), and the segments of a resumed run."""
    run = get(report, "run")
    segments = get(report, "segments") or []
    if run is None and len(segments) < 2:
        return None
    sec = _Section("What was run")
    for key, label in _RUN_FIELDS:
        value = get(run, key)
        if value is None:
            continue
        text = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else value
        sec.bullets.append(f"{label}: {text}")
    sizes = get(run, "dataset_sizes") or {}
    if sizes:
        sec.bullets.append("data set sizes: " + ", ".join(f"{k} {v:,}" for k, v in sizes.items()))
    flops = get(run, "flops_estimate")
    if flops is not None:
        basis = get(run, "flops_basis") or "basis not stated"
        sec.bullets.append(f"training FLOPs: {_n(flops)} (an ESTIMATE: {basis})")
    command = get(run, "command")
    if command:
        sec.bullets.append("command: " + " ".join(str(c) for c in command))
    if len(segments) > 1:
        sec.paragraphs.append(
            f"The run was interrupted and resumed: {len(segments)} segments, whose energies add "
            "up to the totals below."
        )
    return sec if sec.bullets or sec.paragraphs else None


def _sections(report: Any) -> list[_Section]:
    measured, estimates = _measured(report)
    out = [_hardware(report)]
    run = _run(report)
    if run is not None:
        out.append(run)
    out.append(measured)
    if estimates is not None:
        out.append(estimates)
    out += [_phases(report), _carbon(report), _software(report)]
    return out


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _markdown(sections: list[_Section], title: str) -> str:
    lines = [f"## {title}", ""]
    for s in sections:
        lines.append(f"**{s.title}.**")
        lines.append("")
        for p in s.paragraphs:
            lines += [p, ""]
        if s.bullets:
            lines += [f"- {b}" for b in s.bullets] + [""]
        if s.table is not None:
            cols, rows = s.table
            lines.append("| " + " | ".join(cols) + " |")
            lines.append(
                "|" + "|".join("---" if i == 0 else "---:" for i in range(len(cols))) + "|"
            )
            lines += ["| " + " | ".join(_md_escape(c) for c in r) + " |" for r in rows]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


_LATEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def _tex(text: str) -> str:
    out = "".join(_LATEX.get(ch, ch) for ch in text)
    return out.replace("CO2e", r"CO\textsubscript{2}e").replace("²", r"\textsuperscript{2}")


def _latex(sections: list[_Section], title: str) -> str:
    lines = [f"\\subsection*{{{_tex(title)}}}", ""]
    for s in sections:
        lines.append(f"\\paragraph{{{_tex(s.title)}.}}")
        for p in s.paragraphs:
            lines += [_tex(p), ""]
        if s.bullets:
            lines.append("\\begin{itemize}")
            lines += [f"  \\item {_tex(b)}" for b in s.bullets]
            lines += ["\\end{itemize}", ""]
        if s.table is not None:
            cols, rows = s.table
            lines.append("\\begin{tabular}{l" + "r" * (len(cols) - 1) + "}")
            lines.append("\\hline")
            lines.append(" & ".join(_tex(c) for c in cols) + r" \\")
            lines.append("\\hline")
            lines += [" & ".join(_tex(c) for c in r) + r" \\" for r in rows]
            lines += ["\\hline", "\\end{tabular}", ""]
    return "\n".join(lines).rstrip() + "\n"


def energy_statement(
    report: Any,
    fmt: Literal["md", "latex"] = "md",
    *,
    title: str = "Energy and carbon statement",
) -> str:
    """The statement of ``report`` (any kind) as Markdown (``"md"``) or LaTeX (``"latex"``)."""
    if fmt not in ("md", "latex"):
        raise ConfigError(f"statement format must be 'md' or 'latex', not {fmt!r}")
    sections = _sections(report)
    return _markdown(sections, title) if fmt == "md" else _latex(sections, title)
