"""The command line, driven through real subprocesses (exit codes included) and main()."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bertwatt.cli import main

PY = sys.executable


def bertwatt(*args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "bertwatt", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )


def test_version_and_help():
    out = bertwatt("--version")
    assert out.returncode == 0
    assert out.stdout.startswith("bertwatt ")
    out = bertwatt()
    assert out.returncode == 2
    assert "sensors" in out.stderr


def test_sensors_explains_what_is_missing():
    out = bertwatt("sensors")
    assert out.returncode == 0, out.stderr
    # No RAPL and no NVML on the CI machine: each is listed with a reason and, where there is
    # one, a fix; the CPU is covered by the labelled estimate.
    assert "not measurable:" in out.stdout
    assert "rapl" in out.stdout and "nvml" in out.stdout
    assert "ESTIMATED" in out.stdout


def test_sensors_json_is_machine_readable():
    out = bertwatt("sensors", "--json")
    data = json.loads(out.stdout)
    assert {"channels", "unavailable"} <= set(data)
    assert all(u["reason"] for u in data["unavailable"])


def test_run_returns_child_exit_code_and_writes_report(tmp_path: Path):
    report = tmp_path / "run.json"
    out = bertwatt(
        "run",
        "--interval",
        "0.05",
        "-o",
        str(report),
        "--",
        PY,
        "-c",
        "import time,sys; time.sleep(0.3); sys.exit(3)",
    )
    assert out.returncode == 3, out.stderr
    assert "bertwatt report" in out.stderr
    data = json.loads(report.read_text())
    assert data["status"] == "complete"
    assert data["duration_s"] >= 0.3
    shown = bertwatt("show", str(report))
    assert shown.returncode == 0
    assert "energy:" in shown.stdout


def test_run_command_not_found_is_one_line():
    out = bertwatt("run", "--", "definitely-not-a-command-bertwatt")
    assert out.returncode == 127
    assert out.stderr.count("\n") <= 2
    assert "Traceback" not in out.stderr


def test_run_without_command_is_usage_error():
    out = bertwatt("run")
    assert out.returncode == 2
    assert "no command given" in out.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--interval", "abc", "--", "true"],
        ["run", "--interval", "-1", "--", "true"],
        ["run", "--pue", "0", "--", "true"],
        ["nosuchcommand"],
        ["run", "--backend", "nosuch", "--", "true"],
    ],
)
def test_bad_arguments_give_one_line_and_nonzero(args):
    out = bertwatt(*args)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().startswith("bertwatt: error:")


def test_pue_out_of_range_is_a_clear_error():
    out = bertwatt("run", "--pue", "7", "--", "true")
    assert out.returncode == 1
    assert "pue must be between 1.0 and 3.0" in out.stderr


def test_show_unreadable_files(tmp_path: Path):
    missing = bertwatt("show", str(tmp_path / "missing.json"))
    assert missing.returncode == 1
    assert "missing.json" in missing.stderr and "Traceback" not in missing.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    out = bertwatt("show", str(bad))
    assert out.returncode == 1
    assert "not a JSON report" in out.stderr


def test_show_json_and_csv(tmp_path: Path):
    report = tmp_path / "r.json"
    assert bertwatt("run", "-o", str(report), "--", PY, "-c", "pass").returncode == 0
    csv_path = tmp_path / "t.csv"
    out = bertwatt("show", str(report), "--json", "--csv", str(csv_path))
    assert out.returncode == 0
    assert json.loads(out.stdout)["schema_version"] == 2
    assert csv_path.read_text().splitlines()[0] == "host,channel,offset_s,energy_j,power_w"


def test_merge_command(tmp_path: Path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    for p in (a, b):
        assert bertwatt("run", "-o", str(p), "--", PY, "-c", "pass").returncode == 0
    merged = tmp_path / "m.json"
    out = bertwatt("merge", str(a), str(b), "-o", str(merged))
    assert out.returncode == 0, out.stderr
    data = json.loads(merged.read_text())
    assert len(data["extra"]["merged_from"]) == 2


def test_run_forwards_sigterm_to_the_child(tmp_path: Path):
    flag = tmp_path / "got-term"
    child = (
        "import signal, sys, time, pathlib\n"
        f"def h(s, f):\n    pathlib.Path({str(flag)!r}).write_text('x'); sys.exit(7)\n"
        "signal.signal(signal.SIGTERM, h)\n"
        f"pathlib.Path({str(flag)!r} + '.ready').write_text('x')\n"
        "time.sleep(30)\n"
    )
    proc = subprocess.Popen(
        [PY, "-m", "bertwatt", "run", "--", PY, "-c", child],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    ready = Path(str(flag) + ".ready")
    deadline = time.monotonic() + 30
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready.exists()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 7
    assert flag.exists()
    assert "bertwatt report" in err


def test_main_in_process_returns_codes(capsys):
    assert main(["--version"]) == 0
    assert main(["show", "/nonexistent/r.json"]) == 1
    assert "cannot read report" in capsys.readouterr().err


# ---------------------------------------------------------------------- every command, every kind
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "v1"
KINDS = ["energy", "finetune", "inference"]


def _fixture(kind: str, version: int, tmp_path: Path) -> Path:
    """The v1 fixture of ``kind`` as written by bertwatt 0.1, or the same report written as v2."""
    v1 = FIXTURES / f"{kind}.json"
    if version == 1:
        return v1
    from bertwatt.report import load_report
    from bertwatt.report.io import write_report

    path = tmp_path / f"{kind}-v2.json"
    write_report(load_report(v1), path)
    assert json.loads(path.read_text())["schema_version"] == 2
    return path


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("kind", KINDS)
def test_show_reads_every_kind_and_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, version: int
) -> None:
    path = _fixture(kind, version, tmp_path)
    assert main(["show", str(path)]) == 0
    text = capsys.readouterr().out
    assert "energy" in text and "Traceback" not in text
    assert main(["show", "--json", str(path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kind"] == kind and data["schema_version"] == 2
    csv_path = tmp_path / "t.csv"
    assert main(["show", str(path), "--csv", str(csv_path)]) == 0
    assert csv_path.read_text().splitlines()[0].split(",")[:2] in (
        ["host", "channel"],
        ["node", "channel"],
    )


@pytest.mark.parametrize("kind", KINDS)
def test_merge_reads_every_kind_and_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    v1, v2 = FIXTURES / f"{kind}.json", _fixture(kind, 2, tmp_path)
    out = tmp_path / "merged.json"
    assert main(["merge", str(v1), str(v2), "-o", str(out)]) == 0, capsys.readouterr().err
    captured = capsys.readouterr()
    assert "energy" in captured.out
    from bertwatt.report import load_report

    merged = load_report(out)
    assert merged.kind == kind
    # the v2 file is the v1 report re-written: one run, counted once
    single = load_report(v1)
    assert merged.energy_j == pytest.approx(single.energy_j)


def test_merge_a_directory_skips_its_earlier_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    d = tmp_path / "runs"
    d.mkdir()
    for name in ("a", "b"):
        assert (
            bertwatt("run", "-o", str(d / f"{name}.json"), "--", PY, "-c", "pass").returncode == 0
        )
    out = d / "merged.json"
    assert main(["merge", str(d), "-o", str(out)]) == 0
    first = json.loads(out.read_text())
    capsys.readouterr()
    shutil.copy(out, d / "old-merge.json")
    assert main(["merge", str(d), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "old-merge.json" in err and "earlier merge output" in err
    assert json.loads(out.read_text())["energy_j"] == pytest.approx(first["energy_j"])


# ---------------------------------------------------------------------- secrets in the command line
@pytest.mark.parametrize(
    ("argv", "masked"),
    [
        (["--token", "abc"], ["--token", "***"]),
        (["--token=abc"], ["--token=***"]),
        (["--password", "p w"], ["--password", "***"]),
        (["--hf-token", "hf_x", "--lr", "3e-5"], ["--hf-token", "***", "--lr", "3e-5"]),
        (["--api-key=k", "--api_key", "k2"], ["--api-key=***", "--api_key", "***"]),
        (["-token", "abc"], ["-token", "***"]),
        (["--client-secret", "s"], ["--client-secret", "***"]),
        (
            ["API_KEY=abc", "HF_TOKEN=hf_1", "PATH=/bin"],
            ["API_KEY=***", "HF_TOKEN=***", "PATH=/bin"],
        ),
        (["WANDB_API_KEY=abc"], ["WANDB_API_KEY=***"]),
        (["https://ada:pw@host/x"], ["https://ada:***@host/x"]),
        (["--url=postgres://u:pw@db:5432/x"], ["--url=postgres://u:***@db:5432/x"]),
        (["-H", "Authorization: Bearer abc"], ["-H", "Authorization: Bearer ***"]),
        (["--token"], ["--token"]),  # no value to mask
        (["--token", "--verbose"], ["--token", "--verbose"]),  # the next option is not a value
        (["--epochs", "3", "train.py"], ["--epochs", "3", "train.py"]),
        (
            ["--tokenizer", "bert-base", "--max-tokens", "9"],
            ["--tokenizer", "bert-base", "--max-tokens", "9"],
        ),
        (
            ["--hftoken", "x", "--key", "k", "--sort-key", "a"],
            ["--hftoken", "***", "--key", "***", "--sort-key", "a"],
        ),
        (
            ["--aws-secret-access-key", "x", "DB_PASS=y"],
            ["--aws-secret-access-key", "***", "DB_PASS=***"],
        ),
        (["https://host/path?x=1"], ["https://host/path?x=1"]),
    ],
)
def test_secret_values_in_the_command_line_are_masked(argv: list[str], masked: list[str]) -> None:
    from bertwatt.cli.run import mask_command

    assert mask_command(argv) == masked
