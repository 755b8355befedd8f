"""Truthful merge (bertwatt.report.merge / merge_work): each rule, and each function alone.

Reports are real ones, measured by EnergyMeter on bertwatt.testing fakes with a FakeClock.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from bertwatt.carbon import CarbonIntensity
from bertwatt.errors import ReportError
from bertwatt.meter import EnergyMeter
from bertwatt.report import EnergyReport, FinetuneReport, Segment, load_report, merge_reports
from bertwatt.report.merge import (
    channel_groups,
    merge_paths,
    merged_run_id,
    merged_status,
    node_total,
    total_timeline,
)
from bertwatt.report.merge_parts import (
    Part,
    check_copy_clocks,
    check_parts,
    clock_notes,
    drop_copies,
    make_parts,
)
from bertwatt.report.merge_work import carbon_part, merge_carbon, result_class
from bertwatt.testing import FakeBackend, FakeChannel, FakeClock

V1 = Path(__file__).resolve().parents[1] / "fixtures" / "v1"


def measure(
    clock: FakeClock,
    watts: float | list = 100.0,
    seconds: float = 10.0,
    *,
    name: str = "gpu:0",
    phase: str | None = "train",
    carbon: object = None,
    extra_channels: tuple = (),
) -> EnergyReport:
    channels = [FakeChannel(name, watts, kind="counter"), *extra_channels]
    backend = FakeBackend(channels=channels, clock=clock)
    with EnergyMeter(backends=[backend], clock=clock, carbon=carbon) as meter:
        if phase:
            with meter.phase(phase):
                clock.advance(seconds)
        else:
            clock.advance(seconds)
    return meter.report


def on_node(report: EnergyReport, node: str) -> EnergyReport:
    r = report.model_copy(deep=True)
    r.node_id = node
    r.host.node_id = node
    for c in r.channels:
        c.node_id = node
    return r


# ----------------------------------------------------------------------- the example
def test_sequential_runs_add_instead_of_keeping_one():
    clock = FakeClock()
    a = measure(clock, 662.0, 0.01, phase=None)  # 6.62 J
    clock.advance(60)
    b = measure(clock, 1258.0, 0.01, phase=None)  # 12.58 J
    merged = EnergyReport.merge([a, b])
    assert (a.energy_j, b.energy_j) == (pytest.approx(6.62), pytest.approx(12.58))
    assert merged.energy_j == pytest.approx(19.20)
    ch = merged.channel("gpu:0")
    assert ch.energy_j == pytest.approx(19.20)
    assert ch.coverage == pytest.approx(0.02 / merged.duration_s)  # the gap is not covered


def test_overlapping_windows_of_one_node_count_the_overlap_once():
    clock = FakeClock()
    trace = [(0, 100.0), (3, 200.0), (7, 50.0), (12, 300.0)]
    ba = FakeBackend(channels=[FakeChannel("gpu:0", trace, kind="counter")], clock=clock)
    bb = FakeBackend(channels=[FakeChannel("gpu:0", trace, kind="counter")], clock=clock)
    ma, mb = EnergyMeter(backends=[ba], clock=clock), EnergyMeter(backends=[bb], clock=clock)
    with ma:
        clock.advance(5)
        mb.__enter__()
        clock.advance(5)
    clock.advance(5)
    mb.__exit__(None, None, None)
    merged = merge_reports([ma.report, mb.report])
    assert merged.energy_j == pytest.approx(3 * 100 + 4 * 200 + 5 * 50 + 3 * 300)
    assert merged.duration_s == pytest.approx(15.0)
    assert merged.channel("gpu:0").coverage == pytest.approx(1.0)
    assert any("5 s measured by more than one report, counted once" in w for w in merged.warnings)


def test_different_nodes_add_even_with_the_same_channel_name():
    clock = FakeClock()
    a = on_node(measure(clock, 100.0), "node-a")
    b = on_node(measure(clock, 300.0), "node-b")
    b = b.model_copy(update={"started_at": a.started_at, "ended_at": a.ended_at})
    merged = merge_reports([a, b])
    assert merged.energy_j == pytest.approx(4000.0)
    assert sorted((c.node_id, c.name) for c in merged.channels) == [
        ("node-a", "gpu:0"),
        ("node-b", "gpu:0"),
    ]
    assert merged.phases["train"].channels == {
        "node-a/gpu:0": pytest.approx(1000.0),
        "node-b/gpu:0": pytest.approx(3000.0),
    }
    assert "node-a: sum of gpu:0" in merged.total_basis
    assert merged.node_id == "node-a,node-b"


def test_phases_merge_by_name_on_one_utc_clock():
    clock = FakeClock()
    a = measure(clock, 100.0, 10.0, phase="train")
    clock.advance(20)
    b = measure(clock, 200.0, 5.0, phase="train")
    merged = merge_reports([a, b])
    ph = merged.phases["train"]
    assert ph.energy_j == pytest.approx(2000.0)
    assert ph.duration_s == pytest.approx(15.0) and ph.count == 2
    # intervals count from the merged start (a's start), not from each part's own start
    assert ph.intervals[0] == pytest.approx((0.0, 10.0))
    assert ph.intervals[1] == pytest.approx((30.0, 35.0))
    assert merged.started_at == a.started_at and merged.ended_at == b.ended_at
    assert merged.started_at.utcoffset() == timedelta(0)
    # the job timeline runs on the same clock: flat across the gap, then rising
    at = dict(merged.timeline)
    assert merged.timeline[-1] == (pytest.approx(35.0), pytest.approx(2000.0))
    mid = [e for t, e in merged.timeline if 12.0 < t < 28.0]
    assert mid and all(e == pytest.approx(1000.0) for e in mid)
    assert len(at) <= 1001


def test_carbon_is_kept_per_part_and_the_summary_says_they_differ():
    clock = FakeClock()
    fr = measure(clock, 100.0, carbon=CarbonIntensity.zone("FR"))
    de = measure(clock, 100.0, carbon=CarbonIntensity.zone("DE"))
    merged = merge_reports([fr, de], names=["fr.json", "de.json"])
    assert merged.emissions_g == pytest.approx(fr.emissions_g + de.emissions_g)
    c = merged.carbon
    assert c.kind == "merged" and c.zone is None
    assert [(p.name, p.zone) for p in c.parts] == [("fr.json", "FR"), ("de.json", "DE")]
    assert c.parts[0].emissions_g == pytest.approx(fr.emissions_g)
    assert "different carbon intensities" in c.notes[0]
    text = merged.summary()
    assert "added per part" in text and "fr.json" in text and "zone DE" in text


def test_carbon_of_parts_with_the_same_intensity_stays_plain():
    clock = FakeClock()
    a = measure(clock, 100.0, carbon=CarbonIntensity.zone("FR"))
    b = measure(clock, 50.0, carbon=CarbonIntensity.zone("FR"))
    merged = merge_reports([a, b])
    assert merged.carbon.kind == "static" and merged.carbon.zone == "FR"
    assert merged.carbon.intensity_g_per_kwh == pytest.approx(a.carbon.intensity_g_per_kwh)
    assert merged.emissions_g == pytest.approx(a.emissions_g + b.emissions_g)
    assert merged.carbon.phases["train"] == pytest.approx(merged.emissions_g)


def test_a_part_without_carbon_leaves_the_total_uncomputed_and_says_which():
    clock = FakeClock()
    a = measure(clock, 100.0, carbon=CarbonIntensity.zone("FR"))
    b = measure(clock, 100.0)
    merged = merge_reports([a, b], names=["a.json", "b.json"])
    assert merged.emissions_g is None
    assert "emissions not computed for b.json" in merged.carbon_note
    assert len(merged.carbon.parts) == 1
    assert "emissions not computed for b.json" in merged.summary()


def test_copies_of_one_run_count_once_and_the_newest_is_kept():
    clock = FakeClock()
    a = measure(clock, 100.0)
    checkpoint = a.model_copy(
        update={
            "status": "running",
            "ended_at": a.ended_at - timedelta(seconds=4),
            "duration_s": 6.0,
            "energy_j": 600.0,
        }
    )
    merged = merge_reports([checkpoint, a, a], names=["ckpt", "final", "final-again"])
    assert merged.energy_j == pytest.approx(1000.0)
    assert merged.status == "complete"
    assert "ckpt is an older copy of the same run as final: counted once" in merged.warnings
    assert "final-again is a duplicate of final: counted once" in merged.warnings
    assert merged.extra["merged_from"] == ["final"]


def test_a_resumed_run_includes_the_interrupted_one():
    clock = FakeClock()
    first = measure(clock, 100.0).model_copy(update={"status": "interrupted"})
    resumed = measure(clock, 100.0)
    seg = Segment(
        index=0,
        run_id=first.run_id,
        started_at=first.started_at,
        ended_at=first.ended_at,
        steps=10,
        energy_j=1000.0,
        ended_by="interrupted",
    )
    resumed = resumed.model_copy(update={"segments": [seg]})
    merged = merge_reports([first, resumed], names=["first", "resumed"])
    assert merged.energy_j == pytest.approx(1000.0)
    assert "first is included in resumed: counted once" in merged.warnings


def test_a_merge_output_merged_again_does_not_double_count():
    clock = FakeClock()
    a, b = measure(clock, 100.0), measure(clock, 50.0)
    ab = merge_reports([a, b])
    again = merge_reports([ab, a])
    assert again.energy_j == pytest.approx(1500.0)
    assert merge_reports([ab]).energy_j == pytest.approx(ab.energy_j)


def test_finetune_reports_merge_into_a_finetune_report():
    ft = load_report(V1 / "finetune.json")
    later = ft.model_copy(
        update={
            "run_id": "f" * 32,
            "started_at": ft.started_at + timedelta(hours=1),
            "ended_at": ft.ended_at + timedelta(hours=1),
        }
    )
    merged = merge_reports([ft, later])
    assert isinstance(merged, FinetuneReport) and merged.kind == "finetune"
    assert merged.examples == 2 * ft.examples and merged.steps == 2 * ft.steps
    assert merged.tokens_padded == 2 * ft.tokens_padded
    assert merged.energy_j == pytest.approx(2 * ft.energy_j)
    run = merged.phase_metrics["run"]
    assert run.energy_j == pytest.approx(merged.energy_j)
    assert run.j_per_example == pytest.approx(merged.energy_j / run.examples)
    train = merged.phase_metrics["train"]
    assert train.energy_j == pytest.approx(merged.phases["train"].energy_j)
    assert train.j_per_token_padded == pytest.approx(train.energy_j / train.tokens_padded)
    assert merged.padding.tokens_padding == merged.tokens_padded - merged.tokens_nonpadding
    assert merged.figures.startswith("ESTIMATED")
    assert any("step_energy" in w and "not combined" in w for w in merged.warnings)


def test_inference_reports_merge_into_an_inference_report():
    inf = load_report(V1 / "inference.json")
    later = inf.model_copy(
        update={
            "run_id": "e" * 32,
            "started_at": inf.started_at + timedelta(minutes=1),
            "ended_at": inf.ended_at + timedelta(minutes=1),
        }
    )
    merged = merge_reports([inf, later])
    assert merged.kind == "inference" and merged.queries == 2 * inf.queries
    assert merged.j_per_query == pytest.approx(merged.phases["inference"].energy_j / merged.queries)
    assert merged.j_per_query == pytest.approx(inf.j_per_query)


def test_mixed_kinds():
    ft, en = load_report(V1 / "finetune.json"), load_report(V1 / "energy.json")
    assert merge_reports([ft, en]).kind == "finetune"
    inf = load_report(V1 / "inference.json")
    assert merge_reports([ft, inf]).kind == "energy"


def test_the_merged_report_is_valid_and_round_trips(tmp_path):
    clock = FakeClock()
    merged = merge_reports([measure(clock), measure(clock, 20.0)])
    merged.to_json(tmp_path / "m.json")
    assert load_report(tmp_path / "m.json") == merged


# ----------------------------------------------------------------------- bad input
def test_nothing_to_merge_and_mismatched_names():
    with pytest.raises(ReportError, match="nothing to merge"):
        merge_reports([])
    clock = FakeClock()
    with pytest.raises(ReportError, match="1 names given for 2 reports"):
        merge_reports([measure(clock), measure(clock)], names=["x"])


def test_different_schema_versions_name_the_files():
    clock = FakeClock()
    a, b = measure(clock), measure(clock)
    old = b.model_copy(update={"schema_version": 1})
    with pytest.raises(ReportError) as info:
        merge_reports([a, old], names=["new.json", "old.json"])
    assert "version 1: old.json; version 2: new.json" in str(info.value)


def test_a_future_version_in_memory_is_refused():
    clock = FakeClock()
    future = measure(clock).model_copy(update={"schema_version": 9})
    with pytest.raises(ReportError, match="schema version 9 is newer"):
        merge_reports([future], names=["f.json"])


def test_copies_whose_clocks_disagree_are_refused():
    clock = FakeClock()
    a = measure(clock)
    skewed = a.model_copy(
        update={
            "started_at": a.started_at + timedelta(hours=2),
            "ended_at": a.ended_at + timedelta(hours=2),
        }
    )
    with pytest.raises(ReportError, match="the clocks that wrote them disagree") as info:
        merge_reports([a, skewed], names=["n1.json", "n2.json"])
    assert "n1.json" in str(info.value) and "n2.json" in str(info.value)


def test_nodes_that_never_overlap_are_warned_about_by_file():
    clock = FakeClock()
    a = on_node(measure(clock), "node-a")
    clock.advance(3600)
    b = on_node(measure(clock), "node-b")
    merged = merge_reports([a, b], names=["a.json", "b.json"])
    warning = next(w for w in merged.warnings if "do not overlap in time" in w)
    assert "a.json (node node-a) and b.json (node node-b)" in warning
    assert merged.energy_j == pytest.approx(2000.0)  # still added: different nodes


# ----------------------------------------------------------------------- small functions
def test_make_parts_names_and_windows():
    clock = FakeClock()
    r = measure(clock)
    (p,) = make_parts([r])
    assert p.name == "report 1" and p.end - p.start == pytest.approx(10.0)
    assert p.node == r.node_id


def test_check_parts_accepts_sound_reports():
    clock = FakeClock()
    check_parts(make_parts([measure(clock), measure(clock)]))


def test_drop_copies_keeps_distinct_runs():
    clock = FakeClock()
    parts = make_parts([measure(clock), measure(clock)])
    kept, notes = drop_copies(parts)
    assert kept == parts and notes == []


def test_check_copy_clocks_allows_the_same_start():
    clock = FakeClock()
    r = measure(clock)
    check_copy_clocks(make_parts([r, r]))


def test_clock_notes_for_a_wall_clock_jump():
    clock = FakeClock()
    r = measure(clock)
    jumped = r.model_copy(update={"ended_at": r.ended_at + timedelta(minutes=5)})
    (note,) = clock_notes(make_parts([jumped], names=["j.json"]))
    assert note.startswith("j.json: the wall clock moved 300.0 s")


def test_channel_groups_key_by_node_and_name():
    clock = FakeClock()
    a, b = on_node(measure(clock), "x"), on_node(measure(clock), "y")
    groups = channel_groups(make_parts([a, b]))
    assert sorted(groups) == [("x", "gpu:0"), ("y", "gpu:0")]


def test_node_total_rules():
    clock = FakeClock()
    wall = FakeChannel("wall", 400.0, kind="power", scope="system")
    inner = FakeChannel("core", 30.0, kind="counter", counted=False)
    r = measure(clock, 100.0, extra_channels=(wall, inner))
    total, basis, added = node_total(r.channels)
    # issue #10: the wall meter is compared apart, never added to the components
    assert total == pytest.approx(1000.0) and "wall meter wall compared apart" in basis
    assert [c.name for c in added] == ["gpu:0"]
    total, basis, added = node_total([c for c in r.channels if c.name == "wall"])
    assert total == pytest.approx(4000.0) and basis.startswith("wall meter only")
    assert [c.name for c in added] == ["wall"]
    total, basis, _ = node_total([c for c in r.channels if c.name != "wall"])
    assert total == pytest.approx(1000.0) and basis == "sum of gpu:0"
    assert node_total([]) == (None, "no counted channel was measured", [])


def test_total_timeline_ends_at_the_total():
    clock = FakeClock()
    r = measure(clock)
    tl = total_timeline(r.channels, 10.0, 1000.0)
    assert tl[0] == (0.0, 0.0) and tl[-1] == (10.0, 1000.0)
    assert tl[500][1] == pytest.approx(500.0)
    assert total_timeline([], 10.0, None) == []


def test_merged_status_and_run_id():
    clock = FakeClock()
    r = measure(clock)
    parts = make_parts([r, r.model_copy(update={"status": "interrupted"})])
    assert merged_status(parts) == "interrupted"
    assert merged_status(make_parts([r])) == "complete"
    assert merged_status(make_parts([r.model_copy(update={"status": "running"})])) == "partial"
    assert merged_run_id(parts) == merged_run_id(list(reversed(parts)))
    assert len(merged_run_id(parts)) == 32


def test_result_class():
    ft, en = load_report(V1 / "finetune.json"), load_report(V1 / "energy.json")
    inf = load_report(V1 / "inference.json")
    assert result_class(make_parts([ft, ft])) == "finetune"
    assert result_class(make_parts([inf])) == "inference"
    assert result_class(make_parts([en, inf])) == "energy"


def test_carbon_part_scales_to_the_energy_used():
    en = load_report(V1 / "energy.json")
    (p,) = make_parts([en], names=["e.json"])
    row = carbon_part(p, en.energy_j / 2)
    assert row["emissions_g"] == pytest.approx(en.emissions_g / 2)
    assert row["zone"] == "FR" and row["name"] == "e.json"


def test_merge_carbon_without_any_carbon():
    clock = FakeClock()
    parts = make_parts([measure(clock)])
    out = merge_carbon(parts, {0: 1000.0}, 1000.0, {})
    assert out["emissions_g"] is None and out["carbon"] is None
    assert out["carbon_note"].startswith("emissions not computed for any part")


def test_part_is_a_dataclass_with_utc_window():
    clock = FakeClock()
    r = measure(clock)
    p = Part("x", r, 0)
    assert p.start == r.started_at.timestamp()


# ----------------------------------------------------------------------- files
def test_merge_paths_reads_a_directory_and_skips_merge_outputs(tmp_path):
    clock = FakeClock()
    a, b = measure(clock, 100.0), measure(clock, 50.0)
    a.to_json(tmp_path / "a.json")
    b.to_json(tmp_path / "b.json")
    b.to_json(tmp_path / "b-copy.json")  # the same run twice
    (tmp_path / "notes.json").write_text(json.dumps({"hello": 1}), encoding="utf-8")
    (tmp_path / "readme.txt").write_text("not json", encoding="utf-8")
    first = merge_paths([tmp_path])
    assert first.report.energy_j == pytest.approx(1500.0)
    first.report.to_json(tmp_path / "merged.json")
    again = merge_paths([tmp_path])
    assert again.report.energy_j == pytest.approx(1500.0)
    skipped = {p.name: why for p, why in again.skipped}
    assert skipped == {
        "merged.json": "an earlier merge output",
        "notes.json": "not a bertwatt report",
    }
    assert [f.name for f in again.files] == ["a.json", "b-copy.json", "b.json"]
    assert any("duplicate" in w for w in again.report.warnings)


def test_merge_paths_explicit_files_and_exclude(tmp_path):
    clock = FakeClock()
    a, b = measure(clock, 100.0), measure(clock, 50.0)
    a.to_json(tmp_path / "a.json")
    b.to_json(tmp_path / "b.json")
    merge_reports([a, b]).to_json(tmp_path / "out.json")
    res = merge_paths([tmp_path], exclude=[tmp_path / "out.json"])
    assert res.skipped == [] and res.report.energy_j == pytest.approx(1500.0)
    res = merge_paths([tmp_path / "a.json", tmp_path / "out.json"])  # named: always used
    assert res.report.energy_j == pytest.approx(1500.0)  # a is inside out.json: once


def test_merge_paths_errors_name_the_file(tmp_path):
    with pytest.raises(ReportError, match="no report to merge"):
        merge_paths([tmp_path])
    bad = tmp_path / "bad.json"
    data = load_report(V1 / "energy.json").model_dump(mode="json")
    data["energy_j"] = -1.0
    bad.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ReportError) as info:
        merge_paths([tmp_path])
    assert str(bad) in str(info.value) and "negative" in str(info.value)


def test_merge_paths_of_v1_fixtures_of_every_kind():
    res = merge_paths([V1])
    assert len(res.files) == 3
    total = sum(load_report(f).energy_j for f in res.files)
    assert res.report.energy_j == pytest.approx(total)


def test_newest_copies_prefers_the_latest_end_then_complete():
    from bertwatt.report.merge_parts import newest_copies

    clock = FakeClock()
    r = measure(clock)
    running = r.model_copy(update={"status": "running"})
    kept, notes = newest_copies(make_parts([running, r], names=["ckpt", "final"]))
    assert [p.name for p in kept] == ["final"]
    assert notes == ["ckpt is an older copy of the same run as final: counted once"]


def test_drop_included_drops_runs_listed_by_another_report():
    from bertwatt.report.merge_parts import drop_included

    clock = FakeClock()
    a, b = measure(clock), measure(clock)
    outer = b.model_copy(update={"extra": {"merged_run_ids": [a.run_id, b.run_id]}})
    kept, notes = drop_included(make_parts([a, outer], names=["a", "m"]))
    assert [p.name for p in kept] == ["m"] and notes == ["a is included in m: counted once"]


def test_a_real_checkpoint_and_the_final_report_of_one_window_count_once(tmp_path):
    clock = FakeClock()
    backend = FakeBackend(channels=[FakeChannel("gpu:0", 100.0, kind="counter")], clock=clock)
    out = tmp_path / "run.json"
    with EnergyMeter(backends=[backend], clock=clock, output=out) as meter:
        clock.advance(4.0)
        meter.checkpoint()
        (tmp_path / "ckpt.json").write_bytes(out.read_bytes())
        clock.advance(6.0)
    ckpt, final = load_report(tmp_path / "ckpt.json"), load_report(out)
    assert ckpt.run_id == final.run_id and ckpt.status == "running"
    assert ckpt.energy_j == pytest.approx(400.0) and final.energy_j == pytest.approx(1000.0)
    res = merge_paths([tmp_path])
    assert res.report.energy_j == pytest.approx(1000.0)
    assert res.report.status == "complete"
    assert any("older copy of the same run" in w for w in res.report.warnings)


def test_merge_channel_alone_recomputes_coverage_and_sums_counters():
    from bertwatt.report.merge import merge_channel

    clock = FakeClock()
    a = measure(clock, 100.0)
    clock.advance(10)
    b = measure(clock, 100.0)
    parts = make_parts([a, b])
    members = [(p, p.report.channels[0]) for p in parts]
    ch, u = merge_channel("vm", members, parts[0].start, 30.0)
    assert ch.energy_j == pytest.approx(2000.0) and u.covered_s == pytest.approx(20.0)
    assert ch.coverage == pytest.approx(20.0 / 30.0)
    assert ch.samples == a.channels[0].samples + b.channels[0].samples
    assert ch.node_id == "vm" and ch.mean_power_w == pytest.approx(100.0)
    offsets = [t for t, _, _ in ch.timeline]
    assert offsets == sorted(offsets) and offsets[-1] == pytest.approx(30.0)
    assert ch.timeline[-1][1] == pytest.approx(2000.0)
    assert len(ch.timeline) <= 500


def test_merge_phase_alone_unions_intervals_and_adds_nodes():
    from bertwatt.report.merge import merge_phase

    clock = FakeClock()
    a = on_node(measure(clock, 100.0, phase="eval"), "x")
    b = on_node(measure(clock, 50.0, phase="eval"), "y")
    parts = make_parts([a, b])
    groups = channel_groups(parts)
    merged = {k: m[0][1].model_copy(update={"node_id": k[0]}) for k, m in groups.items()}
    ph = merge_phase("eval", parts, groups, merged, parts[0].start)
    assert ph.energy_j == pytest.approx(1500.0)
    assert ph.channels == {"x/gpu:0": pytest.approx(1000.0), "y/gpu:0": pytest.approx(500.0)}
    assert ph.count == 2 and ph.duration_s == pytest.approx(20.0)


def test_segments_of_parts_are_ordered_and_reindexed():
    from bertwatt.report.merge import _segments

    clock = FakeClock()
    a, b = measure(clock), measure(clock)

    def seg(r: EnergyReport, index: int) -> Segment:
        return Segment(
            index=index,
            run_id=r.run_id,
            started_at=r.started_at,
            ended_at=r.ended_at,
            steps=1,
            energy_j=1.0,
            ended_by="completed",
        )

    parts = make_parts(
        [
            b.model_copy(update={"segments": [seg(b, 0)]}),
            a.model_copy(update={"segments": [seg(a, 0)]}),
        ]
    )
    segs = _segments(parts)
    assert [s.index for s in segs] == [0, 1] and segs[0].run_id == a.run_id


def test_different_sampling_intervals_are_warned_about():
    clock = FakeClock()
    a = measure(clock)
    b = a.model_copy(
        update={
            "run_id": "9" * 32,
            "interval_s": 0.5,
            "started_at": a.started_at + timedelta(seconds=10),
            "ended_at": a.ended_at + timedelta(seconds=10),
        }
    )
    merged = merge_reports([a, b])
    assert "merged reports used different sampling intervals [0.1, 0.5] s" in merged.warnings
    assert merged.interval_s == 0.5


def _truncated(r: EnergyReport, phase: str, count: int, duration_s: float) -> EnergyReport:
    ph = r.phases[phase].model_copy(update={"count": count, "duration_s": duration_s})
    return r.model_copy(update={"phases": {**r.phases, phase: ph}})


def test_phase_extent_adds_counts_of_truncated_phases_of_disjoint_parts():
    from bertwatt.report.merge import phase_extent

    clock = FakeClock()
    a = _truncated(measure(clock, phase="step"), "step", 20_000, 9.5)
    clock.advance(100)
    b = _truncated(measure(clock, phase="step"), "step", 30_000, 9.0)
    parts = make_parts([a, b])
    intervals, count, duration = phase_extent("step", parts, parts[0].start)
    assert (count, duration) == (50_000, 18.5)
    assert intervals == [pytest.approx((0.0, 10.0)), pytest.approx((110.0, 120.0))]
    merged = merge_reports([a, b])
    assert merged.phases["step"].count == 50_000
    assert merged.phases["step"].duration_s == pytest.approx(18.5)


def test_phase_extent_of_overlapping_truncated_parts_says_so():
    from bertwatt.report.merge import phase_extent

    clock = FakeClock()
    a = _truncated(measure(clock, phase="step"), "step", 3, 12.0)  # 2 s beyond its listed 10
    b = on_node(a, "other").model_copy(update={"run_id": "7" * 32})
    parts = make_parts([a, b])
    notes: list[str] = []
    intervals, count, duration = phase_extent("step", parts, parts[0].start, notes)
    assert intervals == [pytest.approx((0.0, 10.0))]
    assert count == 1 + 2 + 2 and duration == pytest.approx(10.0 + 2.0 + 2.0)
    assert "listed only their first intervals" in notes[0]
