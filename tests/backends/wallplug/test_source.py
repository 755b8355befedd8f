"""Source strings (``--wallplug``, ``BERTWATT_WALLPLUG``) and credentials handling."""

from __future__ import annotations

import pickle

import pytest

from bertwatt.backends import WallPlugBackend, create
from bertwatt.backends.wallplug._http import Credentials
from bertwatt.backends.wallplug.source import parse_source
from bertwatt.config import wallplug_credentials_from_env, wallplug_from_env
from bertwatt.errors import ConfigError


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("shelly+http://192.168.1.50", ("shelly", ("http://192.168.1.50",), {})),
        (
            "shelly+http://192.168.1.50:8080?switch=1&device=desk",
            ("shelly", ("http://192.168.1.50:8080",), {"switch": 1, "device": "desk"}),
        ),
        ("tasmota+http://192.168.1.51", ("tasmota", ("http://192.168.1.51",), {})),
        (
            "redfish+https://admin@bmc.example?chassis=1&verify=0&auth=basic",
            (
                "redfish",
                ("https://bmc.example",),
                {"chassis": "1", "verify": False, "auth": "basic", "user": "admin"},
            ),
        ),
        (
            "redfish+https://bmc.example?verify=/etc/ca.pem",
            ("redfish", ("https://bmc.example",), {"verify": "/etc/ca.pem"}),
        ),
        ("ipmi:", ("ipmi", (None,), {"interface": "open"})),
        (
            "ipmi://root@10.0.0.5:6230?sensor=Pwr%20Consumption&timeout=3",
            (
                "ipmi",
                ("10.0.0.5",),
                {"sensor": "Pwr Consumption", "timeout_s": 3.0, "port": 6230, "user": "root"},
            ),
        ),
        ("command:my-meter --watts 'a b'", ("command", (["my-meter", "--watts", "a b"],), {})),
        (
            "json+http://10.0.0.9/status?x=1#watts=meters.0.power&energy_wh=meters.0.total",
            (
                "http_json",
                ("http://10.0.0.9/status?x=1",),
                {"watts": "meters.0.power", "energy_wh": "meters.0.total"},
            ),
        ),
    ],
)
def test_parse_source(source, expected):
    assert parse_source(source) == expected


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("", "non-empty"),
        ("plug", "unknown kind"),
        ("zigbee+http://x", "unknown kind"),
        ("shelly+ftp://x", "unknown kind"),
        ("shelly+http://", "with a host"),
        ("shelly+http://x?colour=red", "unknown option 'colour'"),
        ("shelly+http://x?switch=a", "not a channel number"),
        ("shelly+http://x?timeout=soon", "not a number"),
        ("redfish+https://admin:hunter2@bmc", "password may not be part"),
        ("redfish+https://bmc?password=hunter2", "password may not be part"),
        ("ipmi://root:hunter2@10.0.0.5", "password may not be part"),
        ("command:", "no program"),
        ("shelly+http://x\n", None),
    ],
)
def test_bad_sources(source, words):
    if words is None:  # surrounding whitespace is fine
        assert parse_source(source)[0] == "shelly"
        return
    with pytest.raises(ConfigError) as info:
        parse_source(source)
    assert words in str(info.value)
    assert "hunter2" not in str(info.value)


def test_from_source_and_registry_build_backends():
    b = WallPlugBackend.from_source("shelly+http://127.0.0.1:9?device=desk&poll=2")
    assert b.name == "shelly" and b.device == "desk" and b.poll_interval_s == 2.0
    c = create("wallplug", source="tasmota+http://127.0.0.1:9")
    assert isinstance(c, WallPlugBackend) and c.name == "tasmota" and c.blocking
    with pytest.raises(ConfigError, match="needs source="):
        create("wallplug")


def test_env_variables(monkeypatch, tmp_path):
    monkeypatch.delenv("BERTWATT_WALLPLUG", raising=False)
    assert wallplug_from_env() is None
    monkeypatch.setenv("BERTWATT_WALLPLUG", "  shelly+http://127.0.0.1:9 ")
    assert wallplug_from_env() == "shelly+http://127.0.0.1:9"
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    monkeypatch.setenv("BERTWATT_WALLPLUG_USER", "admin")
    monkeypatch.setenv("BERTWATT_WALLPLUG_PASSWORD", "other")
    monkeypatch.setenv("BERTWATT_WALLPLUG_PASSWORD_FILE", str(pw))
    assert wallplug_credentials_from_env() == ("admin", None, str(pw))
    from bertwatt.backends import default_backends

    names = [b.name for b in default_backends()]
    assert names[-1] == "shelly"


def test_credentials_are_cleaned_redacted_and_never_printed(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text('  p@ss/w"rd\n')
    c = Credentials("admin", password_file=pw)
    assert c.reveal() == 'p@ss/w"rd'
    assert "p@ss" not in repr(c)
    for form in ['p@ss/w"rd', 'p@ss\\/w\\"rd', "p%40ss%2Fw%22rd", 'p@ss/w\\"rd']:
        assert "p@ss" not in c.redact(f"echo: {form}") or form == 'p@ss\\/w\\"rd'
    assert c.redact(c.basic_header()) == "Basic ***"
    with pytest.raises(TypeError):
        pickle.dumps(c)
    with pytest.raises(ConfigError, match="control character"):
        Credentials("admin", "a\x1bb")
    with pytest.raises(ConfigError, match="empty"):
        Credentials("admin", "  \n")
    with pytest.raises(ConfigError, match="cannot read the password file"):
        Credentials("admin", password_file=tmp_path / "missing")
    with pytest.raises(ConfigError, match="not both"):
        Credentials("admin", "x", password_file=pw)
