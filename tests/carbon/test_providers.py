"""Live providers against a real HTTP server on 127.0.0.1 serving their documented shapes."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from bertwatt.carbon import CarbonIntensity, apply_carbon
from bertwatt.carbon.providers import (
    ElectricityMaps,
    ProviderHTTPError,
    UKCarbonIntensity,
    WattTime,
)
from bertwatt.errors import CarbonDataError, ConfigError

TOKEN = "em-SeCrEt-t0ken-9f2c"
PASSWORD = "wt-pa55-w0rd-Zq"
JWT = "eyJhbGciOiJIUzI1NiJ9.wt-jwt-SeCrEt"

EM_LATEST = {
    "zone": "DE",
    "carbonIntensity": 302,
    "datetime": "2025-03-01T12:00:00.000Z",
    "updatedAt": "2025-03-01T12:05:01.000Z",
    "createdAt": "2025-02-26T12:40:33.000Z",
    "emissionFactorType": "lifecycle",
    "isEstimated": True,
    "estimationMethod": "TIME_SLICER_AVERAGE",
}
UK_NATIONAL = {
    "data": [
        {
            "from": "2025-03-01T12:00Z",
            "to": "2025-03-01T12:30Z",
            "intensity": {"forecast": 180, "actual": 175, "index": "moderate"},
        }
    ]
}
UK_REGION = {
    "data": [
        {
            "regionid": 13,
            "dnoregion": "UKPN London",
            "shortname": "London",
            "data": [
                {
                    "from": "2025-03-01T12:00Z",
                    "to": "2025-03-01T12:30Z",
                    "intensity": {"forecast": 190, "index": "moderate"},
                    "generationmix": [
                        {"fuel": "gas", "perc": 40.1},
                        {"fuel": "wind", "perc": 30.2},
                    ],
                }
            ],
        }
    ]
}
WT_FORECAST = {
    "data": [
        {"point_time": "2025-03-01T12:00:00+00:00", "value": 850.0},
        {"point_time": "2025-03-01T12:05:00+00:00", "value": 845.5},
    ],
    "meta": {
        "region": "CAISO_NORTH",
        "signal_type": "co2_moer",
        "units": "lbs_co2_per_mwh",
        "model": {"date": "2024-10-01"},
        "data_point_period_seconds": 300,
        "generated_at": "2025-03-01T12:00:00+00:00",
    },
}
WT_INDEX = {
    "data": [{"point_time": "2025-03-01T12:00:00+00:00", "value": 37.0}],
    "meta": {"region": "CAISO_NORTH", "signal_type": "co2_moer", "units": "percentile"},
}


def em(api: Any, tmp_path: Path, **kw: Any) -> ElectricityMaps:
    kw = {"timeout_s": 2.0, "retries": 0, "backoff_s": 0.0, "cache_dir": tmp_path, **kw}
    return ElectricityMaps(zone="DE", token=TOKEN, base_url=api.url + "/v3", **kw)


def uk(api: Any, tmp_path: Path, **kw: Any) -> UKCarbonIntensity:
    kw = {"timeout_s": 2.0, "retries": 0, "backoff_s": 0.0, "cache_dir": tmp_path, **kw}
    return UKCarbonIntensity(base_url=api.url, **kw)


def wt(api: Any, tmp_path: Path, **kw: Any) -> WattTime:
    kw = {"timeout_s": 2.0, "retries": 0, "backoff_s": 0.0, "cache_dir": tmp_path, **kw}
    return WattTime(region="CAISO_NORTH", username="ada", password=PASSWORD, base_url=api.url, **kw)


def assert_no_secret(*texts: str) -> None:
    basic = base64.b64encode(f"ada:{PASSWORD}".encode()).decode()
    for text in texts:
        for secret in (TOKEN, PASSWORD, JWT, basic):
            assert secret not in text


# ---------------------------------------------------------------------- Electricity Maps
def test_electricitymaps_latest(api: Any, tmp_path: Path) -> None:
    api.add("/v3/carbon-intensity/latest", EM_LATEST)
    reading = em(api, tmp_path).fetch()
    assert reading.g_per_kwh == 302.0 and reading.zone == "DE" and reading.basis == "average"
    assert reading.at == datetime(2025, 3, 1, 12, tzinfo=timezone.utc)
    assert "emission factors: lifecycle" in reading.notes
    assert any("estimated (TIME_SLICER_AVERAGE)" in n for n in reading.notes)
    seen = api.seen[0]
    assert seen.query == "zone=DE"
    assert seen.headers["auth-token"] == TOKEN
    assert not reading.from_cache


@pytest.mark.parametrize(
    ("status", "fix"), [(401, "check the Electricity Maps token"), (404, "zone id 'DE'")]
)
def test_electricitymaps_http_errors_are_redacted(
    api: Any, tmp_path: Path, status: int, fix: str
) -> None:
    api.add("/v3/carbon-intensity/latest", api.Reply(status, {"message": f"bad token {TOKEN}"}))
    provider = em(api, tmp_path)
    with pytest.raises(ProviderHTTPError) as info:
        provider.fetch()
    err = info.value
    assert err.status == status and fix in str(err)
    assert "***" in str(err)
    assert_no_secret(str(err), repr(err), repr(provider), str(provider.__dict__))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{not json", "malformed JSON"),
        ([1, 2], "not a JSON object"),
        ({"zone": "DE"}, "no numeric carbonIntensity"),
        ({"zone": "DE", "carbonIntensity": -4}, "not a number >= 0"),
        ({"zone": "DE", "carbonIntensity": None}, "no numeric carbonIntensity"),
    ],
)
def test_electricitymaps_malformed_answers(
    api: Any, tmp_path: Path, body: Any, message: str
) -> None:
    api.add("/v3/carbon-intensity/latest", api.Reply(200, body))
    with pytest.raises(CarbonDataError, match=message):
        em(api, tmp_path).fetch()


def test_electricitymaps_config_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="zone"):
        ElectricityMaps(zone="D E", token=TOKEN)
    with pytest.raises(ConfigError, match="token"):
        ElectricityMaps(zone="DE", token="")
    with pytest.raises(ConfigError, match="base_url"):
        ElectricityMaps(zone="DE", token=TOKEN, base_url="ftp://x")
    with pytest.raises(ConfigError, match="timeout_s"):
        ElectricityMaps(zone="DE", token=TOKEN, timeout_s=0)
    with pytest.raises(ConfigError, match="retries"):
        ElectricityMaps(zone="DE", token=TOKEN, retries=-1)
    with pytest.raises(ConfigError, match="cache_max_age_s"):
        ElectricityMaps(zone="DE", token=TOKEN, cache_max_age_s=-1)


# ---------------------------------------------------------------------- UK
def test_uk_national_prefers_actual(api: Any, tmp_path: Path) -> None:
    api.add("/intensity", UK_NATIONAL)
    reading = uk(api, tmp_path).fetch()
    assert (reading.g_per_kwh, reading.zone) == (175.0, "GB")
    assert reading.at == datetime(2025, 3, 1, 12, tzinfo=timezone.utc)
    assert any("CO2 only" in n for n in reading.notes)
    assert any("estimated actual" in n for n in reading.notes)


def test_uk_national_without_actual_uses_forecast(api: Any, tmp_path: Path) -> None:
    body = json.loads(json.dumps(UK_NATIONAL))
    body["data"][0]["intensity"]["actual"] = None
    api.add("/intensity", body)
    reading = uk(api, tmp_path).fetch()
    assert reading.g_per_kwh == 180.0 and any("forecast" in n for n in reading.notes)


def test_uk_regional_by_id_and_postcode(api: Any, tmp_path: Path) -> None:
    api.add("/regional/regionid/13", UK_REGION)
    api.add("/regional/postcode/SW1", UK_REGION)
    by_id = uk(api, tmp_path, region_id=13).fetch()
    assert (by_id.g_per_kwh, by_id.zone) == (190.0, "GB-region-13")
    assert "London" in by_id.source
    by_pc = uk(api, tmp_path, postcode="sw1").fetch()
    assert by_pc.zone == "GB-postcode-SW1" and by_pc.g_per_kwh == 190.0


@pytest.mark.parametrize(
    "body",
    [
        {"data": []},
        {"error": {"code": "400", "message": "Invalid"}},
        {"data": [{"data": []}]},
        "[]",
    ],
)
def test_uk_unexpected_shapes(api: Any, tmp_path: Path, body: Any) -> None:
    api.add("/regional/regionid/3", api.Reply(200, body))
    with pytest.raises(CarbonDataError, match="unexpected shape"):
        uk(api, tmp_path, region_id=3).fetch()


def test_uk_config_is_validated() -> None:
    for bad in (0, 18, True, "13"):
        with pytest.raises(ConfigError, match="region_id"):
            UKCarbonIntensity(region_id=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="postcode"):
        UKCarbonIntensity(postcode="SW1A 1AA")
    with pytest.raises(ConfigError, match="not both"):
        UKCarbonIntensity(region_id=1, postcode="SW1")


# ---------------------------------------------------------------------- WattTime
def test_watttime_login_then_moer(api: Any, tmp_path: Path) -> None:
    api.add("/login", {"token": JWT})
    api.add("/v3/forecast", WT_FORECAST)
    api.add("/v3/signal-index", WT_INDEX)
    provider = wt(api, tmp_path, signal_index=True)
    reading = provider.fetch()
    assert reading.g_per_kwh == pytest.approx(850.0 * 0.45359237)
    assert reading.basis == "marginal" and reading.zone == "CAISO_NORTH"
    assert any("37th percentile" in n for n in reading.notes)
    assert any("CO2 only" in n for n in reading.notes)
    login = api.seen[0]
    assert login.path == "/login"
    user, _, password = base64.b64decode(login.headers["authorization"][6:]).decode().partition(":")
    assert (user, password) == ("ada", PASSWORD)
    data = next(s for s in api.seen if s.path == "/v3/forecast")
    assert data.headers["authorization"] == f"Bearer {JWT}"
    assert "region=CAISO_NORTH" in data.query and "signal_type=co2_moer" in data.query
    assert "horizon_hours=0" in data.query
    assert_no_secret(repr(provider), repr(reading), json.dumps(reading.to_json()))


def test_watttime_relogs_in_once_on_401(api: Any, tmp_path: Path) -> None:
    api.add("/login", {"token": JWT})
    api.add("/v3/forecast", api.Reply(401, {"error": "expired"}), WT_FORECAST)
    assert wt(api, tmp_path).fetch().g_per_kwh > 0
    assert api.hits("/login") == 2 and api.hits("/v3/forecast") == 2


def test_watttime_login_refused(api: Any, tmp_path: Path) -> None:
    api.add("/login", api.Reply(403, f"Forbidden for ada:{PASSWORD}"))
    with pytest.raises(ProviderHTTPError, match="login refused") as info:
        wt(api, tmp_path).fetch()
    assert "username and password" in str(info.value)
    assert_no_secret(str(info.value))


def test_watttime_region_outside_plan(api: Any, tmp_path: Path) -> None:
    api.add("/login", {"token": JWT})
    api.add("/v3/forecast", api.Reply(403, {"error": f"no access; token {JWT}"}))
    with pytest.raises(ProviderHTTPError, match="only CAISO_NORTH") as info:
        wt(api, tmp_path).fetch()
    assert_no_secret(str(info.value))


@pytest.mark.parametrize(
    ("login", "forecast", "message"),
    [
        ({"nope": 1}, WT_FORECAST, "no token"),
        ({"token": JWT}, {"data": []}, "unexpected shape"),
        ({"token": JWT}, {**WT_FORECAST, "meta": {"units": "percentile"}}, "units 'percentile'"),
        ({"token": JWT}, "<html>", "malformed JSON"),
    ],
)
def test_watttime_malformed(
    api: Any, tmp_path: Path, login: Any, forecast: Any, message: str
) -> None:
    api.add("/login", login)
    api.add("/v3/forecast", api.Reply(200, forecast))
    with pytest.raises(CarbonDataError, match=message):
        wt(api, tmp_path).fetch()


def test_watttime_signal_index_failure_is_only_a_note(api: Any, tmp_path: Path) -> None:
    api.add("/login", {"token": JWT})
    api.add("/v3/forecast", WT_FORECAST)
    api.add("/v3/signal-index", api.Reply(500, "oops"))
    reading = wt(api, tmp_path, signal_index=True).fetch()
    assert any("signal index unavailable" in n for n in reading.notes)


# ---------------------------------------------------------------------- transport
def test_retries_with_backoff_then_success(api: Any, tmp_path: Path) -> None:
    api.add("/intensity", api.Reply(503, "busy"), api.Reply(429, "slow down"), UK_NATIONAL)
    provider = uk(api, tmp_path, retries=2, backoff_s=0.01)
    assert provider.fetch().g_per_kwh == 175.0
    assert api.hits("/intensity") == 3


def test_retries_are_bounded(api: Any, tmp_path: Path) -> None:
    api.add("/intensity", api.Reply(500, "down"))
    with pytest.raises(ProviderHTTPError, match=r"HTTP 500.*after 2 attempts") as info:
        uk(api, tmp_path, retries=1, backoff_s=0.0).fetch()
    assert info.value.status == 500 and api.hits("/intensity") == 2


def test_client_errors_are_not_retried(api: Any, tmp_path: Path) -> None:
    api.add("/intensity", api.Reply(400, "bad request"))
    with pytest.raises(ProviderHTTPError, match="HTTP 400"):
        uk(api, tmp_path, retries=3, backoff_s=0.0).fetch()
    assert api.hits("/intensity") == 1


def test_slow_answer_times_out(api: Any, tmp_path: Path) -> None:
    api.add("/intensity", api.Reply(200, UK_NATIONAL, delay_s=1.5))
    begin = time.monotonic()
    with pytest.raises(ProviderHTTPError, match=r"no answer within 0\.2 s") as info:
        uk(api, tmp_path, timeout_s=0.2).fetch()
    assert time.monotonic() - begin < 1.4
    assert info.value.status is None


def test_connection_refused(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    provider = UKCarbonIntensity(base_url=f"http://127.0.0.1:{port}", retries=0, cache_dir=tmp_path)
    with pytest.raises(ProviderHTTPError, match="cannot connect"):
        provider.fetch()


def test_redirects_are_refused(api: Any, tmp_path: Path) -> None:
    api.add("/v3/carbon-intensity/latest", api.Reply(302, "", headers={"Location": "/stolen"}))
    api.add("/stolen", EM_LATEST)
    with pytest.raises(ProviderHTTPError, match="HTTP 302"):
        em(api, tmp_path).fetch()
    assert api.hits("/stolen") == 0


def test_secrets_never_reach_logs_reports_or_errors(
    api: Any, tmp_path: Path, report_factory: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # each server echoes the credentials it was sent, the worst case for a provider's errors
    api.add("/v3/carbon-intensity/latest", api.Reply(503, f"upstream said: token={TOKEN}"))
    live = CarbonIntensity.live(em(api, tmp_path, retries=1), fallback="DE", wait_s=5)
    live.prefetch()
    out = apply_carbon(report_factory(), live)
    assert any("HTTP 503" in n for n in out.carbon.notes)
    basic = base64.b64encode(f"ada:{PASSWORD}".encode()).decode()
    api.add("/login", api.Reply(500, f"got Basic {basic} = ada:{PASSWORD}"), {"token": JWT})
    api.add("/v3/forecast", api.Reply(502, f"bad gateway for Bearer {JWT}"))
    with pytest.raises(ProviderHTTPError) as info:
        wt(api, tmp_path, retries=1).fetch()
    assert info.value.status == 502 and api.hits("/login") == 2
    assert_no_secret(
        caplog.text,
        out.to_json(),
        str(info.value),
        repr(live),
        *(p.read_text() for p in tmp_path.rglob("*") if p.is_file()),
    )
    assert "***" in caplog.text


# ---------------------------------------------------------------------- cache
def test_cache_hit_miss_and_expiry(api: Any, tmp_path: Path) -> None:
    api.add("/v3/carbon-intensity/latest", EM_LATEST, {**EM_LATEST, "carbonIntensity": 250})
    first = em(api, tmp_path).fetch()
    files = list(tmp_path.glob("electricitymaps-*.json"))
    assert len(files) == 1
    assert_no_secret(files[0].read_text())
    second = em(api, tmp_path).fetch()  # a new provider object, same query: served from disk
    assert api.hits("/v3/carbon-intensity/latest") == 1
    assert second.from_cache and second.g_per_kwh == first.g_per_kwh
    assert any("on-disk cache" in n for n in second.notes)
    # age the entry beyond max_age_s: the next fetch goes to the network again
    entry = json.loads(files[0].read_text())
    entry["fetched_at_unix"] -= 901
    files[0].write_text(json.dumps(entry))
    third = em(api, tmp_path).fetch()
    assert api.hits("/v3/carbon-intensity/latest") == 2
    assert not third.from_cache and third.g_per_kwh == 250.0


def test_cache_is_keyed_by_query_and_can_be_disabled(api: Any, tmp_path: Path) -> None:
    api.add("/regional/regionid/13", UK_REGION)
    api.add("/regional/regionid/1", UK_REGION)
    uk(api, tmp_path, region_id=13).fetch()
    uk(api, tmp_path, region_id=1).fetch()
    assert api.hits("/regional/regionid/1") == 1
    off = tmp_path / "off"
    uk(api, off, region_id=13, cache_max_age_s=0).fetch()
    uk(api, off, region_id=13, cache_max_age_s=0).fetch()
    assert api.hits("/regional/regionid/13") == 3
    assert not off.exists()


def test_unreadable_cache_entry_is_a_miss(api: Any, tmp_path: Path) -> None:
    api.add("/intensity", UK_NATIONAL)
    uk(api, tmp_path).fetch()
    (entry,) = tmp_path.glob("ukgrid-*.json")
    for junk in ("{", '{"fetched_at_unix": "x", "reading": {}}', '{"fetched_at_unix": 1e18}'):
        entry.write_text(junk)
        assert not uk(api, tmp_path).fetch().from_cache
    assert api.hits("/intensity") == 4
