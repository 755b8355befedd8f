"""Shelly driver against real local servers speaking the Gen2 RPC and Gen1 /status payloads."""

from __future__ import annotations

import json
import time

import pytest

from bertwatt.backends import WallPlugBackend
from bertwatt.meter import EnergyMeter

from .conftest import Device, shelly_gen2


def test_gen2_probe_gives_counter_and_power_fallback(serve):
    s = serve(shelly_gen2(dev := Device(power_w=87.5, energy_j=36_000.0)))
    b = WallPlugBackend.shelly(s.url)
    av = b.probe()
    assert av.ok and not av.unavailable
    counter, power = av.channels
    assert (counter.name, counter.kind, counter.domain, counter.counted) == (
        "wall:shelly",
        "counter",
        "wall",
        True,
    )
    assert counter.provenance.scope == "system" and counter.provenance.kind == "measured"
    assert counter.provenance.resolution_j == pytest.approx(3.6)
    assert counter.provenance.update_period_s == 1.0
    assert "Switch.GetStatus" in counter.provenance.source
    assert (power.name, power.kind, power.counted, power.parent) == (
        "wall:shelly:power",
        "power",
        False,
        "wall:shelly",
    )
    values, errors = b.read()
    assert errors is None
    assert values[0] == pytest.approx(dev.energy_j(), abs=50.0)  # Wh with 3 decimals -> J
    assert values[1] == pytest.approx(87.5)
    b.close()


def test_gen2_named_device_and_prefer_power(serve):
    s = serve(shelly_gen2(Device()))
    b = WallPlugBackend.shelly(s.url, device="rack-a", prefer="power")
    (ch,) = b.probe().channels
    assert (ch.name, ch.kind, ch.counted) == ("wall:rack-a", "power", True)


def test_polls_no_faster_than_the_device_updates(serve):
    s = serve(shelly_gen2(Device()))
    b = WallPlugBackend.shelly(s.url)
    b.probe()
    before = len(s.device.requests)
    for _ in range(20):  # 20 reads well inside one 1 s update period
        b.read()
    assert len(s.device.requests) - before == 1
    assert b.poll_interval_s == 1.0


def test_gen1_meters_total_is_watt_minutes(serve):
    dev = Device(power_w=42.0)

    def route(method, path, headers, body):
        if path == "/shelly":
            return 200, {"type": "SHPLG-S", "mac": "AABBCC", "auth": True, "fw": "1.11.0"}, {}
        if path == "/status":
            return (
                200,
                {
                    "meters": [
                        {
                            "power": 42.0,
                            "overpower": 0.0,
                            "is_valid": True,
                            "total": 1234,
                            "counters": [0, 0, 0],
                        }
                    ]
                },
                {},
            )
        return 404, {}, {}

    dev.basic = ("admin", "pl@g pass")
    s = serve(route, dev)
    b = WallPlugBackend.shelly(s.url, user="admin", password="pl@g pass")
    av = b.probe()
    assert av.ok, av.unavailable
    assert av.channels[0].provenance.resolution_j == 60.0
    values, _ = b.read()
    assert values == [pytest.approx(1234 * 60.0), pytest.approx(42.0)]


def test_gen1_invalid_reading_is_a_failed_read_not_a_zero(serve):
    def route(method, path, headers, body):
        if path == "/shelly":
            return 200, {"type": "SHSW-PM"}, {}
        return 200, {"meters": [{"power": 0.0, "is_valid": False, "total": 5}]}, {}

    b = WallPlugBackend.shelly(serve(route).url)
    av = b.probe()
    assert not av.ok
    assert "is_valid is false" in av.unavailable[0].reason


def test_gen2_digest_login(serve):
    dev = Device(power_w=61.0)
    dev.digest = ("admin", "shelly-Pa55")
    s = serve(shelly_gen2(dev))
    b = WallPlugBackend.shelly(s.url, password="shelly-Pa55")  # user 'admin' by default
    assert b.probe().ok
    assert b.read()[0][1] == 61.0
    (u,) = WallPlugBackend.shelly(s.url, password="nope").probe().unavailable
    assert "HTTP 401" in u.reason and "admin" in u.fix and "digest" in u.fix
    assert "nope" not in u.reason + u.fix
    (u,) = WallPlugBackend.shelly(s.url).probe().unavailable  # no password at all
    assert "HTTP 401" in u.reason


