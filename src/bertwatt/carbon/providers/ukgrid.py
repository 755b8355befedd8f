"""UK Carbon Intensity API (National Energy System Operator): national or regional, no key.

API reference: https://carbon-intensity.github.io/api-definitions/ (base
``https://api.carbonintensity.org.uk``). Requests and the fields used here::

    GET /intensity                      national, current half hour
    {"data": [{"from": "2024-05-01T12:00Z", "to": "2024-05-01T12:30Z",
               "intensity": {"forecast": 180, "actual": 175, "index": "moderate"}}]}

    GET /regional/regionid/13           one of the 17 GB regions (13 = London)
    GET /regional/postcode/RG10         the region of an outward postcode
    {"data": [{"regionid": 13, "shortname": "London",
               "data": [{"from": "...", "to": "...",
                         "intensity": {"forecast": 190, "index": "moderate"},
                         "generationmix": [...]}]}]}

Values are gCO2/kWh (carbon dioxide only). Regional figures are forecasts; the national figure
has an ``actual`` (null until the half hour is estimated) and a ``forecast``.
"""

from __future__ import annotations

import os
import re
import urllib.parse

from bertwatt.carbon.providers._base import HTTPProvider, LiveReading, _Settings, number, parse_time
from bertwatt.errors import CarbonDataError, ConfigError

__all__ = ["UKCarbonIntensity"]

_OUTCODE = re.compile(r"^[A-Za-z]{1,2}[0-9][A-Za-z0-9]?$")


class UKCarbonIntensity(HTTPProvider):
    """Live average intensity of Great Britain, or of one GB region, from carbonintensity.org.uk.

    Give at most one of ``region_id`` (1-17, see the API reference; e.g. 13 = London,
    1 = North Scotland) and ``postcode`` (outward part only, e.g. ``"RG10"``); neither means the
    national figure.

    Args:
        region_id: GB region id, 1-17.
        postcode: outward postcode, e.g. ``"SW1"``.
        base_url: API root (default ``https://api.carbonintensity.org.uk``).
        timeout_s: per-request timeout in seconds.
        retries: extra attempts on timeouts, connection errors, HTTP 429 and 5xx.
        backoff_s: first retry delay in seconds (doubles each retry).
        cache_dir: on-disk cache directory (default ``$XDG_CACHE_HOME/bertwatt/carbon``).
        cache_max_age_s: serve a cached reading younger than this; 0 disables the cache. The API
            publishes half-hourly values, so the default is 15 minutes.
    """

    name = "ukgrid"
    basis = "average"

    def __init__(
        self,
        *,
        region_id: int | None = None,
        postcode: str | None = None,
        base_url: str = "https://api.carbonintensity.org.uk",
        timeout_s: float = 5.0,
        retries: int = 2,
        backoff_s: float = 0.5,
        cache_dir: str | os.PathLike[str] | None = None,
        cache_max_age_s: float = 900.0,
    ) -> None:
        if region_id is not None and postcode is not None:
            raise ConfigError("give region_id or postcode, not both")
        if region_id is not None and (
            isinstance(region_id, bool)
            or not isinstance(region_id, int)
            or not 1 <= region_id <= 17
        ):
            raise ConfigError(f"region_id must be an int from 1 to 17, got {region_id!r}")
        if postcode is not None:
            if not isinstance(postcode, str) or not _OUTCODE.match(postcode.strip()):
                raise ConfigError(
                    f"postcode must be the outward part of a UK postcode, e.g. 'RG10', got "
                    f"{postcode!r}"
                )
            postcode = postcode.strip().upper()
        self.region_id = region_id
        self.postcode = postcode
        if region_id is not None:
            self.zone = f"GB-region-{region_id}"
        elif postcode is not None:
            self.zone = f"GB-postcode-{postcode}"
        else:
            self.zone = "GB"
        self._configure(
            _Settings(base_url, timeout_s, retries, backoff_s, cache_dir, cache_max_age_s)
        )

    def __repr__(self) -> str:
        where = (
            f"region_id={self.region_id}, "
            if self.region_id is not None
            else f"postcode={self.postcode!r}, "
            if self.postcode is not None
            else ""
        )
        return f"UKCarbonIntensity({where}{self._settings_repr()})"

    def _fetch_remote(self) -> LiveReading:
        if self.region_id is not None:
            path = f"/regional/regionid/{self.region_id}"
        elif self.postcode is not None:
            path = f"/regional/postcode/{urllib.parse.quote(self.postcode)}"
        else:
            path = "/intensity"
        where = self.base_url + path
        data = self._get(path)
        try:
            entry = data["data"][0]
            if path == "/intensity":
                period, label = entry, "Great Britain (national)"
            else:
                period = entry["data"][0]
                name = entry.get("shortname") or entry.get("dnoregion") or self.zone
                label = f"GB region {entry.get('regionid', '?')} ({name})"
            intensity = period["intensity"]
        except (KeyError, IndexError, TypeError):
            raise CarbonDataError(
                "answer lacks data[0]"
                + ("" if path == "/intensity" else ".data[0]")
                + ".intensity (unexpected shape)",
                backend=self.name,
                where=where,
            ) from None
        if not isinstance(intensity, dict):
            raise CarbonDataError("intensity is not an object", backend=self.name, where=where)
        notes = ["UK Carbon Intensity API values are gCO2/kWh (CO2 only, not CO2e)"]
        actual = intensity.get("actual")
        if actual is not None:
            value = number(actual, "intensity.actual", provider=self.name, where=where)
            notes.append("estimated actual for the current half hour")
        else:
            value = number(
                intensity.get("forecast"), "intensity.forecast", provider=self.name, where=where
            )
            notes.append("forecast for the current half hour (no actual published)")
        at = None
        if isinstance(period.get("from"), str):
            try:
                at = parse_time(period["from"])
            except ValueError:
                notes.append(f"unparseable period start {period['from']!r}")
        source = f"UK Carbon Intensity API {path}, {label} ({self.base_url})"
        return self._reading(value, at=at, source=source, notes=notes)
