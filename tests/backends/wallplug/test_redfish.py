"""Redfish driver against the sushy-tools static mockup emulator (real server on 127.0.0.1).

The mockup is written to tmp_path and rewritten between polls (the emulator reads the files on
every GET). Session login, which the static emulator does not implement, is tested against a
local server that does.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bertwatt.backends import WallPlugBackend
from bertwatt.meter import EnergyMeter

from .conftest import Device

sushy = pytest.importorskip(
    "sushy_tools.static.main", reason="sushy-tools is not installed (pip install -e '.[dev]')"
)


def _write(root: Path, resource: str, doc: dict) -> None:
    d = root / resource
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / "index.json.tmp"
    tmp.write_text(json.dumps(doc))
    tmp.replace(d / "index.json")  # atomic: the emulator never reads half a file


def _mockup(root: Path, power_w: float = 344.0, energy_kwh: float = 1234.5) -> None:
    _write(
        root,
        "",
        {
            "@odata.id": "/redfish/v1/",
            "Id": "RootService",
            "Chassis": {"@odata.id": "/redfish/v1/Chassis"},
            "SessionService": {"@odata.id": "/redfish/v1/SessionService"},
        },
    )
    _write(
        root,
        "Chassis",
        {
            "@odata.id": "/redfish/v1/Chassis",
            "Members@odata.count": 3,
            "Members": [
                {"@odata.id": "/redfish/v1/Chassis/Blade"},
                {"@odata.id": "/redfish/v1/Chassis/1"},
                {"@odata.id": "/redfish/v1/Chassis/2"},
            ],
        },
    )
    _write(
        root,
        "Chassis/Blade",
        {"@odata.id": "/redfish/v1/Chassis/Blade", "Id": "Blade", "ChassisType": "Blade"},
    )
    _write(
        root,
        "Chassis/1",
        {
            "@odata.id": "/redfish/v1/Chassis/1",
            "Id": "1",
            "Manufacturer": "Contoso",
            "Model": "3500RX",
            "Power": {"@odata.id": "/redfish/v1/Chassis/1/Power"},
        },
    )
    set_power(root, power_w)
    _write(
        root,
        "Chassis/2",
        {
            "@odata.id": "/redfish/v1/Chassis/2",
            "Id": "2",
            "Name": "Rack2",
            "PowerSubsystem": {"@odata.id": "/redfish/v1/Chassis/2/PowerSubsystem"},
            "EnvironmentMetrics": {"@odata.id": "/redfish/v1/Chassis/2/EnvironmentMetrics"},
        },
    )
    set_environment(root, power_w, energy_kwh)


def set_power(root: Path, watts: float | None) -> None:
    _write(
        root,
        "Chassis/1/Power",
        {
            "@odata.id": "/redfish/v1/Chassis/1/Power",
            "PowerControl": [
                {
                    "@odata.id": "/redfish/v1/Chassis/1/Power#/PowerControl/0",
                    "MemberId": "0",
                    "Name": "System Power Control",
                    "PowerConsumedWatts": watts,
                    "PowerCapacityWatts": 800,
                    "PowerMetrics": {"IntervalInMin": 1},
                }
            ],
        },
    )


def set_environment(root: Path, watts: float, energy_kwh: float) -> None:
    _write(
        root,
        "Chassis/2/EnvironmentMetrics",
        {
            "@odata.id": "/redfish/v1/Chassis/2/EnvironmentMetrics",
            "PowerWatts": {
                "DataSourceUri": "/redfish/v1/Chassis/2/Sensors/Power",
                "Reading": watts,
            },
            "EnergykWh": {
                "DataSourceUri": "/redfish/v1/Chassis/2/Sensors/Energy",
                "Reading": energy_kwh,
            },
        },
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(root: Path, *extra: str) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sushy_tools.static.main",
            "-i",
            "127.0.0.1",
            "-p",
            str(port),
            "-m",
            str(root),
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            if proc.poll() is not None:
                pytest.fail("sushy-static exited at start")
            time.sleep(0.05)
    proc.kill()
    pytest.fail("sushy-static did not listen within 20 s")


@pytest.fixture
def emulator(tmp_path):
    root = tmp_path / "mockup"
    _mockup(root)
    proc, port = _start(root)
    yield root, f"http://127.0.0.1:{port}"
    proc.kill()
    proc.wait(5)


def test_power_control_reading_rewritten_between_polls(emulator):
    root, url = emulator
    b = WallPlugBackend.redfish(url, chassis="1", poll_interval_s=0.1)
    (ch,) = b.probe().channels
    assert (ch.name, ch.kind, ch.counted, ch.domain) == ("wall:redfish", "power", True, "wall")
    assert ch.provenance.source == "Redfish /redfish/v1/Chassis/1/Power: power"
    assert ch.info["chassis"] == "1" and ch.info["auth"] == "none"
    assert b.read() == ([344.0], None)
    set_power(root, 512.25)
    time.sleep(0.12)
    assert b.read() == ([512.25], None)
    set_power(root, None)  # the BMC has no reading now: a failed read, never 0
    time.sleep(0.12)
    values, errors = b.read()
    assert values[0] != values[0] and "PowerConsumedWatts is null" in errors[0]


def test_first_chassis_with_power_is_found(emulator):
    _, url = emulator
    (ch,) = WallPlugBackend.redfish(url).probe().channels  # Blade has no power: skipped
    assert ch.info["chassis"] == "1"


def test_environment_metrics_counter_and_power(emulator):
    root, url = emulator
    b = WallPlugBackend.redfish(url, chassis="2", poll_interval_s=0.1)
    counter, power = b.probe().channels
    assert counter.kind == "counter" and counter.provenance.resolution_j == pytest.approx(3600.0)
    assert "EnvironmentMetrics" in counter.provenance.source
    assert power.name == "wall:redfish:power"
    assert b.read() == ([pytest.approx(1234.5 * 3.6e6), 344.0], None)
    set_environment(root, 400.0, 1234.75)
    time.sleep(0.12)
    assert b.read() == ([pytest.approx(1234.75 * 3.6e6), 400.0], None)


def test_meter_run_with_changing_reading(emulator):
    root, url = emulator
    wall = WallPlugBackend.redfish(url, chassis="1", poll_interval_s=0.1)
    with EnergyMeter(backends=[wall], interval_s=0.1) as meter:
        time.sleep(1.0)
        set_power(root, 600.0)
        time.sleep(1.0)
    rep = meter.report
    ch = rep.channel("wall:redfish")
    assert ch.peak_power_w == 600.0
    # between 344 W for ~1 s and 600 W for ~1 s
    assert 344.0 * rep.duration_s < rep.energy_j < 600.0 * rep.duration_s
    assert rep.total_basis.startswith("wall meter only")


def test_unknown_chassis_and_no_power(emulator, tmp_path):
    _, url = emulator
    (u,) = WallPlugBackend.redfish(url, chassis="9").probe().unavailable
    assert "no chassis '9'" in u.reason and "chassis=" in u.fix
    (u,) = WallPlugBackend.redfish(url, chassis="Blade").probe().unavailable
    assert "no chassis reports its power" in u.reason


def test_static_emulator_session_without_token_is_a_clear_error(emulator):
    _, url = emulator
    (u,) = WallPlugBackend.redfish(url, user="admin", password="pw").probe().unavailable
    assert "no X-Auth-Token" in u.reason and "auth='basic'" in u.fix


def test_auth_needs_credentials():
    from bertwatt.errors import ConfigError

    with pytest.raises(ConfigError, match="needs user= and password="):
        WallPlugBackend.redfish("http://127.0.0.1:9", auth="basic")


@pytest.fixture
def tls_emulator(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: cannot make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    root = tmp_path / "mockup"
    _mockup(root)
    proc, port = _start(root, "-c", str(cert), "-k", str(key))
    yield f"https://127.0.0.1:{port}", cert
    proc.kill()
    proc.wait(5)


def test_tls_is_verified_by_default_and_switchable(tls_emulator):
    url, cert = tls_emulator
    (u,) = WallPlugBackend.redfish(url, chassis="1").probe().unavailable
    assert "TLS certificate not trusted" in u.reason and "verify=False" in u.fix
    ok = WallPlugBackend.redfish(url, chassis="1", verify=False)
    (ch,) = ok.probe().channels
    assert ch.info["tls_verify"] == "False"
    assert ok.read() == ([344.0], None)
    pinned = WallPlugBackend.redfish(url, chassis="1", verify=str(cert))
    assert pinned.probe().ok


def _session_bmc(device: Device, *, user: str, password: str):
    """A Redfish service that requires a session (X-Auth-Token), or basic auth."""
    import base64

    tokens: set[str] = set()
    state = {"logins": 0, "deleted": 0}

    def route(method, path, headers, body):
        if method == "POST" and path == "/redfish/v1/SessionService/Sessions":
            doc = json.loads(body or b"{}")
            if (doc.get("UserName"), doc.get("Password")) != (user, password):
                return 401, {"error": {"message": "Invalid username or password"}}, {}
            state["logins"] += 1
            token = f"tok{state['logins']}"
            tokens.add(token)
            return (
                201,
                {"Id": token},
                {"X-Auth-Token": token, "Location": f"/redfish/v1/SessionService/Sessions/{token}"},
            )
        basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        if headers.get("x-auth-token") not in tokens and headers.get("authorization") != basic:
            return 401, {"error": {"message": "unauthorized"}}, {}
        if method == "DELETE":
            tokens.discard(path.rsplit("/", 1)[-1])
            state["deleted"] += 1
            return 204, b"", {}
        docs = {
            "/redfish/v1/": {"Chassis": {"@odata.id": "/redfish/v1/Chassis"}},
            "/redfish/v1/Chassis": {"Members": [{"@odata.id": "/redfish/v1/Chassis/1"}]},
            "/redfish/v1/Chassis/1": {
                "Id": "1",
                "Power": {"@odata.id": "/redfish/v1/Chassis/1/Power"},
            },
            "/redfish/v1/Chassis/1/Power": {
                "PowerControl": [{"PowerConsumedWatts": device.power_w}]
            },
        }
        return (200, docs[path], {}) if path in docs else (404, {}, {})

    route.device = device
    return route, tokens, state


def test_session_login_token_reuse_expiry_and_logout(serve):
    route, tokens, state = _session_bmc(Device(power_w=275.0), user="root", password="calvin")
    s = serve(route)
    b = WallPlugBackend.redfish(s.url, user="root", password="calvin", poll_interval_s=0.05)
    assert b.probe().ok
    assert b.read() == ([275.0], None)
    tokens.clear()  # the BMC expired the session: log in again once
    time.sleep(0.06)
    assert b.read() == ([275.0], None)
    assert state["logins"] == 2
    b.close()
    assert state["deleted"] == 1 and not tokens
    assert all("calvin" not in h.get("authorization", "") for _, _, h, _ in s.device.requests)


def test_basic_auth(serve):
    route, _, state = _session_bmc(Device(power_w=99.0), user="root", password="calvin")
    s = serve(route)
    b = WallPlugBackend.redfish(s.url, user="root", password="calvin", auth="basic")
    assert b.probe().ok and state["logins"] == 0
    assert b.read() == ([99.0], None)


def test_wrong_password_names_what_to_check_and_never_echoes_it(serve):
    route, _, _ = _session_bmc(Device(), user="root", password="calvin")
    s = serve(route)
    (u,) = WallPlugBackend.redfish(s.url, user="root", password="hunter2").probe().unavailable
    assert "HTTP 401" in u.reason and "authentication failed" in u.reason
    assert "user name and password" in u.fix
    assert "hunter2" not in u.reason + u.fix


def test_password_never_reaches_the_report_the_events_or_the_log(serve, caplog):
    """A run whose BMC rejects the password mid-run: every output is searched for it."""
    import logging

    caplog.set_level(logging.DEBUG)
    route, _, _ = _session_bmc(Device(power_w=180.0), user="root", password="Cal/vin 42")
    s = serve(route)
    b = WallPlugBackend.redfish(
        s.url, user="root", password="Cal/vin 42\n", poll_interval_s=0.1, timeout_s=1.0
    )
    with EnergyMeter(backends=[b], interval_s=0.1) as meter:
        time.sleep(0.6)
        s.device.fault = "500"  # the BMC breaks and echoes nothing useful
        time.sleep(0.4)
    text = meter.report.to_json() + meter.report.summary() + caplog.text + repr(b)
    for form in ("Cal/vin 42", "Cal\\/vin 42", "Cal%2Fvin%2042", "cm9vdDpDYWwvdmluIDQy"):
        assert form not in text
    assert any("HTTP 500" in e for e in meter.report.channel("wall:redfish").events)


def test_probe_of_a_slow_bmc_fits_its_budget(serve):
    """Every request answers just inside its timeout: probe() still ends within its budget."""

    def route(method, path, headers, body):
        time.sleep(0.45)
        docs = {
            "/redfish/v1/": {"Chassis": {"@odata.id": "/redfish/v1/Chassis"}},
            "/redfish/v1/Chassis": {
                "Members": [{"@odata.id": f"/redfish/v1/Chassis/{i}"} for i in range(20)]
            },
        }
        return (200, docs[path], {}) if path in docs else (200, {"Id": "x"}, {})

    b = WallPlugBackend.redfish(serve(route).url, timeout_s=0.5)
    b.probe_budget_s = 2.0
    t0 = time.monotonic()
    (u,) = b.probe().unavailable
    assert time.monotonic() - t0 < 3.0
    assert "time budget" in u.reason