def test_gen2_auth_failure_names_what_to_check(serve):
    dev = Device()
    dev.basic = ("admin", "right")
    s = serve(shelly_gen2(dev))
    av = WallPlugBackend.shelly(s.url).probe()
    (u,) = av.unavailable
    assert u.what == "wall:shelly"
    assert "HTTP 401" in u.reason and "authentication failed" in u.reason
    assert "user name and password" in u.fix or "digest" in u.fix


def test_refused_connection_is_unavailable_with_fix(serve):
    s = serve(shelly_gen2(Device()))
    url = s.url
    s.stop()
    t0 = time.monotonic()
    av = WallPlugBackend.shelly(url, timeout_s=1.0).probe()
    assert time.monotonic() - t0 < 3.0
    (u,) = av.unavailable
    assert "cannot reach the meter" in u.reason and "127.0.0.1" in u.reason
    assert "address" in u.fix


@pytest.mark.parametrize(
    ("fault", "words"),
    [("500", "HTTP 500"), ("garbage", "malformed JSON"), ("close", "cannot reach")],
)
def test_http_faults_become_failed_reads(serve, fault, words):
    s = serve(shelly_gen2(Device()))
    b = WallPlugBackend.shelly(s.url, poll_interval_s=0.05)
    assert b.probe().ok
    s.device.fault = fault
    time.sleep(0.06)
    values, errors = b.read()
    assert all(v != v for v in values)  # NaN, never 0
    assert errors and words in errors[0]


def test_malformed_payload_names_the_field(serve):
    dev = Device()

    def route(method, path, headers, body):
        if path == "/shelly":
            return 200, {"gen": 2, "model": "X"}, {}
        return 200, {"apower": "lots", "aenergy": {"total": 1.0}}, {}

    av = WallPlugBackend.shelly(serve(route, dev).url).probe()
    assert "apower" in av.unavailable[0].reason and "expected a number" in av.unavailable[0].reason


@pytest.mark.parametrize("fault", ["hang", "trickle"])
def test_a_meter_that_hangs_returns_within_the_timeout(serve, fault):
    s = serve(shelly_gen2(Device()))
    b = WallPlugBackend.shelly(s.url, timeout_s=0.5, poll_interval_s=0.05)
    assert b.probe().ok
    s.device.fault = fault
    time.sleep(0.06)
    t0 = time.monotonic()
    _values, errors = b.read()
    elapsed = time.monotonic() - t0
    assert elapsed < 2.0  # the whole request is bounded, not each socket operation
    assert errors and "no answer within 0.5 s" in errors[0]


def test_meter_run_compares_wall_with_components(serve):
    """A real meter: a fake 60 W component beside a 100 W Shelly; report.wall says the rest."""
    from bertwatt.testing import FakeBackend, FakeChannel

    dev = Device(power_w=100.0, energy_j=7_200_000.0)
    s = serve(shelly_gen2(dev))
    wall = WallPlugBackend.shelly(s.url, poll_interval_s=0.2)
    comp = FakeBackend(channels=[FakeChannel("gpu:0", 60.0, kind="power", scope="gpu-board")])
    with EnergyMeter(backends=[comp, wall], interval_s=0.1) as meter, meter.phase("train"):
        time.sleep(2.5)
    rep = meter.report
    ch = rep.channel("wall:shelly")
    assert ch.backend == "shelly" and ch.domain == "wall" and ch.provenance.scope == "system"
    comp_j = rep.channel("gpu:0").energy_j
    # the component total is the report total: the wall meter is never added
    assert rep.energy_j == pytest.approx(comp_j)
    assert "wall:shelly" in rep.total_basis and "never added" in rep.total_basis
    w = rep.wall
    assert w is not None
    assert w.run.component_j == pytest.approx(comp_j)
    assert w.run.wall_j == pytest.approx(100.0 * rep.duration_s, rel=0.1)
    assert w.run.ratio == pytest.approx(w.run.wall_j / w.run.component_j)
    assert w.run.unseen_j == pytest.approx(w.run.wall_j - w.run.component_j)
    # a 2.5 s window is shorter than 20 refreshes of a counter updated every 1 s: power is used
    assert w.run.wall_basis.startswith("integrated power wall:shelly:power")
    assert "refreshes every 1 s, too rarely for a 2.5" in w.run.wall_basis
    assert set(w.phases) == {"train"}
    assert w.phases["train"].wall_j == pytest.approx(
        100.0 * rep.phases["train"].duration_s, rel=0.1
    )
    lines = [ln for ln in rep.summary().splitlines() if "wall/components" in ln]
    assert len(lines) == 2 and "train" in lines[1] and "x1.6" in lines[0]
    # round trip through JSON keeps the comparison
    again = type(rep).model_validate_json(rep.to_json())
    assert again.wall == rep.wall


