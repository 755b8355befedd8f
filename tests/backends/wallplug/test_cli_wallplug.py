"""``bertwatt sensors --wallplug`` and ``bertwatt run --wallplug`` against a local Shelly."""

from __future__ import annotations

import json
import os
import sys

from bertwatt.cli import main
from bertwatt.report.models import EnergyReport

from .conftest import Device, shelly_gen2, tasmota


def test_sensors_checks_the_source_and_prints_one_reading(serve, capsys):
    s = serve(shelly_gen2(Device(power_w=93.4, energy_j=3600.0 * 10)))
    assert main(["sensors", "--wallplug", f"shelly+http{s.url[4:]}"]) == 0
    out = capsys.readouterr().out
    assert "wall meter shelly: Shelly SNPL-00112EU" in out
    assert "wall:shelly:power" in out and "93.400 W" in out
    assert "update rate: every 1 s (polled every 1 s); counter resolution 3.6 J" in out


def test_sensors_json(serve, capsys):
    s = serve(tasmota(Device(power_w=20.0)))
    assert main(["sensors", "--json", "--wallplug", f"tasmota+http{s.url[4:]}?device=desk"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["device"] == "desk" and doc["update_period_s"] == 1.0
    assert doc["energy_resolution_j"] == 3600.0
    assert [c["channel"] for c in doc["channels"]] == ["wall:desk", "wall:desk:power"]
    assert doc["channels"][1]["value"] == 20.0


def test_sensors_unreachable_meter_is_an_error_with_fix(serve, capsys):
    s = serve(shelly_gen2(Device()))
    url = s.url
    s.stop()
    assert main(["sensors", "--wallplug", f"shelly+http{url[4:]}?timeout=1"]) == 1
    err = capsys.readouterr().err
    assert "wall:shelly: cannot reach the meter" in err and "Fix:" in err


def test_bad_source_is_a_one_line_error(capsys):
    assert main(["sensors", "--wallplug", "zigbee+http://x"]) == 1
    assert main(["run", "--wallplug", "redfish+https://u:hunter2@bmc", "--", "true"]) == 1
    err = capsys.readouterr().err
    assert "unknown kind of meter" in err and "hunter2" not in err


def test_run_with_wallplug_reports_the_comparison(serve, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("BERTWATT_WALLPLUG", raising=False)
    s = serve(shelly_gen2(Device(power_w=150.0, energy_j=1e6)))
    out = tmp_path / "r.json"
    code = main(
        [
            "run",
            "--backend",
            "estimate",
            "--wallplug",
            f"shelly+http{s.url[4:]}?poll=0.2",
            "-o",
            str(out),
            "--",
            sys.executable,
            "-c",
            "import time; time.sleep(1.5)",
        ]
    )
    assert code == 0
    rep = EnergyReport.load(out)
    assert rep.wall is not None and rep.wall.run.wall_j > 0
    assert rep.energy_j == rep.wall.run.component_j  # never added
    assert "software vs wall:" in capsys.readouterr().err
    assert "BERTWATT_WALLPLUG" not in os.environ


def test_run_auto_detection_adds_the_wallplug(serve, tmp_path, monkeypatch):
    monkeypatch.delenv("BERTWATT_WALLPLUG", raising=False)
    s = serve(shelly_gen2(Device(power_w=150.0)))
    out = tmp_path / "r.json"
    code = main(
        [
            "run",
            "--wallplug",
            f"shelly+http{s.url[4:]}?poll=0.2",
            "-o",
            str(out),
            "--",
            sys.executable,
            "-c",
            "import os, sys; sys.exit('BERTWATT_WALLPLUG' in os.environ)",
        ]
    )
    assert code == 0  # the child does not inherit the source
    rep = EnergyReport.load(out)
    assert any(c.name == "wall:shelly" for c in rep.channels)
    assert "BERTWATT_WALLPLUG" not in os.environ


def test_env_variable_adds_the_meter_to_auto_detection(serve, tmp_path, monkeypatch):
    s = serve(shelly_gen2(Device(power_w=150.0)))
    monkeypatch.setenv("BERTWATT_WALLPLUG", f"shelly+http{s.url[4:]}?poll=0.2&device=env")
    out = tmp_path / "r.json"
    assert main(["run", "-o", str(out), "--", sys.executable, "-c", "pass"]) == 0
    assert any(c.name == "wall:env" for c in EnergyReport.load(out).channels)


def test_run_with_an_unreachable_meter_still_runs_and_says_why(serve, tmp_path, monkeypatch):
    monkeypatch.delenv("BERTWATT_WALLPLUG", raising=False)
    s = serve(shelly_gen2(Device()))
    url = s.url
    s.stop()
    out = tmp_path / "r.json"
    code = main(
        [
            "run",
            "--backend",
            "estimate",
            "--wallplug",
            f"shelly+http{url[4:]}?timeout=1",
            "-o",
            str(out),
            "--",
            sys.executable,
            "-c",
            "raise SystemExit(3)",
        ]
    )
    assert code == 3  # the command's own exit code
    rep = EnergyReport.load(out)
    assert rep.wall is None and rep.energy_j is not None
    (u,) = [u for u in rep.unavailable if u.what == "wall:shelly"]
    assert "cannot reach the meter" in u.reason and u.fix
