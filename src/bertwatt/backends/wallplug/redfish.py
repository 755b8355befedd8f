"""Server BMCs over Redfish (iDRAC, iLO, XClarity, OpenBMC, Supermicro, ...).

Two schemas give the power of a chassis:

- the newer ``Chassis/{id}/EnvironmentMetrics``: ``PowerWatts.Reading`` (W) and
  ``EnergykWh.Reading`` (kWh, a counter) (DMTF DSP0268, EnvironmentMetrics 1.x; the chassis links
  it next to ``PowerSubsystem``);
- the older ``Chassis/{id}/Power``: ``PowerControl[0].PowerConsumedWatts`` (DMTF Power 1.x,
  deprecated in 2020.4 in favour of PowerSubsystem/EnvironmentMetrics but served by most BMCs).

EnvironmentMetrics is used when it carries a reading, else Power. Authentication: a Redfish
session (``POST /redfish/v1/SessionService/Sessions``, then the ``X-Auth-Token`` header; the
session is deleted on close) or HTTP basic auth on every request. TLS certificates are verified
by default; ``verify=False`` accepts a self-signed BMC, ``verify="ca.pem"`` trusts a private CA.
``http://`` URLs work too (emulators, some BMC proxies). BMCs refresh power readings every few
seconds at most and do not say how often; bertwatt polls every ``update_period_s`` (default 2 s).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from bertwatt.backends.wallplug._common import (
    J_PER_KWH,
    MeterInfo,
    MeterUnavailable,
    Sample,
    lookup,
    number,
)
from bertwatt.backends.wallplug._http import Credentials, HttpClient, HttpError
from bertwatt.errors import ConfigError, SensorReadError

__all__ = ["RedfishDriver"]

_ROOT = "/redfish/v1"
_NOTES = (
    "Redfish: EnvironmentMetrics PowerWatts/EnergykWh, else Power.PowerControl[0]."
    "PowerConsumedWatts (DMTF DSP0268).",
    "BMC power sensors measure the PSU input of the whole chassis; their accuracy is the PSU "
    "meter's (PMBus-class meters, often specified within +-2 to 5 % at high load) and the "
    "refresh period is vendor-specific (typically 1 to 10 s).",
)


class RedfishDriver:
    """One chassis of a Redfish service (see the module docstring)."""

    kind = "redfish"

    def __init__(
        self,
        url: str,
        *,
        credentials: Credentials | None = None,
        chassis: str | None = None,
        auth: Literal["session", "basic", "none"] = "session",
        verify: bool | str | Path = True,
        timeout_s: float = 5.0,
        update_period_s: float = 2.0,
    ) -> None:
        if auth not in ("session", "basic", "none"):
            raise ConfigError(f"redfish: auth must be 'session', 'basic' or 'none', got {auth!r}")
        if chassis is not None and (not isinstance(chassis, str) or not chassis.strip()):
            raise ConfigError(
                f"redfish: chassis must be a non-empty id such as '1', got {chassis!r}"
            )
        self._http = HttpClient(
            url,
            backend="redfish",
            timeout_s=timeout_s,
            verify=verify,
            credentials=credentials,
            basic_auth=auth == "basic",
        )
        if auth != "none" and not self._http.credentials.has_password:
            raise ConfigError(
                f"redfish: auth={auth!r} needs user= and password= (or password_file=, or "
                "BERTWATT_WALLPLUG_USER / BERTWATT_WALLPLUG_PASSWORD_FILE); use auth='none' for "
                "an unauthenticated emulator"
            )
        self.where = self._http.origin
        self._auth = auth
        self._chassis = chassis
        self._update_period_s = update_period_s
        self._session: str | None = None
        self._path = ""
        self._schema: Literal["environment", "power"] = "power"

    # ------------------------------------------------------------------------- session
    def _login(self) -> None:
        cred = self._http.credentials
        body = {"UserName": cred.user or "", "Password": cred.reveal() or ""}
        resp = self._http.request(
            "POST", f"{_ROOT}/SessionService/Sessions", body=body, ok=(200, 201, 202, 204)
        )
        token = resp.headers.get("x-auth-token")
        if not token:
            raise HttpError(
                "the BMC accepted the session request but returned no X-Auth-Token header",
                backend="redfish",
                where=self._http.url(f"{_ROOT}/SessionService/Sessions"),
                fix="use auth='basic'",
            )
        self._http.headers["X-Auth-Token"] = token
        location = resp.headers.get("location")
        if location:
            self._session = location

    def _logout(self) -> None:
        session, self._session = self._session, None
        if session:
            path = session
            if "://" in session:
                path = "/" + session.split("://", 1)[1].split("/", 1)[-1]
            with contextlib.suppress(SensorReadError):
                self._http.request("DELETE", path, ok=(200, 202, 204))
        self._http.headers.pop("X-Auth-Token", None)

    def _get(self, path: str) -> Any:
        try:
            return self._http.get_json(path)
        except HttpError as err:
            if err.status == 401 and self._auth == "session" and self._session is not None:
                self._http.headers.pop("X-Auth-Token", None)  # the session expired: log in again
                self._login()
                return self._http.get_json(path)
            raise

    # ------------------------------------------------------------------------- open / read
    def open(self) -> MeterInfo:
        """Log in, find the chassis and the schema that carries its power."""
        try:
            if self._auth == "session":
                self._login()
            return self._discover()
        except SensorReadError as err:
            self._logout()
            raise MeterUnavailable(
                err.message, backend="redfish", where=err.where, fix=err.fix
            ) from None

    def _discover(self) -> MeterInfo:
        root = self._get(f"{_ROOT}/")
        coll_path = _link(lookup(root, "Chassis", backend="redfish", where=self._http.url(_ROOT)))
        members = lookup(
            self._get(coll_path), "Members", backend="redfish", where=self._http.url(coll_path)
        )
        paths = [_link(m) for m in members if isinstance(m, Mapping)]
        if self._chassis is not None:
            paths = [p for p in paths if p.rstrip("/").rsplit("/", 1)[-1] == self._chassis]
            if not paths:
                raise SensorReadError(
                    f"no chassis {self._chassis!r} in {coll_path}",
                    backend="redfish",
                    where=self._http.url(coll_path),
                    fix="list the ids under /redfish/v1/Chassis and pass one as chassis=",
                )
        tried: list[str] = []
        for path in paths:
            doc = self._get(path)
            if not isinstance(doc, Mapping):
                continue
            for key, schema in (("EnvironmentMetrics", "environment"), ("Power", "power")):
                link = doc.get(key)
                if not isinstance(link, Mapping) or "@odata.id" not in link:
                    continue
                self._path = _link(link)
                self._schema = schema  # type: ignore[assignment]
                tried.append(self._path)
                try:
                    first = self.sample()
                except SensorReadError:
                    continue
                if first.power_w is None and first.energy_j is None:
                    continue
                capacity = _capacity(doc)
                info = {
                    "url": self.where,
                    "chassis": str(doc.get("Id", path.rsplit("/", 1)[-1])),
                    "resource": self._path,
                    "auth": self._auth,
                    "tls_verify": str(self._http.verify)
                    if self.where.startswith("https")
                    else "n/a",
                }
                if capacity:
                    info["capacity_w"] = capacity
                model = " ".join(
                    str(doc.get(k)) for k in ("Manufacturer", "Model") if doc.get(k)
                ) or str(doc.get("Name") or "Redfish chassis")
                return MeterInfo(
                    model=model,
                    source=f"Redfish {self._path}",
                    has_power=first.power_w is not None,
                    has_energy=first.energy_j is not None,
                    energy_resolution_j=0.001 * J_PER_KWH if first.energy_j is not None else None,
                    update_period_s=self._update_period_s,
                    notes=_NOTES,
                    info=info,
                )
        raise SensorReadError(
            "no chassis reports its power (looked for EnvironmentMetrics.PowerWatts and "
            f"Power.PowerControl[0].PowerConsumedWatts in {', '.join(tried) or 'no resource'})",
            backend="redfish",
            where=self._http.url(coll_path),
            fix="pass chassis= for the chassis that holds the power supplies",
        )

    def sample(self) -> Sample:
        """Read the chassis power (and energy counter) once."""
        doc = self._get(self._path)
        where = self._http.url(self._path)
        if self._schema == "environment":
            power = _reading(doc, "PowerWatts", where)
            energy = _reading(doc, "EnergykWh", where)
            return Sample(power, None if energy is None else energy * J_PER_KWH)
        controls = lookup(doc, "PowerControl", backend="redfish", where=where)
        if not isinstance(controls, list) or not controls or not isinstance(controls[0], Mapping):
            raise SensorReadError(
                "malformed payload: PowerControl is empty", backend="redfish", where=where
            )
        value = controls[0].get("PowerConsumedWatts")
        if value is None:
            raise SensorReadError(
                "PowerControl[0].PowerConsumedWatts is null (the BMC has no reading now)",
                backend="redfish",
                where=where,
            )
        return Sample(number(value, "PowerConsumedWatts", backend="redfish", where=where), None)

    def set_deadline(self, deadline: float | None) -> None:
        """Bound every request until the monotonic ``deadline`` (the probe's budget)."""
        self._http.deadline = deadline

    def close(self) -> None:
        """Delete the Redfish session, if one was opened."""
        self._logout()


def _link(node: object) -> str:
    if isinstance(node, Mapping) and isinstance(node.get("@odata.id"), str):
        return str(node["@odata.id"])
    raise SensorReadError("malformed payload: a link has no @odata.id", backend="redfish")


def _reading(doc: object, key: str, where: str) -> float | None:
    if not isinstance(doc, Mapping) or not isinstance(doc.get(key), Mapping):
        return None
    value = doc[key].get("Reading")
    if value is None:
        return None
    return number(value, f"{key}.Reading", backend="redfish", where=where)


def _capacity(doc: Mapping[str, Any]) -> str | None:
    value = doc.get("PowerCapacityWatts")
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