def test_wall_meter_alone_is_the_total_and_basis_says_so(serve):
    s = serve(shelly_gen2(Device(power_w=250.0, energy_j=1e6)))
    wall = WallPlugBackend.shelly(s.url, poll_interval_s=0.2)
    with EnergyMeter(backends=[wall], interval_s=0.1) as meter:
        time.sleep(1.5)
    rep = meter.report
    assert rep.energy_j == pytest.approx(250.0 * rep.duration_s, rel=0.15)
    assert rep.total_basis.startswith("wall meter only")
    assert rep.wall is not None and rep.wall.run.component_j is None
    assert rep.wall.run.ratio is None and rep.wall.run.unseen_j is None
    assert rep.energy_j == pytest.approx(rep.wall.run.wall_j)


def test_reboot_resets_the_counter_and_power_covers_it(serve):
    dev = Device(power_w=100.0, energy_j=5e6)
    s = serve(shelly_gen2(dev))
    # the same payload read as a generic JSON meter that refreshes every 0.02 s, so that the
    # 2.7 s window is long enough for its counter and only the reset decides
    wall = WallPlugBackend.http_json(
        f"{s.url}/rpc/Switch.GetStatus?id=0",
        watts="apower",
        energy_wh="aenergy.total",
        update_period_s=0.02,
        poll_interval_s=0.1,
        resolution_j=3.6,
        device="shelly",
    )
    with EnergyMeter(backends=[wall], interval_s=0.1) as meter:
        time.sleep(1.2)
        dev.reboot()
        time.sleep(1.5)
    rep = meter.report
    counter = rep.channel("wall:shelly")
    assert any("reset" in e for e in counter.events)
    assert counter.coverage < rep.channel("wall:shelly:power").coverage
    # the total is not the 5 MJ jump and not a loss: the power readings cover the reboot
    assert rep.energy_j == pytest.approx(100.0 * rep.duration_s, rel=0.15)
    assert "integrated power wall:shelly:power" in rep.total_basis
    assert "counter reset" in rep.wall.run.wall_basis


def test_meter_that_hangs_mid_run_is_a_gap_and_stop_is_bounded(serve):
    from bertwatt.testing import FakeBackend, FakeChannel

    dev = Device(power_w=100.0)
    s = serve(shelly_gen2(dev))
    wall = WallPlugBackend.shelly(s.url, timeout_s=0.5, poll_interval_s=0.1)
    comp = FakeBackend(channels=[FakeChannel("cpu:package-0", 30.0, kind="power")])
    meter = EnergyMeter(backends=[comp, wall], interval_s=0.1, slow_read_timeout_s=1.0)
    meter.start()
    time.sleep(1.0)
    dev.fault = "hang"
    time.sleep(2.0)
    t0 = time.monotonic()
    rep = meter.stop()
    assert time.monotonic() - t0 < 3.0
    ch = rep.channel("wall:shelly:power")
    assert ch.failed_reads >= 1
    assert any("no answer within 0.5 s" in e for e in ch.events)
    assert ch.coverage < 0.8
    assert rep.energy_j == pytest.approx(rep.channel("cpu:package-0").energy_j)
    assert json.loads(rep.to_json())["wall"]["run"]["wall_j"] is not None


def test_the_meter_samples_a_meter_no_faster_than_its_poll_interval(serve):
    """A blocking meter is scheduled every max(interval, poll interval), not every interval with
    the same cached answer stamped again."""
    s = serve(shelly_gen2(Device(power_w=100.0, energy_j=0.0)))
    wall = WallPlugBackend.shelly(s.url, poll_interval_s=0.5)
    with EnergyMeter(backends=[wall], interval_s=0.1) as meter:
        time.sleep(3.0)
    rep = meter.report
    ch = rep.channel("wall:shelly:power")
    # about one sample per 0.5 s (plus the first read and the one after the window), not 30
    assert 4 <= ch.samples <= 3.0 / 0.5 + 4, ch.samples
    assert rep.wall is not None
    assert rep.wall.run.wall_j == pytest.approx(100.0 * 3.0, rel=0.2)
