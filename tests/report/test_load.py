"""One loader for every kind: v1 fixtures from bertwatt 0.1, v2 round trips, kind dispatch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import bertwatt
from bertwatt.errors import ReportError
from bertwatt.report import (
    SCHEMA_VERSION,
    EnergyReport,
    FinetuneReport,
    InferenceReport,
    ResumeInfo,
    RunInfo,
    Segment,
    load_report,
)
from bertwatt.report.v1 import guess_kind, upgrade_v1, v1_run_id

V1 = Path(__file__).resolve().parents[1] / "fixtures" / "v1"
KINDS = {"energy": EnergyReport, "finetune": FinetuneReport, "inference": InferenceReport}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_v1_fixture_loads_as_its_kind(kind):
    raw = json.loads((V1 / f"{kind}.json").read_text(encoding="utf-8"))
    assert raw["schema_version"] == 1 and "kind" not in raw  # written by bertwatt 0.1
    report = load_report(V1 / f"{kind}.json")
    assert type(report) is KINDS[kind]
    assert report.kind == kind
    assert report.schema_version == SCHEMA_VERSION == 2
    assert report.node_id == raw["host"]["hostname"]
    assert len(report.run_id) == 32 and int(report.run_id, 16) >= 0
    assert report.extra["upgraded_from_schema"] == 1
    assert report.energy_j == pytest.approx(raw["energy_j"])
    assert report.summary()


def test_v1_energy_fixture_keeps_its_figures():
    report = bertwatt.load_report(V1 / "energy.json")
    assert report.energy_j == pytest.approx(2150.0)
    assert report.phases["train"].energy_j == pytest.approx(1290.0)
    assert report.carbon is not None and report.carbon.zone == "FR"
    assert report.emissions_g == pytest.approx(2150.0 / 3.6e6 * report.carbon.intensity_g_per_kwh)


def test_v1_finetune_fixture_keeps_its_work():
    report = FinetuneReport.load(V1 / "finetune.json")
    raw = json.loads((V1 / "finetune.json").read_text(encoding="utf-8"))
    assert (report.examples, report.steps) == (raw["examples"], raw["steps"])
    assert report.phase_metrics["run"].j_per_example == pytest.approx(
        raw["phase_metrics"]["run"]["j_per_example"]
    )


def test_energy_load_reads_every_kind_and_returns_the_files_class():
    assert type(EnergyReport.load(V1 / "finetune.json")) is FinetuneReport
    assert type(EnergyReport.load(V1 / "inference.json")) is InferenceReport


def test_a_subclass_load_refuses_another_kind():
    with pytest.raises(ReportError, match="this is a energy report, not a FinetuneReport"):
        FinetuneReport.load(V1 / "energy.json")
    with pytest.raises(ReportError, match="not a InferenceReport"):
        InferenceReport.load(V1 / "finetune.json")


def test_v1_run_id_is_stable_for_copies_of_one_window():
    raw = json.loads((V1 / "energy.json").read_text(encoding="utf-8"))
    later = {**raw, "ended_at": "2030-01-01T00:00:00Z", "energy_j": 1.0}
    assert v1_run_id(raw) == v1_run_id(later)
    other = {**raw, "host": {**raw["host"], "pid": raw["host"]["pid"] + 1}}
    assert v1_run_id(other) != v1_run_id(raw)


def test_guess_kind_and_upgrade_do_not_touch_the_input():
    assert guess_kind({"queries": 3}) == "inference"
    assert guess_kind({"phase_metrics": {}}) == "finetune"
    assert guess_kind({}) == "energy"
    raw = {"schema_version": 1, "host": {"hostname": "h"}, "started_at": "x"}
    out = upgrade_v1(raw)
    assert raw == {"schema_version": 1, "host": {"hostname": "h"}, "started_at": "x"}
    assert out["schema_version"] == 2 and out["node_id"] == "h" and out["kind"] == "energy"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_v2_round_trip_of_every_kind(kind, tmp_path):
    report = load_report(V1 / f"{kind}.json")
    path = tmp_path / f"{kind}.json"
    report.to_json(path)
    again = load_report(path)
    assert type(again) is KINDS[kind] and again == report
    assert json.loads(path.read_text(encoding="utf-8"))["kind"] == kind


def test_v2_fields_round_trip(tmp_path, sample_report):
    t0, t1 = sample_report.started_at, sample_report.ended_at
    report = sample_report.model_copy(
        update={
            "status": "interrupted",
            "run": RunInfo(
                command=["python", "train.py", "--token", "***"],
                exit_code=None,
                signal="SIGTERM",
                cwd="/w",
                dataset_sizes={"train": 10},
                flops_estimate=1.5e12,
                flops_basis="6 x parameters x tokens",
            ),
            "segments": [
                Segment(
                    index=0,
                    run_id="a" * 32,
                    started_at=t0,
                    ended_at=t1,
                    steps=5,
                    energy_j=3.0,
                    ended_by="interrupted",
                ),
            ],
            "resume": ResumeInfo(
                from_step=5,
                previous_energy_j=3.0,
                lost_energy_upper_j=0.5,
                basis="last checkpoint's figures",
            ),
        }
    )
    path = tmp_path / "r.json"
    report.to_json(path)
    again = load_report(path)
    assert again == report
    assert again.status == "interrupted" and again.resume.lost_energy_upper_j == 0.5
    text = again.summary()
    assert "resumed at step 5" in text and "up to 0.5 J" in text


def test_run_ids_are_fresh_uuid4_hex():
    data = load_report(V1 / "energy.json").model_dump()
    del data["run_id"]
    a, b = EnergyReport.model_validate(data), EnergyReport.model_validate(data)
    assert a.run_id != b.run_id
    assert all(len(r) == 32 and r[12] == "4" for r in (a.run_id, b.run_id))


@pytest.mark.parametrize(
    ("version", "message"),
    [
        (3, "schema version 3 is newer than this bertwatt reads (versions 1 to 2)"),
        (0, "not a bertwatt report (schema_version '0')"),
        ("2", "not a bertwatt report (schema_version '2')"),
        (True, "not a bertwatt report"),
    ],
)
def test_bad_schema_versions(tmp_path, version, message):
    data = json.loads((V1 / "energy.json").read_text(encoding="utf-8"))
    data["schema_version"] = version
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ReportError) as info:
        load_report(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_unknown_kind_is_one_clear_error(tmp_path):
    path = tmp_path / "r.json"
    shutil.copy(V1 / "energy.json", path)
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(schema_version=2, kind="training")
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ReportError, match="unknown report kind 'training'") as info:
        load_report(path)
    assert info.value.where == str(path)


def test_energy_dict_validated_as_finetune_takes_the_finetune_kind():
    data = load_report(V1 / "energy.json").model_dump()
    ft = FinetuneReport.model_validate({**data, "examples": 3})
    assert ft.kind == "finetune" and ft.examples == 3
    with pytest.raises(ValueError, match="kind"):
        FinetuneReport.model_validate({**data, "kind": "inference"})


def test_a_v1_merge_output_is_not_taken_for_its_first_part():
    raw = json.loads((V1 / "energy.json").read_text(encoding="utf-8"))
    merged_v1 = {**raw, "extra": {"merged_from": 2}}
    assert v1_run_id(merged_v1) != v1_run_id(raw)
