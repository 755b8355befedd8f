"""Report files: atomic writes, load errors that name the file, merging, CSV export."""

from __future__ import annotations

import csv
import json
import os
import stat
from pathlib import Path

import pytest

from bertwatt.errors import ReportError
from bertwatt.meter import EnergyMeter
from bertwatt.report.io import load_report, merge_reports, write_report, write_text_atomic
from bertwatt.report.models import EnergyReport, new_run_id
from bertwatt.testing import FakeBackend, FakeChannel, FakeClock


def on_host(report: EnergyReport, hostname: str, pid: int = 1) -> EnergyReport:
    """The same measurement as if taken by another process (another run) on ``hostname``."""
    r = report.model_copy(deep=True)
    r.run_id = new_run_id()
    r.node_id = hostname
    r.host.hostname = hostname
    r.host.node_id = hostname
    r.host.pid = pid
    r.hosts = [r.host]
    for c in r.channels:
        c.host = hostname
        c.node_id = hostname
    for u in r.unavailable:
        u.host = hostname
        u.node_id = hostname
    return r


def measure(*channels: FakeChannel, seconds: float = 10.0, phase: str = "train") -> EnergyReport:
    clock = FakeClock()
    backend = FakeBackend(channels=list(channels), clock=clock)
    with EnergyMeter(backends=[backend], clock=clock) as meter, meter.phase(phase):
        clock.advance(seconds)
    return meter.report


# ----------------------------------------------------------------------------- load errors
def _load_error(path: Path) -> ReportError:
    with pytest.raises(ReportError) as info:
        EnergyReport.load(path)
    assert str(path) in str(info.value)
    assert info.value.where == str(path)
    return info.value


def test_missing_file(tmp_path):
    err = _load_error(tmp_path / "nope.json")
    assert "cannot read report" in str(err)


def test_not_json(tmp_path):
    p = tmp_path / "garbage.json"
    p.write_text("{ this is not json", encoding="utf-8")
    assert "not a JSON report (line 1" in str(_load_error(p))


@pytest.mark.parametrize("payload", [[], {"energy_j": 3}, "text", 1])
def test_json_that_is_not_a_report(tmp_path, payload):
    p = tmp_path / "other.json"
    p.write_text(json.dumps(payload), encoding="utf-8")
    assert "not a bertwatt report" in str(_load_error(p))


def test_wrong_schema_version(tmp_path, sample_report):
    data = sample_report.model_dump(mode="json")
    data["schema_version"] = 99
    p = tmp_path / "future.json"
    p.write_text(json.dumps(data), encoding="utf-8")
    err = _load_error(p)
    assert "schema version 99 is newer than this bertwatt reads" in str(err)
    assert "upgrade bertwatt" in err.fix


def test_invalid_field_names_the_field(tmp_path, sample_report):
    data = sample_report.model_dump(mode="json")
    data["channels"][1]["coverage"] = "most of it"
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(data), encoding="utf-8")
    assert "invalid report: channels.1.coverage" in str(_load_error(p))


def test_load_report_function_and_path_types(tmp_path, sample_report):
    p = tmp_path / "r.json"
    write_report(sample_report, str(p))
    assert load_report(p) == sample_report
    assert load_report(str(p), EnergyReport) == sample_report


# ----------------------------------------------------------------------------- atomic writes
def test_atomic_write_creates_directories_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "a" / "b" / "run.json"
    write_text_atomic(target, "first")
    write_text_atomic(target, "second")
    assert target.read_text(encoding="utf-8") == "second"
    assert [p.name for p in target.parent.iterdir()] == ["run.json"]


def test_atomic_write_gives_the_file_the_usual_permissions(tmp_path):
    # a temp file is created owner-only (0600); the report must end up like any file the user
    # writes (0666 minus the umask), or collaborators cannot read a shared run directory
    umask = os.umask(0o022)
    os.umask(umask)
    target = tmp_path / "run.json"
    write_text_atomic(target, "{}")
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


def test_atomic_write_failure_is_report_error_and_cleans_up(tmp_path):
    target = tmp_path / "is-a-dir"
    (target / "child").mkdir(parents=True)
    with pytest.raises(ReportError) as info:
        write_text_atomic(target, "x")
    assert str(target) in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["is-a-dir"]


def test_write_under_a_file_is_report_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(ReportError) as info:
        write_text_atomic(blocker / "run.json", "x")
    assert str(blocker) in str(info.value)


# ----------------------------------------------------------------------------- merge
def test_merge_counts_channels_shared_on_one_host_once():
    a = measure(
        FakeChannel("gpu:0", 100.0, kind="counter"), FakeChannel("gpu:1", 50.0, kind="counter")
    )
    b = on_host(a, a.node_id, pid=2)  # a second rank on the same node, same sensors
    merged = EnergyReport.merge([a, b])
    assert merged.energy_j == pytest.approx(1500.0, rel=1e-12)
    assert sorted(c.name for c in merged.channels) == ["gpu:0", "gpu:1"]
    assert merged.phases["train"].energy_j == pytest.approx(1500.0, rel=1e-12)
    assert any("counted once" in w for w in merged.warnings)
    assert len(merged.hosts) == 2  # two processes
    assert merged.extra["merged_from"] == ["report 1", "report 2"]


