"""Generic JSON endpoint driver against a local server."""

from __future__ import annotations

import pytest

from bertwatt.backends import WallPlugBackend
from bertwatt.errors import ConfigError

from .conftest import Device


def _route(device: Device):
    def route(method, path, headers, body):
        if path == "/api/status?x=1":
            return 200, {"meters": [{"power": device.power_w, "wh": device.energy_j() / 3600}]}, {}
        return 404, {"error": "not found"}, {}

    route.device = device
    return route


def test_watts_and_energy_wh_paths(serve):
    dev = Device(power_w=321.0, energy_j=36_000.0)
    s = serve(_route(dev))
    b = WallPlugBackend.http_json(
        f"{s.url}/api/status?x=1", watts="meters.0.power", energy_wh="meters.0.wh", device="pdu"
    )
    av = b.probe()
    assert [c.name for c in av.channels] == ["wall:pdu", "wall:pdu:power"]
    assert av.channels[0].provenance.resolution_j is None
    values, _ = b.read()
    assert values[0] == pytest.approx(dev.energy_j(), rel=0.01)
    assert values[1] == 321.0


def test_watts_only_is_one_counted_power_channel(serve):
    s = serve(_route(Device(power_w=12.5)))
    (ch,) = (
        WallPlugBackend.http_json(f"{s.url}/api/status?x=1", watts="meters.0.power")
        .probe()
        .channels
    )
    assert (ch.name, ch.kind, ch.counted) == ("wall:http_json", "power", True)


def test_missing_field_names_the_path(serve):
    s = serve(_route(Device()))
    (u,) = (
        WallPlugBackend.http_json(f"{s.url}/api/status?x=1", watts="meters.1.power")
        .probe()
        .unavailable
    )
    assert "'meters.1'" in u.reason and "field path" in u.fix


def test_http_404_is_reported(serve):
    s = serve(_route(Device()))
    (u,) = WallPlugBackend.http_json(f"{s.url}/nope", watts="a").probe().unavailable
    assert "HTTP 404" in u.reason


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"energy_j": "a", "energy_wh": "b"}, {"watts": ".a"}, {"watts": "a..b"}, {"watts": 3}],
)
def test_bad_paths_are_config_errors(kwargs):
    with pytest.raises(ConfigError, match="http_json"):
        WallPlugBackend.http_json("http://127.0.0.1:9/x", **kwargs)


def test_password_in_url_is_refused():
    with pytest.raises(ConfigError, match="not in the URL"):
        WallPlugBackend.http_json("http://u:secret@127.0.0.1:9/x", watts="a")


def test_prefer_counter_on_a_power_only_meter_is_unavailable(serve):
    s = serve(_route(Device()))
    b = WallPlugBackend.http_json(
        f"{s.url}/api/status?x=1", watts="meters.0.power", prefer="counter"
    )
    (u,) = b.probe().unavailable
    assert "no energy counter" in u.reason and "prefer='auto'" in u.fix


def test_implausible_power_is_rejected_never_summed(serve):
    import time

    from bertwatt.meter import EnergyMeter

    dev = Device(power_w=200.0)
    s = serve(_route(dev))
    b = WallPlugBackend.http_json(
        f"{s.url}/api/status?x=1", watts="meters.0.power", max_power_w=3000.0, poll_interval_s=0.1
    )
    with EnergyMeter(backends=[b], interval_s=0.1) as meter:
        time.sleep(0.5)
        dev.set_power(1e9)  # a glitching meter
        time.sleep(0.35)
        dev.set_power(200.0)
        time.sleep(0.5)
    ch = meter.report.channel("wall:http_json")
    assert ch.rejected >= 1
    assert ch.peak_power_w == 200.0
    assert ch.energy_j < 200.0 * meter.report.duration_s * 1.05


def test_negative_power_is_a_failed_read(serve):
    def route(method, path, headers, body):
        return 200, {"p": -5}, {}

    (u,) = WallPlugBackend.http_json(serve(route).url + "/", watts="p").probe().unavailable
    assert "implausible p" in u.reason
