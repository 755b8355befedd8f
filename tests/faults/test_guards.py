"""Guards around the user's code: no network unless configured, and the user's exceptions and
interrupts pass through a metered block unchanged while what was measured is kept."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bertwatt import EnergyMeter, load_report
from bertwatt.testing import FakeBackend, FakeChannel, FakeClock

#: Python run first in a child: every way of opening a connection raises.
_NO_NETWORK = (
    "import socket\n"
    "def refuse(*a, **k):\n    raise AssertionError('bertwatt opened a network connection')\n"
    "socket.socket.connect = refuse\nsocket.socket.connect_ex = refuse\n"
    "socket.socket.sendto = refuse\nsocket.create_connection = refuse\n"
    "socket.getaddrinfo = refuse\n"
)


def _run(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _NO_NETWORK + code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )


def test_a_default_meter_with_a_zone_makes_no_network_call(tmp_path):
    # Auto-detected backends, a shipped zone, the report, its summary and JSON: all offline.
    out = _run(
        "import warnings, json\n"
        "warnings.simplefilter('ignore')\n"
        "from bertwatt import EnergyMeter, load_report\n"
        "with EnergyMeter(carbon='FR', output='run.json') as m:\n"
        "    with m.phase('work'):\n"
        "        sum(range(100000))\n"
        "m.report.summary(); m.report.to_json()\n"
        "load_report('run.json').summary()\n"
        "print(json.dumps({'zone': m.report.carbon.zone}))\n",
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == {"zone": "FR"}


def test_the_cli_makes_no_network_call(tmp_path):
    code = (
        "import sys\n"
        "from bertwatt.cli import main\n"
        "run = ['run', '-o', 'r.json', '--zone', 'DE', '--', sys.executable, '-c', 'pass']\n"
        "codes = [main(['sensors']), main(['zones', 'FR']), main(run), main(['show', 'r.json'])]\n"
        "print(codes)\n"
    )
    out = _run(code, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[0, 0, 0, 0]"


def _fake_meter(tmp_path: Path) -> tuple[EnergyMeter, FakeClock]:
    clock = FakeClock()
    backend = FakeBackend(name="fake", channels=[FakeChannel("gpu:0", 100.0)], clock=clock)
    meter = EnergyMeter(backends=[backend], clock=clock, output=tmp_path / "r.json")
    return meter, clock


class _UsersError(Exception):
    pass


@pytest.mark.parametrize("exc_type", [_UsersError, KeyboardInterrupt, SystemExit])
def test_the_users_exception_passes_through_and_the_measurement_is_kept(tmp_path, exc_type):
    meter, clock = _fake_meter(tmp_path)
    raised = exc_type("the user's own")
    with pytest.raises(exc_type) as info, meter, meter.phase("train"):
        clock.advance(2.0)
        raise raised
    assert info.value is raised  # the very object, not wrapped or replaced
    report = meter.report
    assert report.energy_j == pytest.approx(200.0, rel=0.01)
    assert report.phases["train"].energy_j == pytest.approx(200.0, rel=0.01)
    assert not meter.running
    assert load_report(tmp_path / "r.json").energy_j == pytest.approx(report.energy_j)


def test_an_exception_in_a_phase_closes_the_phase_and_the_meter_goes_on(tmp_path):
    meter, clock = _fake_meter(tmp_path)
    with meter:
        with pytest.raises(_UsersError), meter.phase("eval"):
            clock.advance(1.0)
            raise _UsersError
        with meter.phase("train"):
            clock.advance(3.0)
    report = meter.report
    assert report.phases["eval"].energy_j == pytest.approx(100.0, rel=0.01)
    assert report.phases["train"].energy_j == pytest.approx(300.0, rel=0.01)
    assert report.energy_j == pytest.approx(400.0, rel=0.01)
