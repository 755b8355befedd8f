"""Hostile report files and write targets (issue #7): one clear ReportError line, bounded time
and memory, never a traceback, a hang, a displayed NaN or a replaced device node."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bertwatt.errors import ReportError
from bertwatt.report import EnergyReport, load_report, merge_reports
from bertwatt.report.io import MAX_REPORT_BYTES, write_text_atomic

V1 = Path(__file__).resolve().parents[1] / "fixtures" / "v1"


def _energy_data() -> dict:
    return load_report(V1 / "energy.json").model_dump(mode="json")


def _one_line_error(path: Path, **kwargs) -> ReportError:
    with pytest.raises(ReportError) as info:
        load_report(path, **kwargs)
    text = str(info.value)
    assert "\n" not in text and str(path) in text
    assert info.value.__cause__ is None or isinstance(info.value.__cause__, OSError)
    return info.value


def _write_raw(tmp_path: Path, text: str, name: str = "r.json") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


# ------------------------------------------------------------------ impossible figures
@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_in_a_report_are_rejected(tmp_path, literal):
    text = json.dumps(_energy_data(), indent=1)
    text = text.replace('"energy_j": 2150.0', f'"energy_j": {literal}', 1)
    assert literal in text
    err = _one_line_error(_write_raw(tmp_path, text))
    assert f"{literal} is not a number a report may hold" in str(err)


@pytest.mark.parametrize(
    ("path", "where"),
    [
        (("energy_j",), "energy_j is negative"),
        (("channels", 0, "energy_j"), "channels[0].energy_j is negative"),
        (("phases", "train", "energy_j"), "phases['train'].energy_j is negative"),
        (("phases", "train", "channels", "gpu:0"), "phases['train'].channels['gpu:0']"),
        (("carbon", "emissions_g"), "carbon.emissions_g is negative"),
        (("emissions_g",), "emissions_g is negative"),
    ],
)
def test_negative_energies_are_rejected_on_load(tmp_path, path, where):
    data = _energy_data()
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = -1e12
    err = _one_line_error(_write_raw(tmp_path, json.dumps(data)))
    assert "impossible figure" in str(err) and where in str(err)
    assert "never a measurement" in err.fix


def test_negative_step_energy_in_a_finetune_report_is_rejected(tmp_path):
    data = load_report(V1 / "finetune.json").model_dump(mode="json")
    data["step_energy"]["energy_j"][1] = -3.0
    err = _one_line_error(_write_raw(tmp_path, json.dumps(data)))
    assert "step_energy.energy_j[1] is negative" in str(err)


def test_energy_above_idle_may_be_negative(tmp_path):
    data = _energy_data()
    data["energy_above_idle_j"] = -5.0  # a run can draw less than its idle baseline
    assert load_report(_write_raw(tmp_path, json.dumps(data))).energy_above_idle_j == -5.0


def test_merge_refuses_in_memory_reports_with_nan_or_negative_figures():
    good = load_report(V1 / "energy.json")
    for bad_value in (float("nan"), float("inf"), -1e12):
        bad = good.model_copy(update={"energy_j": bad_value, "run_id": "b" * 32})
        with pytest.raises(ReportError, match="cannot merge report 2: impossible figure"):
            merge_reports([good, bad])
        ch = good.channels[0].model_copy(update={"energy_j": bad_value})
        bad = good.model_copy(update={"channels": [ch, *good.channels[1:]], "run_id": "c" * 32})
        with pytest.raises(ReportError, match=r"channels\[0\]\.energy_j"):
            merge_reports([bad, good], names=["x.json", "y.json"])


def test_an_impossible_figure_is_never_displayed_as_a_number():
    good = load_report(V1 / "energy.json")
    bad = good.model_copy(update={"energy_j": float("nan"), "mean_power_w": float("inf")})
    text = bad.summary()
    assert "nan J" not in text and "invalid (nan, not a measurement)" in text
    assert "inf W" not in text


# ------------------------------------------------------------------ hostile files
def test_non_utf8_file(tmp_path):
    p = tmp_path / "r.json"
    p.write_bytes(b'{"schema_version": 2, "x": "\xff\xfe"}')
    err = _one_line_error(p)
    assert "not UTF-8 text (byte 0xff at offset 28)" in str(err)


def test_deeply_nested_json(tmp_path):
    p = _write_raw(tmp_path, "[" * 100_000 + "]" * 100_000)
    assert "nested too deeply" in str(_one_line_error(p))


def test_deeply_nested_value_inside_a_report(tmp_path):
    text = json.dumps(_energy_data())
    text = text[:-1] + ', "extra": ' + "{" + '"a":{' * 50_000 + "}" * 50_001 + "}"
    p = _write_raw(tmp_path, text)
    err = _one_line_error(p)
    assert "nested too deeply" in str(err) or "invalid report" in str(err)


def test_dev_zero_is_refused_without_reading():
    err = _one_line_error(Path("/dev/zero"))
    assert "not a report file: a character device" in str(err)


def test_directory_is_refused(tmp_path):
    assert "a directory" in str(_one_line_error(tmp_path))


def _in_thread(fn, timeout_s: float = 20.0):
    box: dict = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as err:  # handed back to the test
            box["error"] = err

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout_s)
    assert not t.is_alive(), "the call hung"
    return box


def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "r.json"
    os.mkfifo(fifo)
    box = _in_thread(lambda: load_report(fifo))
    assert isinstance(box.get("error"), ReportError)
    assert "a FIFO" in str(box["error"]) and str(fifo) in str(box["error"])


def test_huge_file_is_refused_by_size_without_reading_it(tmp_path):
    p = tmp_path / "huge.json"
    with open(p, "wb") as fh:  # sparse: no disk used, no time spent writing
        fh.truncate(MAX_REPORT_BYTES + 1)
    err = _one_line_error(p)
    assert "file too large for a report" in str(err)
    assert f"{MAX_REPORT_BYTES:,}" in str(err)


def test_size_limit_is_a_parameter(tmp_path):
    p = tmp_path / "r.json"
    p.write_text(json.dumps(_energy_data()), encoding="utf-8")
    assert "file too large" in str(_one_line_error(p, max_bytes=100))
    assert load_report(p, max_bytes=10_000_000).energy_j == pytest.approx(2150.0)


def test_missing_and_unreadable_files(tmp_path):
    assert "cannot read report" in str(_one_line_error(tmp_path / "nope.json"))


# ------------------------------------------------------------------ the atomic writer
def test_writer_follows_a_symlink_and_keeps_it(tmp_path):
    real = tmp_path / "run-3.json"
    real.write_text("old", encoding="utf-8")
    link = tmp_path / "latest.json"
    link.symlink_to(real.name)
    write_text_atomic(link, "new")
    assert link.is_symlink() and os.readlink(link) == real.name
    assert real.read_text(encoding="utf-8") == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.json", "run-3.json"]


def test_writer_follows_a_dangling_symlink_to_create_its_target(tmp_path):
    link = tmp_path / "latest.json"
    link.symlink_to("sub/run.json")
    write_text_atomic(link, "x")
    assert link.is_symlink() and (tmp_path / "sub" / "run.json").read_text() == "x"


def test_writer_refuses_a_fifo_and_leaves_it(tmp_path):
    fifo = tmp_path / "r.json"
    os.mkfifo(fifo)
    with pytest.raises(ReportError, match="refusing to write a report over a FIFO"):
        write_text_atomic(fifo, "x")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_writer_refuses_a_symlink_to_a_fifo(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "r.json"
    link.symlink_to(fifo)
    with pytest.raises(ReportError, match="FIFO"):
        write_text_atomic(link, "x")
    assert stat.S_ISFIFO(os.stat(link).st_mode) and link.is_symlink()


def test_writer_refuses_a_device_node_it_could_replace(tmp_path):
    dev = tmp_path / "full"
    try:
        os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 7))  # like /dev/full
    except (PermissionError, OSError):
        pytest.skip("creating a device node needs root")
    with pytest.raises(ReportError, match="a character device"):
        write_text_atomic(dev, "x")
    assert stat.S_ISCHR(os.lstat(dev).st_mode)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root could replace /dev/full")
def test_writer_never_replaces_dev_full():
    before = os.lstat("/dev/full")
    assert stat.S_ISCHR(before.st_mode)
    with pytest.raises(ReportError, match="refusing to write a report over a character device"):
        write_text_atomic(Path("/dev/full"), "{}")
    after = os.lstat("/dev/full")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev


def test_writer_refuses_a_nul_byte_in_the_path(tmp_path):
    with pytest.raises(ReportError, match="NUL byte"):
        write_text_atomic(Path(str(tmp_path / "a\0b.json")), "x")


def test_to_json_refuses_a_directory_target(tmp_path):
    report = load_report(V1 / "energy.json")
    (tmp_path / "d").mkdir()
    with pytest.raises(ReportError, match="a directory"):
        report.to_json(tmp_path / "d")


# ------------------------------------------------------------------ terminal escapes
def test_control_characters_from_a_report_are_escaped_in_the_summary(tmp_path):
    data = _energy_data()
    data["channels"][0]["name"] = "gpu\x1b[2J:0"
    data["phases"]["evil\x1b]0;title\x07"] = data["phases"].pop("train")
    data["phases"]["evil\x1b]0;title\x07"]["name"] = "evil\x1b]0;title\x07"
    data["warnings"] = ["line\rover\u202eredro"]
    data["host"]["hostname"] = "h\x1b[31m"
    data["unavailable"] = [{"what": "x\x9b", "reason": "r\x00", "fix": "f\x1b"}]
    path = _write_raw(tmp_path, json.dumps(data))
    text = load_report(path).summary()
    for bad in ("\x1b", "\x07", "\r", "\u202e", "\x9b", "\x00"):
        assert bad not in text
    assert "gpu\\x1b[2J:0" in text and "line\\x0dover\\u202eredro" in text


def test_control_characters_in_finetune_summaries_are_escaped():
    ft = load_report(V1 / "finetune.json")
    metrics = dict(ft.phase_metrics)
    m = metrics.pop("eval")
    metrics["e\x1b[2Jval"] = m.model_copy(update={"name": "e\x1b[2Jval"})
    text = ft.model_copy(update={"phase_metrics": metrics}).summary()
    assert "\x1b" not in text and "e\\x1b[2Jval" in text


def test_energy_report_load_accepts_str_paths(tmp_path):
    p = tmp_path / "r.json"
    load_report(V1 / "energy.json").to_json(p)
    assert EnergyReport.load(str(p)).energy_j == pytest.approx(2150.0)


# ------------------------------------------------------------------ fuzzing
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@FUZZ
@given(data=st.binary(max_size=2048))
def test_random_bytes_give_a_report_error_or_a_report(tmp_path, data):
    p = tmp_path / "fuzz.json"
    p.write_bytes(data)
    try:
        load_report(p)
    except ReportError as err:
        assert "\n" not in str(err) and str(p) in str(err)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@FUZZ
@given(key_path=st.lists(st.integers(0, 50), min_size=1, max_size=4), value=json_values)
def test_a_report_with_any_field_replaced_gives_a_report_error_or_a_sound_report(
    tmp_path, key_path, value
):
    from bertwatt.report.figures import figure_problems

    data = _energy_data()
    node = data
    for step in key_path[:-1]:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            break
        nxt = node[keys[step % len(keys)]]
        if not isinstance(nxt, dict | list) or not nxt:
            break
        node = nxt
    keys = list(node) if isinstance(node, dict) else list(range(len(node)))
    node[keys[key_path[-1] % len(keys)]] = value
    p = tmp_path / "fuzz.json"
    p.write_text(json.dumps(data, allow_nan=True), encoding="utf-8")
    try:
        report = load_report(p)
    except ReportError as err:
        assert "\n" not in str(err) and str(p) in str(err)
    else:
        assert figure_problems(report) == []
        assert "\x1b" not in report.summary()


def test_csv_export_refuses_a_fifo_instead_of_blocking(tmp_path):
    fifo = tmp_path / "t.csv"
    os.mkfifo(fifo)
    report = load_report(V1 / "energy.json")
    box = _in_thread(lambda: report.to_csv(fifo))
    assert isinstance(box.get("error"), ReportError)
    assert "refusing to write the timeline CSV over a FIFO" in str(box["error"])
