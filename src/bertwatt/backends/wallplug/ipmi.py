"""Server power through IPMI with the ``ipmitool`` program, over the LAN (lanplus) or in-band.

- **DCMI** first: ``ipmitool dcmi power reading`` prints the instantaneous system power and the
  BMC's sampling period (DCMI 1.5 spec, "Get Power Reading"; the BMC averages over that period).
  A reading whose state is "deactivated" or a BMC without DCMI moves on to the SDR.
- **SDR** otherwise: the sensors whose unit is Watts (``ipmitool -c sdr elist full``); the one
  named like a system total (``sensor=`` picks one by name) is read with
  ``ipmitool -c sensor reading NAME``.

Credentials never appear on ipmitool's command line (where ``ps`` shows them): a password is
passed in the child's environment with ``-E`` (``IPMI_PASSWORD``), a password file with ``-f``.
Each call runs with a hard deadline (``timeout_s``; ``-N``/``-R`` bound ipmitool's own retries)
and its whole process group is killed if it overruns. In-band (``host=None``) needs the kernel's
``ipmi_devintf`` driver and read access to ``/dev/ipmi0``.
"""

from __future__ import annotations

import math
import re
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from bertwatt.backends.wallplug._common import MeterInfo, MeterUnavailable, Sample, number
from bertwatt.backends.wallplug._http import Credentials
from bertwatt.backends.wallplug._proc import ProcResult, run_bounded
from bertwatt.errors import ConfigError, SensorReadError

__all__ = ["IPMIDriver", "parse_dcmi", "parse_sdr_watts"]

_DCMI_POWER = re.compile(r"Instantaneous power reading\s*:\s*([0-9]+(?:\.[0-9]+)?)\s*Watts", re.I)
_DCMI_PERIOD = re.compile(
    r"^\s*Sampling period\s*:\s*([0-9]+)\s*(Milliseconds|Seconds)?", re.I | re.M
)
_DCMI_STATE = re.compile(r"Power reading state is\s*:\s*(\w+)", re.I)
_TOTAL_NAME = re.compile(r"total|system|consum|platform|sys[ _]?pwr|pwr[ _]?meter|^power$", re.I)
_NOTES = (
    "IPMI: DCMI 'Get Power Reading' (system input power averaged over the BMC's sampling "
    "period), else an SDR sensor in Watts read with ipmitool.",
    "BMC power readings come from the PSU meters: typically +-2 to 5 % at high load, worse at low "
    "load; many BMCs update them every 1 to 10 s.",
)


def parse_dcmi(text: str) -> tuple[float, float | None, bool]:
    """(power W, sampling period s or None, activated) from ``dcmi power reading`` output.

    Raises:
        ValueError: the output has no instantaneous power reading.
    """
    m = _DCMI_POWER.search(text)
    if not m:
        raise ValueError("no 'Instantaneous power reading' line")
    period = None
    p = _DCMI_PERIOD.search(text)
    if p:
        value = int(p.group(1))
        period = value / 1000.0 if (p.group(2) or "").lower() == "milliseconds" else float(value)
    s = _DCMI_STATE.search(text)
    activated = s is None or s.group(1).lower() == "activated"
    return float(m.group(1)), period or None, activated


def parse_sdr_watts(text: str) -> list[tuple[str, float | None]]:
    """``(name, watts)`` of every sensor in Watts in ``ipmitool -c sdr elist full`` output."""
    found: list[tuple[str, float | None]] = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3 and parts[2].lower() == "watts":
            try:
                value: float | None = float(parts[1])
            except ValueError:
                value = None
            found.append((parts[0], value))
    return found


