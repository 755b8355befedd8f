"""A process killed with SIGKILL keeps a valid partial report: checkpoints are atomic."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bertwatt.report.models import EnergyReport

CHECKPOINT_S = 0.05
INTERVAL_S = 0.02
POWER_W = 250.0 + 50.0

CHILD = f"""
import sys, time
from bertwatt import EnergyMeter
from bertwatt.testing import FakeBackend, FakeChannel

backend = FakeBackend(channels=[
    FakeChannel("gpu:0", 250.0, kind="counter"),
    FakeChannel("cpu:0", 50.0, kind="power"),
])
meter = EnergyMeter(backends=[backend], interval_s={INTERVAL_S}, output=sys.argv[1],
                    checkpoint_interval_s={CHECKPOINT_S})
meter.start()
meter.begin("train")
print("started", flush=True)
while True:
    time.sleep(0.005)
"""


def _wait_for(path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} was not written within {timeout_s} s")
        time.sleep(0.005)


@pytest.mark.parametrize("run_s", [0.3, 0.77])
def test_sigkill_leaves_a_loadable_running_report(tmp_path, run_s):
    out = tmp_path / "run.json"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.strip() == "started", proc.stderr.read()  # type: ignore[union-attr]
        t_started = time.monotonic()
        _wait_for(out, timeout_s=20.0)
        time.sleep(run_s)
        proc.send_signal(signal.SIGKILL)
        t_killed = time.monotonic()
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    assert proc.returncode == -signal.SIGKILL

    report = EnergyReport.load(out)
    assert report.status == "running"
    elapsed = t_killed - t_started
    # the last checkpoint is at most one interval (plus scheduling slack) before the kill
    assert report.duration_s <= elapsed + 0.5
    assert report.duration_s >= min(run_s, elapsed - CHECKPOINT_S - 1.0)
    # energy up to the latest sample: at most a couple of sampling intervals short
    lo = POWER_W * (report.duration_s - 3 * INTERVAL_S)
    assert lo <= report.energy_j <= POWER_W * report.duration_s + 1e-6
    assert report.channel("gpu:0").energy_j == pytest.approx(
        250.0 * report.duration_s, abs=250.0 * 3 * INTERVAL_S
    )
    assert report.phases["train"].energy_j == pytest.approx(report.energy_j, rel=0.05)
    # leftovers may only be hidden temp files, never anything that shadows the report
    others = [p.name for p in tmp_path.iterdir() if p.name != "run.json"]
    assert all(re.fullmatch(r"\.run\.json\..+\.tmp", n) for n in others), others
    assert len(others) <= 1
