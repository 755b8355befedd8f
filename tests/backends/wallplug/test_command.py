"""Command driver with real reader scripts; the output parser on the documented shapes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bertwatt.backends import WallPlugBackend
from bertwatt.backends.wallplug.command import parse_output
from bertwatt.errors import ConfigError


def _script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize(
    ("text", "power", "energy"),
    [
        ("123.4\n", 123.4, None),
        ("123.4 W", 123.4, None),
        ("5678 J", None, 5678.0),
        ("2.5 kJ", None, 2500.0),
        ("1.5 Wh", None, 5400.0),
        ("0.002 kWh", None, 7200.0),
        ("87.2 W 1.25 kWh\n", 87.2, 4.5e6),
        ("87.2W, 12J", 87.2, 12.0),
        ("1e2 W", 100.0, None),
    ],
)
def test_parse_output_shapes(text, power, energy):
    s = parse_output(text)
    assert s.power_w == (pytest.approx(power) if power is not None else None)
    assert s.energy_j == (pytest.approx(energy) if energy is not None else None)


@pytest.mark.parametrize(
    "text", ["", "abc", "12 V", "-3 W", "1 W 2 W", "1 J 2 Wh", "power: 12", "nan", "12 W extra"]
)
def test_parse_output_rejects(text):
    with pytest.raises(ValueError):
        parse_output(text)


def test_power_reader(tmp_path):
    b = WallPlugBackend.command([_script(tmp_path, "m", 'echo "${1:-0}"\n'), "151.5"])
    (ch,) = b.probe().channels
    assert (ch.name, ch.kind, ch.counted) == ("wall:command", "power", True)
    assert b.read() == ([151.5], None)


def test_counter_reader_reads_a_changing_file(tmp_path):
    state = tmp_path / "joules"
    state.write_text("1000")
    b = WallPlugBackend.command(
        [_script(tmp_path, "m", f'printf "%s J\\n" "$(cat {state})"\n')], poll_interval_s=0.05
    )
    (ch,) = b.probe().channels
    assert ch.kind == "counter"
    state.write_text("1500")
    time.sleep(0.06)
    assert b.read() == ([1500.0], None)


def test_failing_reader_is_a_failed_read(tmp_path):
    flag = tmp_path / "fail"
    reader = _script(
        tmp_path, "m", f'if [ -e {flag} ]; then echo "meter offline" >&2; exit 3; fi\necho 10\n'
    )
    b = WallPlugBackend.command([reader], poll_interval_s=0.05)
    assert b.probe().ok
    flag.touch()
    time.sleep(0.06)
    values, errors = b.read()
    assert values[0] != values[0]
    assert "exited with 3" in errors[0] and "meter offline" in errors[0]


def test_malformed_output_is_unavailable(tmp_path):
    (u,) = WallPlugBackend.command([_script(tmp_path, "m", "echo hello\n")]).probe().unavailable
    assert u.what == "wall:command" and "malformed reader output" in u.reason


def test_hanging_reader_and_its_children_are_killed(tmp_path):
    pidfile = tmp_path / "pid"
    reader = _script(tmp_path, "m", f"sleep 30 &\necho $! > {pidfile}\nwait\n")
    b = WallPlugBackend.command([reader], timeout_s=0.5)
    t0 = time.monotonic()
    (u,) = b.probe().unavailable
    assert time.monotonic() - t0 < 3.0
    assert "within 0.5 s" in u.reason
    child = int(pidfile.read_text())
    for _ in range(100):
        if not _alive(child):
            break
        time.sleep(0.02)
    else:
        pytest.fail("the reader's child process survived")


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its reaper is dead)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_missing_program_is_unavailable_with_fix():
    (u,) = WallPlugBackend.command(["/nonexistent/meter-reader"]).probe().unavailable
    assert "not an executable program" in u.reason and "full path" in u.fix


@pytest.mark.parametrize("argv", ["my-meter --watts", [], [1], ["a\x00b"]])
def test_bad_argv_is_a_config_error(argv):
    with pytest.raises(ConfigError):
        WallPlugBackend.command(argv)


def test_a_reader_that_takes_2_seconds_is_integrated_not_a_gap(tmp_path):
    """Core ask of issue #10: a blocking meter whose every read takes 2.1 s (ipmitool negotiating
    its cipher suite) is sampled as fast as it answers and integrated, never 0 J."""
    from bertwatt.meter import EnergyMeter

    reader = _script(tmp_path, "slow", "sleep 2.1\necho 200\n")
    wall = WallPlugBackend.command([reader], timeout_s=10.0, update_period_s=1.0)
    meter = EnergyMeter(backends=[wall], interval_s=0.1, slow_read_timeout_s=10.0)
    with meter:
        time.sleep(9.0)
    rep = meter.report
    ch = rep.channel("wall:command")
    detail = (ch.samples, ch.coverage, ch.events)
    assert ch.failed_reads == 0, detail
    assert ch.samples >= 3, detail
    assert not any("not integrated" in e for e in ch.events), detail
    assert ch.mean_power_w == pytest.approx(200.0, rel=1e-9)
    assert rep.energy_j == pytest.approx(200.0 * ch.coverage * rep.duration_s, rel=1e-6)
    assert ch.coverage > 0.7, detail  # only the tail after the last answer is unmeasured
    assert rep.total_basis.startswith("wall meter only")
