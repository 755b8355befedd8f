"""Tasmota driver against a local server speaking Status 8 and EnergyRes."""

from __future__ import annotations

import time

import pytest

from bertwatt.backends import WallPlugBackend
from bertwatt.meter import EnergyMeter

from .conftest import Device, tasmota


def test_status8_power_counter_and_energy_res(serve):
    dev = Device(power_w=57.0, energy_j=3.6e6 * 12.345)
    s = serve(tasmota(dev, energy_res=3))
    b = WallPlugBackend.tasmota(s.url)
    av = b.probe()
    assert av.ok, av.unavailable
    counter, power = av.channels
    assert counter.name == "wall:tasmota" and counter.kind == "counter"
    assert counter.provenance.resolution_j == pytest.approx(3600.0)  # EnergyRes 3: 1 Wh
    assert any("EnergyRes 3" in n for n in counter.provenance.notes)
    assert power.name == "wall:tasmota:power" and not power.counted
    values, errors = b.read()
    assert errors is None
    assert values[0] == pytest.approx(12.345 * 3.6e6, abs=3600.0)
    assert values[1] == 57.0
    assert [r[1].split("?")[0] for r in s.device.requests] == ["/cm", "/cm", "/cm"]


def test_energy_res_5_is_a_finer_counter(serve):
    s = serve(tasmota(Device(), energy_res=5))
    (counter, _) = WallPlugBackend.tasmota(s.url).probe().channels
    assert counter.provenance.resolution_j == pytest.approx(36.0)


def test_multi_channel_lists_are_summed(serve):
    def route(method, path, headers, body):
        if "EnergyRes" in path:
            return 200, {"EnergyRes": 3}, {}
        return 200, {"StatusSNS": {"ENERGY": {"Power": [10, 32], "Total": [1.5, 0.5]}}}, {}

    b = WallPlugBackend.tasmota(serve(route).url)
    assert b.probe().ok
    assert b.read() == ([pytest.approx(2.0 * 3.6e6), 42.0], None)


def test_no_energy_monitor_is_unavailable(serve):
    def route(method, path, headers, body):
        return 200, {"StatusSNS": {"Time": "2026-01-01T00:00:00"}}, {}

    (u,) = WallPlugBackend.tasmota(serve(route).url).probe().unavailable
    assert "ENERGY" in u.reason and "energy monitor" in u.reason


def test_coarse_counter_falls_back_to_power_and_says_so(serve):
    """A 2 s window at 100 W is 200 J: the 1 Wh (3,600 J) counter would say 0 or 3,600."""
    dev = Device(power_w=100.0, energy_j=3.6e6 * 7.0)
    s = serve(tasmota(dev))
    wall = WallPlugBackend.tasmota(s.url, poll_interval_s=0.2)
    with EnergyMeter(backends=[wall], interval_s=0.1) as meter:
        time.sleep(2.0)
    rep = meter.report
    assert rep.energy_j == pytest.approx(100.0 * rep.duration_s, rel=0.15)
    assert rep.energy_j > 0
    assert "integrated power wall:tasmota:power" in rep.total_basis
    assert "too coarse" in rep.wall.run.wall_basis and "3600 J" in rep.wall.run.wall_basis
    assert "wall from power" in rep.summary()


def test_web_password_goes_in_the_query_and_never_in_errors(serve):
    dev = Device()
    dev.query_login = ("admin", "t4sm/ota pw")
    s = serve(tasmota(dev))
    ok = WallPlugBackend.tasmota(
        s.url, user="admin", password="t4sm/ota pw\n"
    )  # file-style newline
    assert ok.probe().ok
    bad = WallPlugBackend.tasmota(s.url, user="admin", password="wrong pass")
    (u,) = bad.probe().unavailable
    assert "web password" in u.reason and "check user= and password=" in u.fix
    assert "wrong" not in u.reason + (u.fix or "")
    s.device.fault = "500"
    time.sleep(1.05)
    _values, errors = ok.read()
    assert errors and "HTTP 500" in errors[0]
    assert "t4sm" not in errors[0] and "t4sm%2Fota" not in errors[0]
