"""WattTime API v3: marginal operating emissions rate (MOER) of a grid region.

Docs: https://docs.watttime.org (API v3); the v2 -> v3 transition guide of WattTime shows the
request shapes. Flow used here:

1. ``GET {base_url}/login`` with HTTP Basic auth (username, password) answers
   ``{"token": "<JWT>"}``; the token is valid for 30 minutes and is kept in memory only.
2. ``GET {base_url}/v3/forecast?region=CAISO_NORTH&signal_type=co2_moer&horizon_hours=0`` with
   ``Authorization: Bearer <token>`` answers::

       {"data": [{"point_time": "2024-05-01T12:00:00+00:00", "value": 850.1}, ...],
        "meta": {"region": "CAISO_NORTH", "signal_type": "co2_moer",
                 "units": "lbs_co2_per_mwh", ...}}

   The first point is the current five-minute MOER; lb/MWh x 0.45359237 = g/kWh.
3. Optionally (``signal_index=True``) ``GET /v3/signal-index`` with the same parameters; its
   ``value`` is a percentile (0-100) of the MOER over the recent past, recorded as a note only:
   a percentile cannot be turned into gCO2/kWh.

Access: without a subscription WattTime serves ``/v3/forecast`` for ``CAISO_NORTH`` only; other
regions answer 403. A 401 on a data call triggers one fresh login.
"""

from __future__ import annotations

import base64
import os
import re
import threading
import time
import urllib.parse
from typing import Any

from bertwatt.carbon.providers._base import HTTPProvider, LiveReading, _Settings, number, parse_time
from bertwatt.carbon.providers._http import ProviderHTTPError, Secret, check_credential
from bertwatt.errors import CarbonDataError, ConfigError

__all__ = ["WattTime"]

_LB_PER_MWH_TO_G_PER_KWH = 0.45359237  # 1 lb = 453.59237 g; 1 MWh = 1000 kWh
_TOKEN_LIFETIME_S = 30 * 60.0
_TOKEN_MARGIN_S = 120.0
_REGION = re.compile(r"^[A-Za-z0-9_\-]+$")
_UNITS = {"lbs_co2_per_mwh": _LB_PER_MWH_TO_G_PER_KWH, "g_co2_per_kwh": 1.0}


