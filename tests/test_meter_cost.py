"""What a window costs: counters read exactly at the start edge, nothing slept at start, the
report built when first read (files still written at stop), mean-power channels integrated as
means (issue #11, "Cost near zero"). Timings themselves live in benchmarks/bench_startup.py."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from bertwatt.backends.base import Channel, Provenance
from bertwatt.backends.estimate import EstimateBackend
from bertwatt.clock import SystemClock
from bertwatt.errors import EstimateWarning
from bertwatt.meter import EnergyMeter
from bertwatt.testing import FakeBackend, FakeChannel
from bertwatt.timeline import ChannelTimeline

S = 1_000_000_000


def test_start_reads_every_counter_at_the_start_edge() -> None:
    # A slow read (20 ms) would end before the start edge if start() took the sampler's first
    # read; now the edge is marked first and that read is the edge's read, taken after it.
    backend = FakeBackend(
        name="gpu",
        channels=[FakeChannel("g", 100.0, kind="counter")],
        clock=SystemClock(),
        read_delay_s=0.02,
    )
    meter = EnergyMeter(backends=[backend])
    meter.start()
    try:
        w = meter._window
        assert w is not None
        (tl,) = w.timelines
        t_start = w.mark_t[w.start_mark]
        assert tl.first_t is not None and tl.first_t >= t_start
        assert tl.marks[w.start_mark] == 0.0  # resolved by that read: nothing before the edge
        assert backend.reads == 1  # one read at start, not a first read plus an edge read
    finally:
        meter.stop(warn=False)


def test_nothing_is_slept_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_sleep(seconds: float) -> None:
        raise AssertionError(f"time.sleep({seconds}) called at start")

    estimate = EstimateBackend(tdp_w=100.0, cpu_count=2)
    monkeypatch.setattr(time, "sleep", no_sleep)
    meter = EnergyMeter(backends=[estimate])
    meter.start()
    monkeypatch.undo()
    report = meter.stop(warn=False)
    ch = report.channel("cpu:estimate")
    assert ch.energy_j is not None and math.isfinite(ch.energy_j)
    assert "probe() sleeps for nothing" in ch.provenance.assumptions["utilisation"]


def test_the_first_estimate_read_needs_no_elapsed_interval() -> None:
    backend = EstimateBackend(tdp_w=100.0, cpu_count=2, utilisation="system")
    assert backend.probe().channels
    values, errors = backend.read()  # right after probe(): utilisation since boot
    assert errors is None and 0.0 < values[0] <= 100.0


_LAZY = """
import json, sys, warnings
from bertwatt import EnergyMeter
from bertwatt.testing import FakeBackend, FakeChannel

fb = FakeBackend(channels=[FakeChannel("c", 100.0, kind="counter"),
                           FakeChannel("e", 10.0, kind="power", estimated=True)])
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    with EnergyMeter(backends=[fb]) as meter:
        pass
after_exit = "pydantic" in sys.modules
report = meter.report
print(json.dumps({
    "pydantic_after_exit": after_exit,
    "pydantic_after_read": "pydantic" in sys.modules,
    "same": meter.report is report,
    "channels": sorted(c.name for c in report.channels),
    "warnings": [f"{w.category.__name__}: {w.message}" for w in caught],
    "warned_at": [w.filename for w in caught],
}))
"""


def test_leaving_a_with_block_builds_no_report_until_it_is_read() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _LAZY], capture_output=True, text=True, check=True, timeout=120
    )
    facts = json.loads(out.stdout)
    assert facts["pydantic_after_exit"] is False
    assert facts["pydantic_after_read"] is True
    assert facts["same"] is True
    assert facts["channels"] == ["c", "e"]
    # the warnings still come when the block ends, at the user's line
    assert any(w.startswith("EstimateWarning: bertwatt: e estimated") for w in facts["warnings"])
    assert all(f == "<string>" for f in facts["warned_at"])


def test_output_is_still_written_at_stop(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    fb = FakeBackend(channels=[FakeChannel("c", 100.0, kind="counter")])
    with EnergyMeter(backends=[fb], output=path) as meter:
        pass
    assert path.exists()  # before anything reads meter.report
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["run_id"] == meter.report.run_id
    assert [c["name"] for c in data["channels"]] == ["c"]


def test_the_report_of_a_with_block_matches_an_explicit_stop() -> None:
    fb = FakeBackend(channels=[FakeChannel("c", 100.0, kind="counter")])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # a generous edge timeout: on a loaded machine the edge read must not be given up on
        with EnergyMeter(backends=[fb], edge_timeout_s=10.0) as lazy:
            time.sleep(0.05)
    rep = lazy.report
    assert rep.channel("c").energy_j == pytest.approx(100.0 * rep.duration_s, rel=0.05)
    assert rep.status == "complete"


def test_estimate_warning_comes_at_the_end_of_the_block() -> None:
    fb = FakeBackend(channels=[FakeChannel("e", 10.0, kind="power", estimated=True)])
    with pytest.warns(EstimateWarning, match="e estimated"), EnergyMeter(backends=[fb]):
        pass


def test_a_mean_power_channel_is_integrated_as_the_mean_over_each_interval() -> None:
    prov = Provenance(kind="estimated", source="test", scope="cpu-package")
    mean = Channel(
        name="cpu:estimate", domain="cpu", kind="power", provenance=prov, mean_since_last_read=True
    )
    instant = Channel(name="cpu:instant", domain="cpu", kind="power", provenance=prov)
    a, b = ChannelTimeline(mean), ChannelTimeline(instant)
    for tl in (a, b):
        tl.add(0, 0.0)  # nothing known before the first interval
        tl.add(S, 50.0)  # 50 W on average over [0, 1 s]
        tl.add(2 * S, 10.0)
    assert a.energy_j == pytest.approx(60.0)  # 50 J + 10 J
    assert b.energy_j == pytest.approx(25.0 + 30.0)  # trapezoids
