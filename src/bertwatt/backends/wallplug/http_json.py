"""Any meter with a JSON status URL: name the field that holds watts and/or the energy counter.

Paths are dotted, with list indexes as numbers: ``"emeters.0.power"``. ``watts=`` is power in W;
``energy_j=``, ``energy_wh=`` or ``energy_kwh=`` a cumulative counter in that unit. Works for
ESPHome's web server, Home Assistant sensors (``state``), PDUs and custom exporters.
"""

from __future__ import annotations

from pathlib import Path

from bertwatt.backends.wallplug._common import (
    J_PER_KWH,
    J_PER_WH,
    MeterInfo,
    MeterUnavailable,
    Sample,
    lookup,
    number,
)
from bertwatt.backends.wallplug._http import Credentials, HttpClient
from bertwatt.errors import ConfigError, SensorReadError

__all__ = ["HttpJsonDriver"]


class HttpJsonDriver:
    """A JSON status URL with field paths (see the module docstring)."""

    kind = "http_json"

    def __init__(
        self,
        url: str,
        *,
        watts: str | None = None,
        energy_j: str | None = None,
        energy_wh: str | None = None,
        energy_kwh: str | None = None,
        credentials: Credentials | None = None,
        verify: bool | str | Path = True,
        timeout_s: float = 2.0,
        update_period_s: float = 1.0,
        resolution_j: float | None = None,
    ) -> None:
        energies = [
            (p, f)
            for p, f in ((energy_j, 1.0), (energy_wh, J_PER_WH), (energy_kwh, J_PER_KWH))
            if p is not None
        ]
        if len(energies) > 1:
            raise ConfigError("http_json: give one of energy_j=, energy_wh=, energy_kwh=")
        if watts is None and not energies:
            raise ConfigError(
                "http_json: give watts= and/or one of energy_j=, energy_wh=, energy_kwh= "
                "(dotted field paths)"
            )
        for name, path in (("watts", watts), *(("energy", p) for p, _ in energies)):
            if path is not None and (
                not isinstance(path, str) or not path or ".." in path or path.startswith(".")
            ):
                raise ConfigError(
                    f"http_json: {name} must be a dotted field path such as 'meters.0.power', "
                    f"got {path!r}"
                )
        base, sep, rest = url.partition("://")
        host, slash, path = rest.partition("/")
        self._http = HttpClient(
            f"{base}{sep}{host}",
            backend="http_json",
            timeout_s=timeout_s,
            verify=verify,
            credentials=credentials,
            basic_auth=True,
        )
        self._path = "/" + path if slash else "/"
        self._watts = watts
        self._energy = energies[0] if energies else None
        self._update = update_period_s
        self._resolution = resolution_j
        self.where = self._http.url(self._path)

    def open(self) -> MeterInfo:
        """Read the URL once and check the fields are there."""
        try:
            first = self.sample()
        except SensorReadError as err:
            raise MeterUnavailable(
                err.message, backend="http_json", where=err.where, fix=err.fix
            ) from None
        fields = ", ".join(
            f"{k}={v}"
            for k, v in (("watts", self._watts), ("energy", self._energy and self._energy[0]))
            if v
        )
        return MeterInfo(
            model=f"JSON endpoint {self.where}",
            source=f"HTTP GET {self.where} ({fields})",
            has_power=first.power_w is not None,
            has_energy=first.energy_j is not None,
            energy_resolution_j=self._resolution,
            update_period_s=self._update,
            notes=("Accuracy and update period are those of the meter behind the endpoint.",),
            info={"url": self.where, "fields": fields},
        )

    def sample(self) -> Sample:
        """GET the URL and read the fields."""
        doc = self._http.get_json(self._path)
        w = self.where
        power = None
        if self._watts:
            power = number(
                lookup(doc, self._watts, backend="http_json", where=w),
                self._watts,
                backend="http_json",
                where=w,
            )
        energy = None
        if self._energy:
            path, factor = self._energy
            energy = (
                number(
                    lookup(doc, path, backend="http_json", where=w),
                    path,
                    backend="http_json",
                    where=w,
                )
                * factor
            )
        return Sample(power, energy)

    def set_deadline(self, deadline: float | None) -> None:
        """Bound every request until the monotonic ``deadline`` (the probe's budget)."""
        self._http.deadline = deadline

    def close(self) -> None:
        """Nothing to release."""
