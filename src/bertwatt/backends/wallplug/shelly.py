"""Shelly plugs and relays with a power meter, over their local HTTP API.

- **Gen2 and later** (Plus, Pro, Gen3, Gen4): RPC ``GET /rpc/Switch.GetStatus?id=N`` (or
  ``PM1.GetStatus`` for metering-only devices such as the Plug PM Gen3). ``apower`` is the active
  power in W; ``aenergy.total`` the energy counter in Wh since the device last started
  (shelly-api-docs.shelly.cloud, "Switch" component status). The counter is given with three
  decimals (1 mWh = 3.6 J), the step bertwatt assumes.
- **Gen1** (Shelly 1PM, Plug S, 2.5, EM): ``GET /status``. ``meters[N].power`` in W and
  ``meters[N].total`` in **watt-minutes** (60 J per unit); the EM's ``emeters[N].total`` is in Wh.
  Gen1 devices take HTTP basic auth when a login is set.

The generation is told by ``GET /shelly`` (Gen2+ answers ``"gen": 2`` or more). Shelly does not
document how often ``apower`` is refreshed; bertwatt assumes 1 s and polls no faster. A Gen2+
login is HTTP digest auth (SHA-256) as user ``admin``; bertwatt answers the device's challenge.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bertwatt.backends.wallplug._common import (
    J_PER_WH,
    MeterInfo,
    MeterUnavailable,
    Sample,
    lookup,
    number,
)
from bertwatt.backends.wallplug._http import Credentials, HttpClient, HttpError
from bertwatt.errors import ConfigError, SensorReadError

__all__ = ["ShellyDriver"]

_NOTES = (
    "Shelly Gen2+: apower (W) and aenergy.total (Wh, three decimals) from Switch.GetStatus "
    "(shelly-api-docs.shelly.cloud); Gen1: meters[].power (W) and meters[].total (watt-minutes).",
    "Shelly does not document the refresh period of apower; 1 s is assumed.",
    "Accuracy is not specified per reading by Shelly; plug meters of this class are typically "
    "within a few percent at loads above ~10 W.",
)


class ShellyDriver:
    """A Shelly device's meter channel ``switch`` (see the module docstring)."""

    kind = "shelly"

    def __init__(
        self,
        url: str,
        *,
        switch: int = 0,
        component: str = "switch",
        credentials: Credentials | None = None,
        timeout_s: float = 2.0,
    ) -> None:
        if isinstance(switch, bool) or not isinstance(switch, int) or switch < 0:
            raise ConfigError(f"shelly: switch must be an int >= 0, got {switch!r}")
        if component not in ("switch", "pm1"):
            raise ConfigError(f"shelly: component must be 'switch' or 'pm1', got {component!r}")
        self._http = HttpClient(
            url, backend="shelly", timeout_s=timeout_s, credentials=credentials, basic_auth=True
        )
        self.where = self._http.origin
        self._switch = switch
        self._component = component
        self._gen: int | None = None
        self._path = ""
        self._gen1_key = "meters"

    def open(self) -> MeterInfo:
        """Find the generation and check the meter channel answers."""
        try:
            ident = self._http.get_json("/shelly")
        except HttpError as err:
            raise MeterUnavailable(
                err.message, backend="shelly", where=err.where, fix=err.fix
            ) from None
        if not isinstance(ident, Mapping):
            raise MeterUnavailable(
                "GET /shelly did not answer a JSON object: is this a Shelly device?",
                backend="shelly",
                where=self.where,
            )
        gen = ident.get("gen")
        self._gen = int(gen) if isinstance(gen, int) and not isinstance(gen, bool) else 1
        model = str(ident.get("model") or ident.get("type") or "unknown model")
        fw = str(ident.get("fw_id") or ident.get("fw") or ident.get("ver") or "")
        if self._gen >= 2:
            method = "Switch.GetStatus" if self._component == "switch" else "PM1.GetStatus"
            self._path = f"/rpc/{method}?id={self._switch}"
            source = f"Shelly Gen{self._gen} RPC {method} (id {self._switch})"
        else:
            self._path = "/status"
            source = f"Shelly Gen1 /status meter {self._switch}"
        try:
            doc = self._http.get_json(self._path)
            if self._gen < 2:
                self._gen1_key = "emeters" if "emeters" in doc else "meters"
            first = self._parse(doc)
        except HttpError as err:
            fix = err.fix
            if err.status == 401 and self._gen >= 2:
                fix = (
                    "check the device password (password=, password_file= or "
                    "BERTWATT_WALLPLUG_PASSWORD_FILE); Shelly Gen2+ logs in as user 'admin' with "
                    "HTTP digest auth"
                )
            raise MeterUnavailable(
                err.message, backend="shelly", where=err.where, fix=fix
            ) from None
        except SensorReadError as err:
            raise MeterUnavailable(
                err.message, backend="shelly", where=err.where, fix=err.fix
            ) from None
        if first.power_w is None and first.energy_j is None:
            raise MeterUnavailable(
                f"channel {self._switch} reports neither power nor energy "
                "(a relay without a meter?)",
                backend="shelly",
                where=self._http.url(self._path),
            )
        if self._gen >= 2:
            resolution = 0.001 * J_PER_WH
        elif self._gen1_key == "meters":
            resolution = 60.0
        else:
            resolution = 0.01 * J_PER_WH
        return MeterInfo(
            model=f"Shelly {model}" + (f" (firmware {fw})" if fw else ""),
            source=source,
            has_power=first.power_w is not None,
            has_energy=first.energy_j is not None,
            energy_resolution_j=resolution,
            update_period_s=1.0,
            notes=_NOTES,
            info={"generation": str(self._gen), "model": model, "url": self.where},
        )

    def sample(self) -> Sample:
        """Read power and the energy counter once."""
        return self._parse(self._http.get_json(self._path))

    def _parse(self, doc: Any) -> Sample:
        where = self._http.url(self._path)
        if self._gen is not None and self._gen >= 2:
            power = doc.get("apower") if isinstance(doc, Mapping) else None
            energy = None
            if isinstance(doc, Mapping) and "aenergy" in doc:
                energy = lookup(doc, "aenergy.total", backend="shelly", where=where)
            if not isinstance(doc, Mapping) or (power is None and energy is None):
                raise SensorReadError(
                    "malformed payload: no 'apower' or 'aenergy.total' in the answer",
                    backend="shelly",
                    where=where,
                )
            return Sample(
                None if power is None else number(power, "apower", backend="shelly", where=where),
                None
                if energy is None
                else number(energy, "aenergy.total", backend="shelly", where=where) * J_PER_WH,
            )
        key = self._gen1_key
        meter = lookup(doc, f"{key}.{self._switch}", backend="shelly", where=where)
        if not isinstance(meter, Mapping):
            raise SensorReadError(
                f"malformed payload: {key}[{self._switch}] is not an object",
                backend="shelly",
                where=where,
            )
        if meter.get("is_valid") is False:
            raise SensorReadError(
                f"{key}[{self._switch}].is_valid is false: the device flags its reading invalid",
                backend="shelly",
                where=where,
            )
        power = number(
            lookup(meter, "power", backend="shelly", where=where),
            "power",
            backend="shelly",
            where=where,
        )
        total = meter.get("total")
        energy = None
        if total is not None:
            unit = 60.0 if key == "meters" else J_PER_WH
            energy = (
                number(total, f"{key}[{self._switch}].total", backend="shelly", where=where) * unit
            )
        return Sample(power, energy)

    def set_deadline(self, deadline: float | None) -> None:
        """Bound every request until the monotonic ``deadline`` (the probe's budget)."""
        self._http.deadline = deadline

    def close(self) -> None:
        """Nothing to release (one connection per request)."""