def test_merge_adds_different_channels_of_one_host():
    a = measure(FakeChannel("gpu:0", 100.0, kind="counter"))  # rank 0 reads its GPU
    b = on_host(measure(FakeChannel("gpu:1", 200.0, kind="counter")), a.node_id, pid=2)
    merged = merge_reports([a, b])
    assert merged.energy_j == pytest.approx(3000.0, rel=1e-12)
    assert not any("counted once" in w for w in merged.warnings)


def test_merge_sums_different_hosts():
    a = on_host(measure(FakeChannel("gpu:0", 100.0, kind="counter")), "node-a")
    b = on_host(measure(FakeChannel("gpu:0", 300.0, kind="counter")), "node-b")
    merged = merge_reports([a, b])
    assert merged.energy_j == pytest.approx(4000.0, rel=1e-12)
    assert sorted((c.host, c.name) for c in merged.channels) == [
        ("node-a", "gpu:0"),
        ("node-b", "gpu:0"),
    ]
    assert merged.phases["train"].energy_j == pytest.approx(4000.0, rel=1e-12)
    assert merged.phases["train"].channels == {
        "node-a/gpu:0": pytest.approx(1000.0),
        "node-b/gpu:0": pytest.approx(3000.0),
    }
    assert {h.hostname for h in merged.hosts} == {"node-a", "node-b"}
    assert "node-a" in merged.total_basis and "node-b" in merged.total_basis
    # the merged report is a valid report
    assert EnergyReport.model_validate_json(merged.to_json()) == merged


def test_merge_keeps_double_counting_rules_per_host():
    wall = FakeChannel("wall", 400.0, kind="power", scope="system", domain="system")
    a = on_host(measure(wall, FakeChannel("gpu:0", 100.0, kind="counter")), "node-a")
    b = on_host(
        measure(
            FakeChannel("cpu:package-0", 50.0, kind="counter"),
            FakeChannel("cpu:core-0", 30.0, kind="counter", counted=False),
        ),
        "node-b",
    )
    merged = merge_reports([a, b])
    # node-a: the GPU (the wall plug is compared, never added); node-b: package only (core is
    # inside it)
    assert merged.energy_j == pytest.approx(1000.0 + 500.0, rel=1e-12)


def test_merge_status_window_and_errors(sample_report):
    running = sample_report.model_copy(update={"status": "running"})
    later = on_host(sample_report, "node-b").model_copy(
        update={
            "started_at": sample_report.started_at.replace(minute=5),
            "ended_at": sample_report.ended_at.replace(minute=5),
        }
    )
    merged = merge_reports([running, later])
    assert merged.status == "partial"  # one part was still running
    assert merged.started_at == sample_report.started_at
    assert merged.duration_s == pytest.approx(300.0 + sample_report.duration_s)
    assert len(merged.unavailable) == 2  # one per host
    with pytest.raises(ReportError, match="nothing to merge"):
        merge_reports([])
    other = on_host(sample_report, "node-b").model_copy(update={"schema_version": 1})
    with pytest.raises(ReportError, match="schema versions"):
        merge_reports([sample_report, other])


def test_merge_of_nothing_measured_is_none():
    clock = FakeClock()
    with EnergyMeter(backends=[], clock=clock) as meter:
        clock.advance(1.0)
    merged = merge_reports([on_host(meter.report, "a"), on_host(meter.report, "b")])
    assert merged.energy_j is None and merged.energy_kwh is None


# ----------------------------------------------------------------------------- CSV
def test_to_csv_writes_every_channel_timeline(sample_report, tmp_path):
    path = tmp_path / "timeline.csv"
    sample_report.to_csv(path)
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["host", "channel", "offset_s", "energy_j", "power_w"]
    body = rows[1:]
    assert len(body) == sum(len(c.timeline) for c in sample_report.channels)
    assert {r[1] for r in body} == {c.name for c in sample_report.channels}
    assert {r[0] for r in body} == {sample_report.host.hostname}
    gpu = [r for r in body if r[1] == "gpu:0"]
    assert float(gpu[-1][3]) == pytest.approx(sample_report.channel("gpu:0").energy_j, rel=1e-6)
    offsets = [float(r[2]) for r in gpu]
    assert offsets == sorted(offsets) and offsets[0] >= 0.0 and offsets[-1] <= 8.0 + 1e-9


def test_to_csv_failure_is_report_error(sample_report, tmp_path):
    with pytest.raises(ReportError) as info:
        sample_report.to_csv(tmp_path)  # a directory
    assert str(tmp_path) in str(info.value)