class WattTime(HTTPProvider):
    """Live marginal intensity (MOER) from the WattTime API v3.

    Args:
        region: WattTime region, e.g. ``"CAISO_NORTH"`` (``/v3/region-from-loc`` finds yours).
        username: WattTime account name.
        password: WattTime password. Never printed, logged or cached; nor is the login token.
        signal_index: also fetch ``/v3/signal-index`` and record its percentile as a note.
        base_url: API root (default ``https://api.watttime.org``).
        timeout_s: per-request timeout in seconds.
        retries: extra attempts on timeouts, connection errors, HTTP 429 and 5xx.
        backoff_s: first retry delay in seconds (doubles each retry).
        cache_dir: on-disk cache directory (default ``$XDG_CACHE_HOME/bertwatt/carbon``).
        cache_max_age_s: serve a cached reading younger than this; 0 disables the cache. MOER
            changes every five minutes, so the default is 300 s.
    """

    name = "watttime"
    basis = "marginal"

    def __init__(
        self,
        *,
        region: str,
        username: str,
        password: str | Secret,
        signal_index: bool = False,
        base_url: str = "https://api.watttime.org",
        timeout_s: float = 5.0,
        retries: int = 2,
        backoff_s: float = 0.5,
        cache_dir: str | os.PathLike[str] | None = None,
        cache_max_age_s: float = 300.0,
    ) -> None:
        if not isinstance(region, str) or not _REGION.match(region.strip()):
            raise ConfigError(f"watttime region must look like 'CAISO_NORTH', got {region!r}")
        username = check_credential(username, "WattTime username")
        if ":" in username:
            raise ConfigError(
                "the WattTime username must not contain ':' (HTTP Basic auth separates the "
                "username from the password with it)"
            )
        if not isinstance(signal_index, bool):
            raise ConfigError(f"signal_index must be True or False, got {signal_index!r}")
        self.zone = region.strip()
        self.username = username
        self.signal_index = signal_index
        self._password = Secret(password, what="WattTime password")
        self._login_text = Secret(f"{username}:{self._password.reveal()}", what="WattTime login")
        self._basic = Secret(
            base64.b64encode(f"{username}:{self._password.reveal()}".encode()).decode("ascii")
        )
        self._token: Secret | None = None
        self._token_expires = 0.0
        self._token_lock = threading.Lock()
        self._configure(
            _Settings(base_url, timeout_s, retries, backoff_s, cache_dir, cache_max_age_s)
        )

    def __repr__(self) -> str:
        return (
            f"WattTime(region={self.zone!r}, username={self.username!r}, password='***', "
            f"{self._settings_repr()})"
        )

    def _secrets(self) -> tuple[Secret, ...]:
        token = self._token
        return (self._password, self._login_text, self._basic) + (
            (token,) if token is not None else ()
        )

    def _identity(self) -> dict[str, Any]:
        return {
            "provider": self.name,
            "base_url": self.base_url,
            "region": self.zone,
            "signal_index": self.signal_index,
        }

    # ------------------------------------------------------------------ auth
    def _login(self) -> Secret:
        try:
            data = self._get("/login", headers={"Authorization": f"Basic {self._basic.reveal()}"})
        except ProviderHTTPError as err:
            if err.status in (401, 403):
                err.message = f"login refused ({err.message})"
                err.fix = "check the WattTime username and password"
            raise
        token = data.get("token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise CarbonDataError(
                "login answer has no token",
                backend=self.name,
                where=self.base_url + "/login",
                fix="check base_url points at the WattTime API",
            )
        try:
            return Secret(token, what="WattTime login token")
        except ConfigError:
            raise CarbonDataError(
                "login answer has a token with control characters; refusing to use it",
                backend=self.name,
                where=self.base_url + "/login",
            ) from None

    def _bearer(self, *, fresh: bool = False) -> Secret:
        with self._token_lock:
            if fresh or self._token is None or time.monotonic() >= self._token_expires:
                self._token = self._login()
                self._token_expires = time.monotonic() + _TOKEN_LIFETIME_S - _TOKEN_MARGIN_S
            return self._token

    def _authed(self, path: str, *, forbidden_fix: str | None = None) -> Any:
        try:
            return self._data_get(path, self._bearer(), forbidden_fix)
        except ProviderHTTPError as err:
            if err.status != 401:
                raise
        # expired or revoked token: log in once more
        return self._data_get(path, self._bearer(fresh=True), forbidden_fix)

    def _data_get(self, path: str, token: Secret, forbidden_fix: str | None) -> Any:
        try:
            return self._get(path, headers={"Authorization": f"Bearer {token.reveal()}"})
        except ProviderHTTPError as err:
            if err.status == 403 and forbidden_fix:
                err.fix = forbidden_fix
            raise

    # ------------------------------------------------------------------ data
    def _fetch_remote(self) -> LiveReading:
        params = {"region": self.zone, "signal_type": "co2_moer"}
        path = "/v3/forecast?" + urllib.parse.urlencode({**params, "horizon_hours": 0})
        where = self.base_url + path
        data = self._authed(
            path,
            forbidden_fix=f"your WattTime plan does not include /v3/forecast for {self.zone!r} "
            "(without a subscription only CAISO_NORTH is served); use a fallback zone",
        )
        try:
            point = data["data"][0]
            raw = point["value"]
            meta = data.get("meta") or {}
        except (KeyError, IndexError, TypeError, AttributeError):
            raise CarbonDataError(
                "answer lacks data[0].value (unexpected shape)", backend=self.name, where=where
            ) from None
        units = meta.get("units", "lbs_co2_per_mwh") if isinstance(meta, dict) else None
        factor = _UNITS.get(units) if isinstance(units, str) else None
        if factor is None:
            raise CarbonDataError(
                f"answer has units {units!r}; bertwatt converts {', '.join(_UNITS)}",
                backend=self.name,
                where=where,
            )
        value = number(raw, "data[0].value", provider=self.name, where=where) * factor
        notes = [
            "marginal operating emissions rate (MOER): the emissions of the generators that "
            "respond to a change in load, not the grid average",
            "WattTime co2_moer is CO2 only (not CO2e)",
        ]
        if factor != 1.0:
            notes.append(f"converted from {raw:g} lb/MWh x 0.45359237")
        at = None
        if isinstance(point, dict) and isinstance(point.get("point_time"), str):
            try:
                at = parse_time(point["point_time"])
            except ValueError:
                notes.append(f"unparseable point_time {point['point_time']!r}")
        if self.signal_index:
            notes.append(self._index_note(params))
        source = f"WattTime API v3 /v3/forecast co2_moer, region {self.zone} ({self.base_url})"
        return self._reading(value, at=at, source=source, notes=notes)

    def _index_note(self, params: dict[str, str]) -> str:
        path = "/v3/signal-index?" + urllib.parse.urlencode(params)
        try:
            data = self._authed(path)
            pct = float(data["data"][0]["value"])
        except (CarbonDataError, KeyError, IndexError, TypeError, ValueError) as err:
            return f"signal index unavailable ({err})"
        return f"signal index: MOER at the {pct:g}th percentile of WattTime's recent range"
