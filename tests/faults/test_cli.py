"""The CLI under hostile files, signals, closed pipes, bad paths and bad arguments.

Real subprocesses where the behaviour is the process's (exit codes, signals, pipes); ``main()`` in
process where only the output matters (faster on a loaded machine).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bertwatt.cli import main

PY = sys.executable
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "v1"
ESC = "\x1b"


def bertwatt(*args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("BERTWATT_ZONE", None)
    return subprocess.run(
        [PY, "-m", "bertwatt", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        **kw,
    )


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("bertwatt: error:"), stderr
    assert "Traceback" not in stderr
    return lines[0]


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for a reaper counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_for(path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


# ---------------------------------------------------------------------- output paths
@pytest.mark.parametrize("where", ["under-a-file", "a-directory", "dev-full", "fifo"])
def test_run_with_an_unwritable_output_fails_before_running(tmp_path: Path, where: str) -> None:
    marker = tmp_path / "ran"
    if where == "under-a-file":
        (tmp_path / "file").write_text("x")
        target = tmp_path / "file" / "r.json"
    elif where == "a-directory":
        target = tmp_path
    elif where == "dev-full":
        target = Path("/dev/full")
    else:
        target = tmp_path / "fifo"
        os.mkfifo(target)
    out = bertwatt("run", "-o", str(target), "--", PY, "-c", f"open({str(marker)!r}, 'w')")
    assert out.returncode == 1
    line = one_error_line(out.stderr)
    assert "report written" not in out.stderr
    assert str(target) in line or str(target.parent) in line
    assert not marker.exists(), "the command ran although its report could not be written"
    if where == "fifo":
        assert stat.S_ISFIFO(target.stat().st_mode)


def test_run_output_lost_during_the_run_is_an_error_exit(tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    # the command removes the report's directory and puts a file in its place
    child = f"import shutil; shutil.rmtree({str(out_dir)!r}); open({str(out_dir)!r}, 'w')"
    out = bertwatt("run", "-o", str(out_dir / "r.json"), "--", PY, "-c", child)
    assert out.returncode == 1
    assert "report written" not in out.stderr
    assert "the report was NOT written" in out.stderr
    assert "Traceback" not in out.stderr


def test_run_keeps_a_failing_commands_exit_code_when_the_report_is_lost(tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    child = (
        f"import shutil, sys; shutil.rmtree({str(out_dir)!r}); open({str(out_dir)!r}, 'w');"
        " sys.exit(5)"
    )
    out = bertwatt("run", "-o", str(out_dir / "r.json"), "--", PY, "-c", child)
    assert out.returncode == 5
    assert "the report was NOT written" in out.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "-o", "", "--", "true"],
        ["run", "-o", "a\0b.json", "--", "true"],
        ["show", ""],
        ["show", "r\0.json"],
        ["merge", ""],
        ["merge", "-o", "", "a.json"],
    ],
)
def test_empty_paths_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    one_error_line(capsys.readouterr().err)


# ---------------------------------------------------------------------- signals and the child
def test_sigkill_of_bertwatt_run_kills_the_command_and_leaves_a_checkpoint(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    report = tmp_path / "r.json"
    child = (
        f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    )
    proc = subprocess.Popen(
        [
            PY,
            "-m",
            "bertwatt",
            "run",
            "-o",
            str(report),
            "--checkpoint-interval",
            "0.3",
            "--interval",
            "0.05",
            "--",
            PY,
            "-c",
            child,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    try:
        wait_for(pid_file)
        wait_for(report)
        child_pid = int(pid_file.read_text())
        time.sleep(0.5)  # a checkpoint written after the command started
        assert alive(child_pid)
        proc.kill()
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while alive(child_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(child_pid), "the command outlived bertwatt run (an orphan)"
    finally:
        proc.kill()
        proc.wait(timeout=30)
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
    data = json.loads(report.read_text())
    assert data["status"] == "running"  # the last checkpoint, labelled as such
    assert data["run"]["command"][-1] == child and data["run"]["cwd"] == os.getcwd()


def test_run_records_what_was_run_with_secrets_masked(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    args = [
        "--token",
        "tok-S3CRET",
        "--password=pw-S3CRET",
        "API_KEY=key-S3CRET",
        "https://ada:url-S3CRET@example.org/x",
        "--epochs",
        "3",
    ]
    out = bertwatt(
        "run", "-o", str(report), "--", PY, "-c", "import sys; sys.exit(4)", *args, cwd=tmp_path
    )
    assert out.returncode == 4, out.stderr
    data = json.loads(report.read_text())
    run = data["run"]
    assert run["command"] == [
        PY,
        "-c",
        "import sys; sys.exit(4)",
        "--token",
        "***",
        "--password=***",
        "API_KEY=***",
        "https://ada:***@example.org/x",
        "--epochs",
        "3",
    ]
    assert run["cwd"] == str(tmp_path)
    assert run["exit_code"] == 4 and run["signal"] is None
    assert data["status"] == "complete"
    assert "S3CRET" not in report.read_text() and "S3CRET" not in out.stderr


def test_a_command_killed_by_a_signal_makes_an_interrupted_report(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    child = "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"
    out = bertwatt("run", "-o", str(report), "--", PY, "-c", child)
    assert out.returncode == 128 + signal.SIGTERM
    data = json.loads(report.read_text())
    assert data["status"] == "interrupted"
    assert data["run"]["signal"] == "SIGTERM" and data["run"]["exit_code"] is None
    assert "[interrupted]" in out.stderr


def test_a_forwarded_sigint_marks_the_run_interrupted(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    ready = tmp_path / "ready"
    child = (
        "import pathlib, signal, sys, time\n"
        "signal.signal(signal.SIGINT, lambda s, f: sys.exit(9))\n"
        f"pathlib.Path({str(ready)!r}).write_text('x')\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [PY, "-m", "bertwatt", "run", "-o", str(report), "--", PY, "-c", child],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    wait_for(ready)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 9, err
    data = json.loads(report.read_text())
    assert data["status"] == "interrupted"
    assert data["run"] == {**data["run"], "exit_code": 9, "signal": "SIGINT"}


def test_child_gets_default_sigpipe() -> None:
    """The exec trampoline hands the command the default SIGPIPE and SIGXFSZ (Python ignores
    both in itself): ``cat /proc/self/status`` run by bertwatt ignores neither."""
    out = bertwatt("run", "--", "cat", "/proc/self/status")
    assert out.returncode == 0, out.stderr
    ignored = int(
        next(li for li in out.stdout.splitlines() if li.startswith("SigIgn:")).split()[1], 16
    )
    assert not ignored & (1 << (signal.SIGPIPE - 1))
    assert not ignored & (1 << (signal.SIGXFSZ - 1))


# ---------------------------------------------------------------------- hostile report files
def _hostile(tmp_path: Path, kind: str) -> Path:
    p = tmp_path / f"{kind}.json"
    good = json.loads((FIXTURES / "energy.json").read_text())
    if kind == "not-utf8":
        p.write_bytes(b'{"schema_version": 1, "x": "\xff\xfe"}')
    elif kind == "deeply-nested":
        p.write_text("[" * 200_000 + "]" * 200_000)
    elif kind == "nested-dict":
        p.write_text('{"schema_version": 2, "extra": ' + '{"a":' * 100_000 + "1" + "}" * 100_001)
    elif kind == "nan":
        good["energy_j"] = float("nan")
        p.write_text(json.dumps(good))
    elif kind == "negative":
        good["channels"][0]["energy_j"] = -1e12
        good["energy_j"] = -1e12
        p.write_text(json.dumps(good))
    elif kind == "huge":
        with open(p, "wb") as fh:  # sparse: costs no disk
            fh.truncate(200 * 1024 * 1024)
    elif kind == "fifo":
        os.mkfifo(p)
    elif kind == "directory":
        p.mkdir()
    elif kind == "list":
        p.write_text("[1, 2, 3]")
    elif kind == "binary":
        p.write_bytes(os.urandom(4096))
    elif kind == "future":
        good["schema_version"] = 99
        p.write_text(json.dumps(good))
    elif kind == "missing":
        pass
    return p


HOSTILE = [
    "not-utf8",
    "deeply-nested",
    "nested-dict",
    "nan",
    "negative",
    "huge",
    "fifo",
    "directory",
    "list",
    "binary",
    "future",
    "missing",
]


@pytest.mark.parametrize("kind", HOSTILE)
@pytest.mark.parametrize("command", [["show"], ["show", "--json"], ["merge"]])
def test_hostile_report_files_are_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, command: list[str]
) -> None:
    path = _hostile(tmp_path, kind)
    started = time.monotonic()
    code = main([*command, str(path)])
    captured = capsys.readouterr()
    assert code == 1, captured
    line = one_error_line(captured.err)
    assert path.name in line
    assert captured.out == ""
    assert time.monotonic() - started < 30


def test_dev_zero_is_refused_in_a_subprocess() -> None:
    out = bertwatt("show", "/dev/zero", timeout=60)
    assert out.returncode == 1
    assert "/dev/zero" in one_error_line(out.stderr)


# ---------------------------------------------------------------------- terminal control
def _report_with_control_characters(tmp_path: Path) -> Path:
    data = json.loads((FIXTURES / "energy.json").read_text())
    data["channels"][0]["name"] = f"gpu{ESC}[2J{ESC}]0;pwned\x07"
    data["warnings"].append(f"evil {ESC}[31mred\x9b2J \u202eright-to-left")
    data["host"]["hostname"] = f"host{ESC}[H"
    p = tmp_path / "ctl.json"
    p.write_text(json.dumps(data))
    return p


def test_control_characters_never_reach_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = _report_with_control_characters(tmp_path)
    assert main(["show", str(p)]) == 0
    out = capsys.readouterr().out
    assert ESC not in out and "\x07" not in out and "\x9b" not in out and "\u202e" not in out
    assert "gpu\\x1b[2J" in out and "\\u202e" in out
    assert main(["show", "--json", str(p)]) == 0
    text = capsys.readouterr().out
    assert ESC not in text and "\x9b" not in text and "\u202e" not in text
    assert json.loads(text)["channels"][0]["name"].startswith(f"gpu{ESC}[2J")
    assert main(["merge", str(p)]) == 0
    assert ESC not in capsys.readouterr().out
    bad = tmp_path / f"no{ESC}[2Jfile.json"
    assert main(["show", str(bad)]) == 1
    err = capsys.readouterr().err
    assert ESC not in err and "no\\x1b[2Jfile.json" in err


def test_zone_query_echo_is_bounded_and_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["zones", "Q" * 100_000 + ESC]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert len(line) < 400 and ESC not in line


def test_unknown_zone_option_is_bounded(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--zone", "X" * 100_000, "--", "true"]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert len(line) < 1000


# ---------------------------------------------------------------------- pipes
@pytest.mark.parametrize(
    "argv", [["zones"], ["sensors"], ["sensors", "--json"], ["show", "REPORT"]]
)
def test_a_closed_stdout_stops_quietly(argv: list[str]) -> None:
    argv = [str(FIXTURES / "energy.json") if a == "REPORT" else a for a in argv]
    # read one byte, then close the pipe: every further write hits EPIPE
    proc = subprocess.Popen(
        [PY, "-m", "bertwatt", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(1)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=60)
    assert code in (0, -signal.SIGPIPE), err
    assert "Broken pipe" not in err and "BrokenPipeError" not in err and "Traceback" not in err


def test_zones_into_head_through_a_shell() -> None:
    out = subprocess.run(
        f"{PY} -m bertwatt zones | head -n 2",
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert out.returncode == 0
    assert len(out.stdout.splitlines()) == 2
    assert out.stderr == ""


# ---------------------------------------------------------------------- arguments
@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--zon", "FR", "--", "true"],
        ["run", "--out", "r.json", "--", "true"],
        ["run", "--checkpoint", "5", "--", "true"],
        ["show", "--js", "r.json"],
        ["sensors", "--js"],
        ["merge", "--out", "m.json", "a.json"],
        ["--deb", "zones"],
    ],
)
def test_abbreviated_options_are_errors(argv: list[str], capsys: pytest.CaptureFixture[str]):
    assert main(argv) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "unrecognized arguments" in line or "invalid choice" in line


def test_unknown_env_zone_warns_with_the_fix(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "BERTWATT_ZONE": "XX"}
    out = subprocess.run(
        [PY, "-m", "bertwatt", "run", "-o", str(tmp_path / "r.json"), "--", PY, "-c", "pass"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    warning = [line for line in out.stderr.splitlines() if "BERTWATT_ZONE='XX'" in line]
    assert warning and "configuration error" in warning[0] and "Fix:" in warning[0]
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["emissions_g"] is None and "BERTWATT_ZONE" in data["carbon_note"]


def test_energy_callback_without_the_hf_extra_names_the_extra() -> None:
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.partition('.')[0] in ('transformers', 'torch', 'accelerate'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import bertwatt\n"
        "try:\n"
        "    from bertwatt import EnergyCallback\n"
        "except ImportError as err:\n"
        "    print(type(err).__name__, err)\n"
        "else:\n"
        "    print('imported')\n"
    )
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ModuleNotFoundError")
    assert "pip install 'bertwatt[hf]'" in out.stdout


def test_a_fifo_inside_a_merged_directory_does_not_hang(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "runs"
    d.mkdir()
    (d / "a.json").write_text((FIXTURES / "energy.json").read_text())
    os.mkfifo(d / "b.json")
    assert main(["merge", str(d)]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "b.json" in line


def test_csv_to_an_unwritable_path_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("x")
    target = tmp_path / "file" / "t.csv"
    assert main(["show", str(FIXTURES / "energy.json"), "--csv", str(target)]) == 1
    assert "t.csv" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("value", ["0", "-1", "abc", "nan", "inf"])
def test_checkpoint_interval_must_be_a_positive_number(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--checkpoint-interval", value, "--", "true"]) == 2
    assert "checkpoint-interval" in one_error_line(capsys.readouterr().err)
