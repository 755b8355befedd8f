"""WallPlugBackend: any wall meter driver behind the Backend protocol.

Channels (``<device>`` defaults to the driver's name: ``shelly``, ``tasmota``, ``redfish``,
``ipmi``, ``command``, ``http_json``; pass ``device=`` to name it):

================== ======= ============================================ =======
channel            kind    when                                         counted
================== ======= ============================================ =======
``wall:<device>``  counter the device has an energy counter (preferred) yes
``wall:<device>``  power   it has none, or ``prefer="power"``           yes
``wall:<device>:power`` power beside a counter, as its fallback        no
================== ======= ============================================ =======

All are domain ``wall``, scope ``system``: they overlap the component channels (GPU, CPU, DRAM)
and are never added to them (see :func:`bertwatt.window.total_of` and :mod:`bertwatt.report.wall`).
When a window is too short for the counter's resolution (Tasmota's 1 Wh steps), the report uses
the power channel beside it instead and says so.

The backend is ``blocking``: the meter reads it on a thread of its own. It never queries the
device faster than the device refreshes (``poll_interval_s``, default its update period): a
``read()`` inside that period returns the values the device gave last, which is what the device
would answer. Every device call has a deadline, so ``read()`` returns within about ``timeout_s``
whatever the meter does; a meter that stops answering becomes failed reads and a gap in the
report, never a hang.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from bertwatt._checks import check_number
from bertwatt.backends.base import Availability, Channel, Provenance, ReadResult, Unavailable
from bertwatt.backends.wallplug._common import Driver, MeterInfo
from bertwatt.backends.wallplug._http import Credentials
from bertwatt.errors import BertwattError, ConfigError

__all__ = ["PLUG_MAX_POWER_W", "PROBE_BUDGET_S", "SERVER_MAX_POWER_W", "WallPlugBackend"]

#: Plausibility bound of plug meters: 16 A at 230 V, with headroom (3,680 W -> 4,000 W).
PLUG_MAX_POWER_W = 4_000.0
#: Plausibility bound of BMCs and generic meters: a fully loaded 8-GPU server draws ~10 kW.
SERVER_MAX_POWER_W = 20_000.0

_NAN = math.nan
_MIN_SAMPLE_S = 1e-3  # the meter's shortest sampling interval (MeterConfig.interval_s)

#: The whole of probe() (several requests for Redfish, up to three ipmitool calls) ends within
#: this, below the meter's probe timeout, however slowly the device answers.
PROBE_BUDGET_S = 8.0


def _device_name(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > 40:
        raise ConfigError(f"device must be a short name such as 'rack-plug', got {value!r}")
    if not all(ch.isalnum() or ch in "-_." for ch in value):
        raise ConfigError(f"device may hold letters, digits, '-', '_' and '.', got {value!r}")
    return value


def _creds(
    user: str | None, password: str | None, password_file: str | Path | None
) -> Credentials | None:
    """Credentials from arguments, else from BERTWATT_WALLPLUG_USER / _PASSWORD / _PASSWORD_FILE."""
    if password is None and password_file is None:
        from bertwatt.config import wallplug_credentials_from_env

        env_user, password, password_file = wallplug_credentials_from_env()
        user = user if user is not None else env_user
    if user is None and password is None and password_file is None:
        return None
    return Credentials(user, password, password_file=password_file)


class WallPlugBackend:
    """A wall-plug or BMC power meter (build one with the class methods below).

    Args:
        driver: the device protocol (:mod:`.shelly`, :mod:`.tasmota`, :mod:`.redfish`,
            :mod:`.ipmi`, :mod:`.command`, :mod:`.http_json`).
        device: the ``<device>`` in ``wall:<device>``.
        prefer: ``"auto"`` (the device's energy counter when it has one, with power beside it as
            the fallback), ``"counter"`` or ``"power"``.
        max_power_w: readings above this are rejected as glitches.
        poll_interval_s: the shortest time between two device queries (default: the device's
            update period).
    """

    blocking = True

    def __init__(
        self,
        driver: Driver,
        *,
        device: str | None = None,
        prefer: Literal["auto", "counter", "power"] = "auto",
        max_power_w: float = SERVER_MAX_POWER_W,
        poll_interval_s: float | None = None,
    ) -> None:
        if prefer not in ("auto", "counter", "power"):
            raise ConfigError(f"prefer must be 'auto', 'counter' or 'power', got {prefer!r}")
        self._driver = driver
        self.name: str = driver.kind
        self.device = _device_name(device if device is not None else driver.kind)
        self._prefer = prefer
        self._max_power_w = check_number("max_power_w", max_power_w, low=1.0, high=1e7, unit="W")
        self._poll = (
            None
            if poll_interval_s is None
            else check_number("poll_interval_s", poll_interval_s, low=0.05, high=3600.0, unit="s")
        )
        self._lock = threading.Lock()
        self._layout: tuple[str, ...] = ()  # per channel: "energy" or "power"
        self._info: MeterInfo | None = None
        self._last_query = -math.inf
        self._cached: ReadResult | None = None
        self.queries = 0
        #: seconds the whole of :meth:`probe` may take (every device call is cut to fit)
        self.probe_budget_s = PROBE_BUDGET_S

    def __repr__(self) -> str:
        return f"WallPlugBackend({self.name}, device={self.device!r}, where={self._driver.where!r})"

    @property
    def poll_interval_s(self) -> float:
        """The shortest time between two device queries."""
        if self._poll is not None:
            return self._poll
        return self._info.update_period_s if self._info is not None else 1.0

    @property
    def meter_info(self) -> MeterInfo | None:
        """What the device reported at the last :meth:`probe` (None before)."""
        return self._info

    # ------------------------------------------------------------------ constructors
    @classmethod
    def shelly(
        cls,
        url: str,
        *,
        switch: int = 0,
        component: Literal["switch", "pm1"] = "switch",
        user: str | None = None,
        password: str | None = None,
        password_file: str | Path | None = None,
        timeout_s: float = 2.0,
        **options: Any,
    ) -> WallPlugBackend:
        """A Shelly plug or relay (Gen2+ RPC ``Switch.GetStatus``, or Gen1 ``/status``)."""
        from bertwatt.backends.wallplug.shelly import ShellyDriver

        driver = ShellyDriver(
            url,
            switch=switch,
            component=component,
            credentials=_creds(user, password, password_file),
            timeout_s=_timeout(timeout_s),
        )
        options.setdefault("max_power_w", PLUG_MAX_POWER_W)
        return cls(driver, **options)

    @classmethod
    def tasmota(
        cls,
        url: str,
        *,
        user: str | None = None,
        password: str | None = None,
        password_file: str | Path | None = None,
        timeout_s: float = 2.0,
        **options: Any,
    ) -> WallPlugBackend:
        """A Tasmota plug with an energy monitor (``Status 8``)."""
        from bertwatt.backends.wallplug.tasmota import TasmotaDriver

        driver = TasmotaDriver(
            url, credentials=_creds(user, password, password_file), timeout_s=_timeout(timeout_s)
        )
        options.setdefault("max_power_w", PLUG_MAX_POWER_W)
        return cls(driver, **options)

    @classmethod
    def redfish(
        cls,
        url: str,
        *,
        user: str | None = None,
        password: str | None = None,
        password_file: str | Path | None = None,
        chassis: str | None = None,
        auth: Literal["session", "basic", "none"] | None = None,
        verify: bool | str | Path = True,
        timeout_s: float = 5.0,
        update_period_s: float = 2.0,
        **options: Any,
    ) -> WallPlugBackend:
        """A server BMC's Redfish service (``Power`` or ``EnvironmentMetrics`` of a chassis).

        ``auth`` defaults to ``"session"`` when credentials are given, else ``"none"``.
        """
        from bertwatt.backends.wallplug.redfish import RedfishDriver

        creds = _creds(user, password, password_file)
        if auth is None:
            auth = "session" if creds is not None and creds.has_password else "none"
        driver = RedfishDriver(
            url,
            credentials=creds,
            chassis=chassis,
            auth=auth,
            verify=verify,
            timeout_s=_timeout(timeout_s),
            update_period_s=check_number("update_period_s", update_period_s, low=0.1, high=3600.0),
        )
        return cls(driver, **options)

    @classmethod
    def ipmi(
        cls,
        host: str | None = None,
        *,
        user: str | None = None,
        password: str | None = None,
        password_file: str | Path | None = None,
        interface: Literal["lanplus", "lan", "open"] = "lanplus",
        port: int = 623,
        sensor: str | None = None,
        mode: Literal["auto", "dcmi", "sdr"] = "auto",
        ipmitool: str = "ipmitool",
        timeout_s: float = 5.0,
        update_period_s: float | None = None,
        cipher_suite: int | None = None,
        **options: Any,
    ) -> WallPlugBackend:
        """A BMC through ``ipmitool``: over the LAN (``host=``) or in-band (``host=None``).

        A password is given to ipmitool through its environment (``-E``), a password file with
        ``-f``; neither ever appears on its command line. ``cipher_suite`` (lanplus ``-C``) skips
        ipmitool's cipher-suite discovery, which costs about 2 s per call on BMCs that lack it.
        """
        from bertwatt.backends.wallplug.ipmi import IPMIDriver

        if host is not None and password is None and password_file is None:
            from bertwatt.config import wallplug_credentials_from_env

            env_user, password, password_file = wallplug_credentials_from_env()
            user = user if user is not None else env_user
        creds = Credentials(user, password) if (user or password) else None
        driver = IPMIDriver(
            host,
            credentials=creds,
            password_file=password_file,
            interface=interface,
            port=port,
            sensor=sensor,
            mode=mode,
            ipmitool=ipmitool,
            timeout_s=_timeout(timeout_s),
            update_period_s=update_period_s,
            cipher_suite=cipher_suite,
        )
        return cls(driver, **options)

    @classmethod
    def command(
        cls,
        argv: Sequence[str],
        *,
        timeout_s: float = 5.0,
        update_period_s: float = 1.0,
        resolution_j: float | None = None,
        **options: Any,
    ) -> WallPlugBackend:
        """Any meter whose reader prints ``123.4`` (W), ``123.4 W`` or ``5678 J``/``Wh``/``kWh``."""
        from bertwatt.backends.wallplug.command import CommandDriver

        driver = CommandDriver(
            argv,
            timeout_s=_timeout(timeout_s),
            update_period_s=check_number("update_period_s", update_period_s, low=0.01, high=3600.0),
            resolution_j=resolution_j,
        )
        return cls(driver, **options)

    @classmethod
    def http_json(
        cls,
        url: str,
        *,
        watts: str | None = None,
        energy_j: str | None = None,
        energy_wh: str | None = None,
        energy_kwh: str | None = None,
        user: str | None = None,
        password: str | None = None,
        password_file: str | Path | None = None,
        verify: bool | str | Path = True,
        timeout_s: float = 2.0,
        update_period_s: float = 1.0,
        resolution_j: float | None = None,
        **options: Any,
    ) -> WallPlugBackend:
        """Any JSON status URL: ``watts="a.b"`` and/or ``energy_j=`` / ``energy_wh=`` paths."""
        from bertwatt.backends.wallplug.http_json import HttpJsonDriver

        driver = HttpJsonDriver(
            url,
            watts=watts,
            energy_j=energy_j,
            energy_wh=energy_wh,
            energy_kwh=energy_kwh,
            credentials=_creds(user, password, password_file),
            verify=verify,
            timeout_s=_timeout(timeout_s),
            update_period_s=check_number("update_period_s", update_period_s, low=0.01, high=3600.0),
            resolution_j=resolution_j,
        )
        return cls(driver, **options)

    @classmethod
    def from_source(cls, source: str, **options: Any) -> WallPlugBackend:
        """Build from one string, e.g. ``"shelly+http://192.168.1.50"`` (see :mod:`.source`)."""
        from bertwatt.backends.wallplug.source import parse_source

        kind, args, kwargs = parse_source(source)
        kwargs.update(options)
        return getattr(cls, kind)(*args, **kwargs)

    # ------------------------------------------------------------------ protocol
    def probe(self) -> Availability:
        """Ask the device what it reports. Never raises because the meter is unreachable."""
        what = f"wall:{self.device}"
        set_deadline = getattr(self._driver, "set_deadline", None)
        if set_deadline is not None:
            set_deadline(time.monotonic() + self.probe_budget_s)
        try:
            info = self._driver.open()
        except BertwattError as err:
            return Availability(
                unavailable=(Unavailable(what=what, reason=_reason(err), fix=err.fix),)
            )
        except Exception as err:  # a driver bug must not stop the meter
            reason = f"{self.name} probe failed: {type(err).__name__}: {str(err)[:200]}"
            return Availability(unavailable=(Unavailable(what=what, reason=reason),))
        finally:
            if set_deadline is not None:
                set_deadline(None)
        channels: list[Channel] = []
        layout: list[str] = []
        use_counter = info.has_energy and (self._prefer != "power" or not info.has_power)
        if self._prefer == "counter" and not info.has_energy:
            return Availability(
                unavailable=(
                    Unavailable(
                        what=what,
                        reason=f"{self.name} device reports no energy counter (prefer='counter')",
                        fix="use prefer='auto' to integrate its power readings",
                    ),
                )
            )
        base_notes = (*info.notes, f"Device: {info.model}.")
        if use_counter:
            res = info.energy_resolution_j
            # The device refreshes its counter once per update period, so one poll's worth of
            # energy (plus a step) can land between two meter samples as close as 1 ms apart.
            step = self._max_power_w * max(info.update_period_s, self.poll_interval_s)
            bound = (step + 2.0 * (res or 0.0)) / _MIN_SAMPLE_S
            channels.append(
                Channel(
                    name=what,
                    domain="wall",
                    kind="counter",
                    provenance=Provenance(
                        kind="measured",
                        source=f"{info.source}: energy counter",
                        scope="system",
                        method=(
                            f"device energy counter polled every {self.poll_interval_s:g} s "
                            "(no faster than the device refreshes it)"
                        ),
                        update_period_s=info.update_period_s,
                        resolution_j=res,
                        notes=base_notes,
                    ),
                    max_power_w=bound,
                    info={**info.info, "reading": "energy counter"},
                )
            )
            layout.append("energy")
        if info.has_power and (not use_counter or self._prefer == "auto"):
            channels.append(
                Channel(
                    name=f"{what}:power" if use_counter else what,
                    domain="wall",
                    kind="power",
                    provenance=Provenance(
                        kind="measured",
                        source=f"{info.source}: power",
                        scope="system",
                        method=(
                            f"device power polled every {self.poll_interval_s:g} s, "
                            "trapezoid-integrated"
                        ),
                        update_period_s=info.update_period_s,
                        notes=(
                            *base_notes,
                            *(
                                (f"Fallback for {what} when its counter is too coarse.",)
                                if use_counter
                                else ()
                            ),
                        ),
                    ),
                    counted=not use_counter,
                    parent=what if use_counter else None,
                    max_power_w=self._max_power_w,
                    info={**info.info, "reading": "power"},
                )
            )
            layout.append("power")
        with self._lock:
            self._info = info
            self._layout = tuple(layout)
            self._cached = None
            self._last_query = -math.inf
        return Availability(channels=tuple(channels))

    def read(self) -> ReadResult:
        """Poll the device (at most once per ``poll_interval_s``); failures become NaN + reason."""
        with self._lock:
            layout = self._layout
            now = time.monotonic()
            if self._cached is not None and now - self._last_query < self.poll_interval_s:
                return self._cached
            self._last_query = now
        n = len(layout)
        if not n:
            return [], None
        self.queries += 1
        try:
            sample = self._driver.sample()
        except BertwattError as err:
            result: ReadResult = ([_NAN] * n, dict.fromkeys(range(n), _reason(err)))
        except Exception as err:  # never let a driver bug take down the sampler
            msg = f"{self.name} read failed: {type(err).__name__}: {str(err)[:200]}"
            result = ([_NAN] * n, dict.fromkeys(range(n), msg))
        else:
            values: list[float] = []
            errors: dict[int, str] = {}
            for i, what in enumerate(layout):
                v = sample.energy_j if what == "energy" else sample.power_w
                if v is None:
                    values.append(_NAN)
                    errors[i] = f"{self.name}: the device sent no {what} value this time"
                else:
                    values.append(float(v))
            result = (values, errors or None)
        with self._lock:
            self._cached = result
        return result

    def close(self) -> None:
        """Release the device (a Redfish session is deleted). :meth:`probe` may run again."""
        with self._lock:
            self._cached = None
        with contextlib.suppress(Exception):  # best effort, bounded by the driver's timeouts
            self._driver.close()


def _reason(err: BertwattError) -> str:
    text = err.message
    if err.where and err.where not in text:
        text = f"{text} ({err.where})"
    return text


def _timeout(value: object) -> float:
    return check_number("timeout_s", value, low=0.1, high=120.0, unit="s")
