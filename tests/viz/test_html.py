"""The HTML report: parses, self-contained, holds the figures and figures it claims, and renders
to a non-blank page in headless Chromium."""

from __future__ import annotations

import base64
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from imaging import pixel_stats, png_size

from bertwatt.report.models import EnergyReport
from bertwatt.viz._report import fmt_g, fmt_j, fmt_num
from bertwatt.viz.html import render_html


class Page(HTMLParser):
    """Collects tags, attributes, figure ids, image sources and the visible text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.figures: list[str] = []
        self.images: list[str] = []
        self.text: list[str] = []
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "figure":
            self.figures.append(a.get("id") or "")
        if tag == "img":
            self.images.append(a.get("src") or "")
        if tag not in ("img", "meta", "br"):
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        if not self.stack or self.stack[-1] not in ("style", "script"):
            self.text.append(data)


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    assert page.stack == [], f"unclosed tags {page.stack}"
    return page


def visible(page: Page) -> str:
    """The page's text, one space between pieces (none before ':' or '.' after inline tags)."""
    text = " ".join(" ".join(page.text).split())
    return text.replace(" : ", ": ").replace(" . ", ". ")


def test_parses_and_is_self_contained(finetune_report):
    pytest.importorskip("matplotlib")
    page = parse(render_html(finetune_report))
    for tag, attrs in page.tags:
        assert tag not in ("link", "script", "iframe"), tag
        for name, value in attrs.items():
            if name in ("src", "href") and value:
                assert value.startswith("data:"), f"external asset {value[:60]}"
    assert page.figures == ["fig-power"]
    assert len(page.images) == 1
    head, payload = page.images[0].split(",", 1)
    assert head == "data:image/png;base64"
    png = base64.b64decode(payload)
    assert png_size(png) == (1100, 950)
    assert pixel_stats(png)[0] > 0.05


def test_holds_the_report_figures(finetune_report):
    r = finetune_report
    text = visible(parse(render_html(r, figures=False)))
    assert f"bertwatt finetune report: {r.host.hostname}" in text
    assert fmt_j(r.energy_j) in text and f"{fmt_num(r.duration_s)} s" in text
    for ch in r.channels:
        assert ch.name in text and ch.provenance.source in text
        assert fmt_j(ch.energy_j) in text
    assert "ESTIMATED" in text  # the CPU channel is labelled estimated
    for name, ph in r.phases.items():
        times = f" ({ph.count} times)" if ph.count > 1 else ""
        assert f"{name} {fmt_num(ph.duration_s)} s{times} {fmt_j(ph.energy_j)}" in text
        assert fmt_g(r.carbon.phases[name]) in text
    for name, m in r.phase_metrics.items():
        assert f"{name} {fmt_j(m.energy_j)} {m.examples:,} {m.steps:,} {m.tokens_padded:,}" in text
        assert fmt_j(m.j_per_token_padded) in text
    c = r.carbon
    assert fmt_g(r.emissions_g) in text
    assert f"{fmt_num(c.intensity_g_per_kwh)} gCO2e/kWh" in text and c.source in text
    assert str(c.year) in text
    for u in r.unavailable:
        assert f"{u.what}: {u.reason}. Fix: {u.fix}" in text
    for w in r.warnings:
        assert w in text
    assert "Figures left out" in text


def test_no_carbon_says_why(energy_report):
    text = visible(parse(render_html(energy_report, figures=False)))
    assert energy_report.carbon_note in text
    assert "Work done" not in text  # no per-token section for a plain energy report


def test_inference_figures(inference_report):
    text = visible(parse(render_html(inference_report, figures=False)))
    assert "bertwatt inference report" in text
    assert f"J per query {fmt_j(inference_report.j_per_query)}" in text
    assert "queries 100" in text and "batch size 10" in text


def test_text_is_escaped(energy_report):
    energy_report.warnings.append("<script>alert(1)</script> & more")
    page = parse(render_html(energy_report, figures=False))
    assert all(tag != "script" for tag, _ in page.tags)
    assert "<script>alert(1)</script> & more" in visible(page)


def test_a_figure_that_cannot_be_drawn_is_said(energy_report):
    empty = energy_report.model_copy(update={"phases": {}, "channels": [], "timeline": []})
    page = parse(render_html(empty))
    assert page.images == []
    assert "No figure: nothing to plot" in visible(page)


class WallReport(EnergyReport):
    """A report carrying a software-vs-wall comparison (schema 2 adds ``wall``)."""

    wall: dict[str, Any] | None = None


def test_software_vs_wall_when_present(energy_report):
    r = WallReport.model_validate(
        {**energy_report.model_dump(), "wall": {"run": {"wall_j": 1234.5678, "ratio": 1.4}}}
    )
    text = visible(parse(render_html(r, figures=False)))
    assert "Software sensors vs wall meter" in text
    assert "run.wall_j 1,234.6" not in text  # 4 significant figures
    assert "run.wall_j 1,235" in text and "run.ratio 1.4" in text
    assert "Software sensors vs wall" not in visible(
        parse(render_html(energy_report, figures=False))
    )


class RunReport(EnergyReport):
    """A report with schema 2's ``run`` and ``segments``."""

    run: dict[str, Any] | None = None
    segments: list[dict[str, Any]] = []


def test_what_was_run(energy_report):
    r = RunReport.model_validate(
        {
            **energy_report.model_dump(),
            "run": {"model_name": "bert-tiny", "flops_estimate": 2.5e12},
            "segments": [{"index": 0}, {"index": 1}],
        }
    )
    text = visible(parse(render_html(r, figures=False)))
    assert "What was run value model_name bert-tiny flops_estimate 2.5e+12" in text
    assert "Resumed run: 2 segments." in text
    assert "What was run" not in visible(parse(render_html(energy_report, figures=False)))


def test_repr_html_is_the_html_report(energy_report):
    assert energy_report._repr_html_() == render_html(energy_report)


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(
    _chromium() is None,
    reason="headless Chromium is not installed (Debian: apt-get install -y chromium)",
)
def test_renders_in_headless_chromium(finetune_report, tmp_path):
    pytest.importorskip("matplotlib")
    page = tmp_path / "report.html"
    page.write_text(render_html(finetune_report), encoding="utf-8")
    shot = tmp_path / "shot.png"
    profile = tmp_path / "profile"
    proc = subprocess.run(
        [
            str(_chromium()),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--hide-scrollbars",
            "--window-size=1000,1400",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.exists(), proc.stderr[-2000:]
    data = shot.read_bytes()
    assert png_size(data) == (1000, 1400)
    inked, colours = pixel_stats(data)
    assert inked > 0.05, "the page rendered (almost) blank"
    assert colours > 100, "no figure or styled content rendered"
    top = _band(data, 0, 120)
    assert top > 0.01, "no heading rendered at the top of the page"


def _band(data: bytes, y0: int, y1: int) -> float:
    import io

    from matplotlib import image

    img = image.imread(io.BytesIO(data), format="png")[y0:y1, :, :3]
    return float(((img * 255).min(axis=2) < 128).mean())


def test_written_page_round_trips(finetune_report, tmp_path):
    p = Path(tmp_path / "r.html")
    p.write_text(render_html(finetune_report, figures=False), encoding="utf-8")
    assert parse(p.read_text(encoding="utf-8")).figures == []