class IPMIDriver:
    """A BMC read with ``ipmitool`` (see the module docstring)."""

    kind = "ipmi"

    def __init__(
        self,
        host: str | None = None,
        *,
        credentials: Credentials | None = None,
        password_file: str | Path | None = None,
        interface: str = "lanplus",
        port: int = 623,
        sensor: str | None = None,
        mode: Literal["auto", "dcmi", "sdr"] = "auto",
        ipmitool: str = "ipmitool",
        timeout_s: float = 5.0,
        update_period_s: float | None = None,
        cipher_suite: int | None = None,
    ) -> None:
        if cipher_suite is not None and (
            isinstance(cipher_suite, bool)
            or not isinstance(cipher_suite, int)
            or not 0 <= cipher_suite <= 17
        ):
            raise ConfigError(f"ipmi: cipher_suite must be 0..17, got {cipher_suite!r}")
        if host is not None and (
            not isinstance(host, str) or not host.strip() or host.startswith("-")
        ):
            raise ConfigError(f"ipmi: host must be a host name or address, got {host!r}")
        if interface not in ("lanplus", "lan", "open"):
            raise ConfigError(
                f"ipmi: interface must be 'lanplus', 'lan' or 'open', got {interface!r}"
            )
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ConfigError(f"ipmi: port must be 1..65535, got {port!r}")
        if mode not in ("auto", "dcmi", "sdr"):
            raise ConfigError(f"ipmi: mode must be 'auto', 'dcmi' or 'sdr', got {mode!r}")
        if sensor is not None and (not isinstance(sensor, str) or not sensor.strip()):
            raise ConfigError(f"ipmi: sensor must be a sensor name, got {sensor!r}")
        self._host = host.strip() if host else None
        self._cred = credentials or Credentials(None)
        self._password_file = Path(password_file) if password_file is not None else None
        self._interface = interface
        self._port = port
        self._sensor = sensor
        self._mode = mode
        self._tool = ipmitool
        self._timeout_s = timeout_s
        self._update = update_period_s
        self._cipher = cipher_suite
        self._deadline: float | None = None
        self._use: Literal["dcmi", "sdr"] = "dcmi"
        self.where = f"ipmi://{self._host}:{port}" if self._host else "ipmi (in-band)"

    def _argv(self, *args: str) -> tuple[list[str], dict[str, str]]:
        argv = [self._tool]
        env: dict[str, str] = {}
        if self._host:
            argv += ["-I", self._interface, "-H", self._host, "-p", str(self._port)]
            if self._cipher is not None and self._interface == "lanplus":
                argv += ["-C", str(self._cipher)]
            if self._cred.user:
                argv += ["-U", self._cred.user]
            if self._password_file is not None:
                argv += ["-f", str(self._password_file)]
            else:
                argv += ["-E"]
                env["IPMI_PASSWORD"] = self._cred.reveal() or ""
            retry_s = max(1, int(self._timeout_s // 2))
            argv += ["-N", str(retry_s), "-R", "1"]
        elif self._interface == "open":
            argv += ["-I", "open"]
        return [*argv, *args], env

    def set_deadline(self, deadline: float | None) -> None:
        """Bound every ipmitool call until the monotonic ``deadline`` (the probe's budget)."""
        self._deadline = deadline

    def _run(self, *args: str) -> ProcResult:
        argv, env = self._argv(*args)
        timeout_s = self._timeout_s
        if self._deadline is not None:
            timeout_s = min(timeout_s, max(0.1, self._deadline - time.monotonic()))
        try:
            result = run_bounded(argv, timeout_s=timeout_s, env=env)
        except OSError as err:
            raise MeterUnavailable(
                f"cannot run {self._tool!r}: {err.strerror or err}",
                backend="ipmi",
                where=self.where,
                fix="install ipmitool (Debian/Ubuntu: apt-get install ipmitool; RHEL: dnf install "
                "ipmitool) or pass ipmitool='/path/to/ipmitool'",
            ) from None
        if result.timed_out:
            raise SensorReadError(
                f"ipmitool {' '.join(args)} gave no answer within {timeout_s:.3g} s",
                backend="ipmi",
                where=self.where,
                fix="check that the BMC is reachable (UDP 623) or raise timeout_s",
            )
        return result

    def _fail(self, result: ProcResult, args: Sequence[str]) -> SensorReadError:
        text = self._cred.redact(" ".join((result.stderr + " " + result.stdout).split()))[:300]
        fix = None
        if self._host and re.search(r"session|password|authenticat|unauthori", text, re.I):
            fix = (
                "check the BMC address and port, the user name and password (password=, "
                "password_file= or BERTWATT_WALLPLUG_PASSWORD_FILE), the interface "
                f"({self._interface}) and that IPMI over LAN is enabled on the BMC"
            )
        elif not self._host and re.search(r"/dev/ipmi|open interface|could not open", text, re.I):
            fix = (
                "load the in-band driver (modprobe ipmi_devintf ipmi_si) and make /dev/ipmi0 "
                "readable"
            )
        return SensorReadError(
            f"ipmitool {' '.join(args)} failed (exit {result.returncode}): {text or 'no output'}",
            backend="ipmi",
            where=self.where,
            fix=fix,
        )

    def _dcmi(self) -> tuple[float, float | None, bool]:
        args = ("dcmi", "power", "reading")
        result = self._run(*args)
        if result.returncode != 0:
            raise self._fail(result, args)
        try:
            return parse_dcmi(result.stdout)
        except ValueError:
            raise SensorReadError(
                f"malformed ipmitool dcmi output: {result.stdout.strip()[:200]!r}",
                backend="ipmi",
                where=self.where,
            ) from None

    def open(self) -> MeterInfo:
        """Try DCMI, else find the SDR power sensor; check one reading."""
        if self._tool and shutil.which(self._tool) is None:
            raise MeterUnavailable(
                f"{self._tool!r} is not installed or not on PATH",
                backend="ipmi",
                where=self.where,
                fix="install ipmitool (Debian/Ubuntu: apt-get install ipmitool; RHEL: dnf install "
                "ipmitool) or pass ipmitool='/path/to/ipmitool'",
            )
        notes = list(_NOTES)
        why_not_dcmi = ""
        try:
            if self._mode != "sdr":
                try:
                    power, period, active = self._dcmi()
                    if active:
                        self._use = "dcmi"
                        return self._info("DCMI Get Power Reading", period, notes, power)
                    why_not_dcmi = "DCMI power reading is deactivated on this BMC"
                except SensorReadError as err:
                    if self._mode == "dcmi" or "session" in err.message.lower():
                        raise
                    why_not_dcmi = f"DCMI not available ({err.message[:120]})"
            self._use = "sdr"
            if self._sensor is None:
                self._sensor = self._find_sensor()
            power = self._sdr_read()
            if why_not_dcmi:
                notes.append(f"{why_not_dcmi}; read from SDR sensor {self._sensor!r}.")
            return self._info(f"SDR sensor {self._sensor!r} (Watts)", None, notes, power)
        except SensorReadError as err:
            raise MeterUnavailable(
                err.message, backend="ipmi", where=err.where, fix=err.fix
            ) from None

    def _info(self, what: str, period: float | None, notes: list[str], power: float) -> MeterInfo:
        update = self._update or period or 1.0
        if period:
            notes.append(f"The BMC reports a sampling period of {period:g} s.")
        return MeterInfo(
            model=f"BMC {self._host or 'in-band'}",
            source=f"IPMI {what} via ipmitool ({self._interface if self._host else 'in-band'})",
            has_power=True,
            has_energy=False,
            update_period_s=max(0.5, update),
            notes=tuple(notes),
            info={
                "host": self._host or "local BMC (in-band)",
                "interface": self._interface if self._host else "open",
                "method": self._use,
                "sensor": self._sensor or "",
                "first_reading_w": f"{power:g}",
            },
        )

    def _find_sensor(self) -> str:
        args = ("-c", "sdr", "elist", "full")
        result = self._run(*args)
        if result.returncode != 0:
            raise self._fail(result, args)
        sensors = parse_sdr_watts(result.stdout)
        if not sensors:
            raise SensorReadError(
                "the BMC has neither DCMI power readings nor an SDR sensor in Watts",
                backend="ipmi",
                where=self.where,
                fix="use the BMC's Redfish service (WallPlugBackend.redfish) or a wall plug",
            )
        totals = [name for name, _ in sensors if _TOTAL_NAME.search(name)]
        if len(totals) == 1 or (totals and len(sensors) == 1):
            return totals[0]
        if len(sensors) == 1:
            return sensors[0][0]
        names = ", ".join(repr(n) for n, _ in sensors)
        raise SensorReadError(
            f"several sensors in Watts and none is clearly the system total: {names}",
            backend="ipmi",
            where=self.where,
            fix="pass sensor='NAME' with the one that measures the system input power",
        )

    def _sdr_read(self) -> float:
        assert self._sensor is not None
        args = ("-c", "sensor", "reading", self._sensor)
        result = self._run(*args)
        if result.returncode != 0:
            raise self._fail(result, args)
        for line in result.stdout.splitlines():
            name, _, value = line.rpartition(",")
            if name.strip() == self._sensor:
                if not value.strip():
                    break
                return number(
                    value.strip(), f"sensor {self._sensor!r}", backend="ipmi", where=self.where
                )
        raise SensorReadError(
            f"sensor {self._sensor!r} gave no reading: {result.stdout.strip()[:200]!r}",
            backend="ipmi",
            where=self.where,
        )

    def sample(self) -> Sample:
        """Read the power once (DCMI or the SDR sensor found at open)."""
        if self._use == "dcmi":
            power, _, active = self._dcmi()
            if not active:
                raise SensorReadError(
                    "DCMI power reading became deactivated", backend="ipmi", where=self.where
                )
            return Sample(power, None)
        value = self._sdr_read()
        return Sample(value if math.isfinite(value) else None, None)

    def close(self) -> None:
        """Nothing to release (one ipmitool process per reading)."""
