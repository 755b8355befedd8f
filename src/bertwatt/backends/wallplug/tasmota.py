"""Tasmota plugs with an energy monitor (Sonoff POW, Athom, Nous, ...), over HTTP commands.

``GET /cm?cmnd=Status%208`` answers ``{"StatusSNS": {"ENERGY": {"Power": W, "Total": kWh, ...}}}``
(older firmware: ``StatusPWR``). ``Total`` is printed with ``EnergyRes`` decimals, default 3, i.e.
**1 Wh = 3,600 J** steps (tasmota.github.io, Commands, "EnergyRes"); bertwatt asks the device its
``EnergyRes`` when it opens it. A window shorter than a few steps is measured by integrating
``Power`` instead (the report says which). Multi-channel devices report lists: they are summed.
Tasmota's energy driver updates its values from a 200 ms and a once-per-second task
(``Energy200ms``, ``EnergyEverySecond`` in ``xdrv_03_energy.ino``); bertwatt polls once a
second. A web password is sent as the ``user``/``password`` query parameters Tasmota expects.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any

from bertwatt.backends.wallplug._common import (
    J_PER_KWH,
    MeterInfo,
    MeterUnavailable,
    Sample,
    number,
)
from bertwatt.backends.wallplug._http import Credentials, HttpClient, HttpError
from bertwatt.errors import SensorReadError

__all__ = ["TasmotaDriver"]

_NOTES = (
    "Tasmota Status 8: ENERGY.Power (W) and ENERGY.Total (kWh, EnergyRes decimals; default 3 = "
    "1 Wh steps) (tasmota.github.io/docs/Commands, 'EnergyRes').",
    "Tasmota's energy driver updates its values from a 200 ms and a once-per-second task "
    "(Energy200ms, EnergyEverySecond in xdrv_03_energy.ino); polled once per second.",
    "Accuracy depends on the plug's metering chip (HLW8012/BL0937/CSE7766) and its calibration "
    "(tasmota.github.io/docs/Power-Monitoring-Calibration).",
)


class TasmotaDriver:
    """A Tasmota device's energy monitor (see the module docstring)."""

    kind = "tasmota"

    def __init__(
        self, url: str, *, credentials: Credentials | None = None, timeout_s: float = 2.0
    ) -> None:
        self._http = HttpClient(
            url, backend="tasmota", timeout_s=timeout_s, credentials=credentials
        )
        self.where = self._http.origin
        self._cred = self._http.credentials

    def _cmd(self, command: str) -> Any:
        query = {"cmnd": command}
        if self._cred.has_password:
            query = {
                "user": self._cred.user or "admin",
                "password": self._cred.reveal() or "",
                **query,
            }
        path = "/cm?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
        resp = self._http.request("GET", path)
        from bertwatt.backends.wallplug._http import parse_json

        doc = parse_json(resp.body, backend="tasmota", where=self._http.url("/cm?cmnd=" + command))
        if isinstance(doc, Mapping) and doc.get("WARNING", "").lower().startswith("need user"):
            raise HttpError(
                "the device asks for a web password ('Need user=<username>&password=<password>')",
                backend="tasmota",
                where=self._http.url("/cm"),
                status=401,
                fix="check user= and password= (or BERTWATT_WALLPLUG_USER / "
                "BERTWATT_WALLPLUG_PASSWORD_FILE)",
            )
        return doc

    def open(self) -> MeterInfo:
        """Read Status 8 once and the device's EnergyRes."""
        try:
            first = self.sample()
            res_doc = self._cmd("EnergyRes")
        except SensorReadError as err:
            raise MeterUnavailable(
                err.message, backend="tasmota", where=err.where, fix=err.fix
            ) from None
        digits = res_doc.get("EnergyRes") if isinstance(res_doc, Mapping) else None
        notes = list(_NOTES)
        if isinstance(digits, int) and not isinstance(digits, bool) and 0 <= digits <= 5:
            resolution = J_PER_KWH * 10.0**-digits
            notes.append(f"EnergyRes {digits} on this device: Total steps of {resolution:g} J.")
        else:
            resolution = J_PER_KWH * 1e-3
            notes.append("The device did not report EnergyRes; the default 3 (1 Wh) is assumed.")
        return MeterInfo(
            model="Tasmota energy monitor",
            source="Tasmota HTTP cmnd=Status 8 (StatusSNS.ENERGY)",
            has_power=first.power_w is not None,
            has_energy=first.energy_j is not None,
            energy_resolution_j=resolution,
            update_period_s=1.0,
            notes=tuple(notes),
            info={"url": self.where, "energy_res": str(digits)},
        )

    def sample(self) -> Sample:
        """Read ``Status 8`` once."""
        doc = self._cmd("Status 8")
        where = self._http.url("/cm?cmnd=Status%208")
        sns = None
        if isinstance(doc, Mapping):
            sns = doc.get("StatusSNS") or doc.get("StatusPWR")
        energy = sns.get("ENERGY", sns) if isinstance(sns, Mapping) else None
        if not isinstance(energy, Mapping) or ("Power" not in energy and "Total" not in energy):
            raise SensorReadError(
                "malformed payload: no StatusSNS.ENERGY.Power/Total in the answer (is an energy "
                "monitor configured on this device?)",
                backend="tasmota",
                where=where,
            )
        power = _sum(energy.get("Power"), "ENERGY.Power", where)
        total = _sum(energy.get("Total"), "ENERGY.Total", where)
        return Sample(power, None if total is None else total * J_PER_KWH)

    def set_deadline(self, deadline: float | None) -> None:
        """Bound every request until the monotonic ``deadline`` (the probe's budget)."""
        self._http.deadline = deadline

    def close(self) -> None:
        """Nothing to release."""


def _sum(value: object, what: str, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, list):
        if not value:
            raise SensorReadError(
                f"malformed payload: {what} is an empty list", backend="tasmota", where=where
            )
        return sum(number(v, what, backend="tasmota", where=where) for v in value)
    return number(value, what, backend="tasmota", where=where)
