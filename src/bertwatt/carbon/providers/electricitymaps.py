"""Electricity Maps: latest average carbon intensity of a grid zone (API token required).

Request (Electricity Maps API v3, https://portal.electricitymaps.com/docs/api)::

    GET {base_url}/carbon-intensity/latest?zone=DE
    auth-token: <token>

Answer (fields used here)::

    {"zone": "DE", "carbonIntensity": 302, "datetime": "2024-05-21T10:00:00.000Z",
     "updatedAt": "...", "emissionFactorType": "lifecycle", "isEstimated": false,
     "estimationMethod": null}

``carbonIntensity`` is in gCO2eq/kWh of electricity *consumed* in the zone (imports
flow-traced), with life-cycle emission factors unless ``emissionFactorType`` says otherwise.
"""

from __future__ import annotations

import os
import re
import urllib.parse

from bertwatt.carbon.providers._base import HTTPProvider, LiveReading, _Settings, number, parse_time
from bertwatt.carbon.providers._http import ProviderHTTPError, Secret
from bertwatt.errors import CarbonDataError, ConfigError

__all__ = ["ElectricityMaps"]

_ZONE = re.compile(r"^[A-Za-z]{2}(-[A-Za-z0-9]+)*$")


class ElectricityMaps(HTTPProvider):
    """Live average intensity from the Electricity Maps API.

    Args:
        zone: Electricity Maps zone id, e.g. ``"DE"``, ``"FR"``, ``"US-CAL-CISO"``, ``"SE-SE3"``.
        token: API token (``auth-token`` header). Never printed, logged or cached.
        base_url: API root (default ``https://api.electricitymaps.com/v3``).
        timeout_s: per-request timeout in seconds.
        retries: extra attempts on timeouts, connection errors, HTTP 429 and 5xx.
        backoff_s: first retry delay in seconds (doubles each retry).
        cache_dir: on-disk cache directory (default ``$XDG_CACHE_HOME/bertwatt/carbon``).
        cache_max_age_s: serve a cached reading younger than this; 0 disables the cache.
    """

    name = "electricitymaps"
    basis = "average"

    def __init__(
        self,
        *,
        zone: str,
        token: str | Secret,
        base_url: str = "https://api.electricitymaps.com/v3",
        timeout_s: float = 5.0,
        retries: int = 2,
        backoff_s: float = 0.5,
        cache_dir: str | os.PathLike[str] | None = None,
        cache_max_age_s: float = 900.0,
    ) -> None:
        if not isinstance(zone, str) or not _ZONE.match(zone.strip()):
            raise ConfigError(
                f"electricitymaps zone must look like 'DE' or 'US-CAL-CISO', got {zone!r}"
            )
        self.zone = zone.strip()
        self._token = Secret(token, what="Electricity Maps token")
        if not self._token.reveal().isascii():
            raise ConfigError(
                "the Electricity Maps token must be ASCII (it is sent as an HTTP header)",
                fix="pass the token exactly as shown in the Electricity Maps portal",
            )
        self._configure(
            _Settings(base_url, timeout_s, retries, backoff_s, cache_dir, cache_max_age_s)
        )

    def __repr__(self) -> str:
        return f"ElectricityMaps(zone={self.zone!r}, token='***', {self._settings_repr()})"

    def _secrets(self) -> tuple[Secret, ...]:
        return (self._token,)

    def _fetch_remote(self) -> LiveReading:
        query = urllib.parse.urlencode({"zone": self.zone})
        path = f"/carbon-intensity/latest?{query}"
        where = self.base_url + path
        try:
            data = self._get(path, headers={"auth-token": self._token.reveal()})
        except ProviderHTTPError as err:
            if err.status in (401, 403):
                err.fix = (
                    "check the Electricity Maps token and that your plan covers zone "
                    f"{self.zone!r} (the free tier covers one zone)"
                )
            elif err.status == 404:
                err.fix = f"check the zone id {self.zone!r} against the Electricity Maps zone list"
            raise
        if not isinstance(data, dict):
            raise CarbonDataError("answer is not a JSON object", backend=self.name, where=where)
        value = number(
            data.get("carbonIntensity"), "carbonIntensity", provider=self.name, where=where
        )
        at = None
        notes = []
        if isinstance(data.get("datetime"), str):
            try:
                at = parse_time(data["datetime"])
            except ValueError:
                notes.append(f"unparseable datetime {data['datetime']!r} in the answer")
        factor = data.get("emissionFactorType")
        if isinstance(factor, str) and factor:
            notes.append(f"emission factors: {factor}")
        if data.get("isEstimated") is True:
            method = data.get("estimationMethod")
            notes.append(
                "Electricity Maps marks this value as estimated"
                + (f" ({method})" if isinstance(method, str) and method else "")
            )
        answered = data.get("zone")
        zone = answered if isinstance(answered, str) and answered else self.zone
        source = f"Electricity Maps carbon-intensity/latest, zone {zone} ({self.base_url})"
        return self._reading(value, at=at, source=source, notes=notes, zone=zone)
