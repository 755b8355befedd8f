"""Any meter with a command-line reader: a program that prints the current reading.

The program is run once per poll with stdin closed and a hard deadline (its whole process group is
killed when it overruns). It prints one or more ``<number> <unit>`` values; the unit says what the
number is: ``W`` (power) or a cumulative energy counter in ``J``, ``kJ``, ``Wh`` or ``kWh``. A
bare number is watts. Examples::

    123.4            -> 123.4 W
    5678 J           -> counter, 5678 J
    87.2 W 1.25 kWh  -> power and counter
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping, Sequence

from bertwatt.backends.wallplug._common import MeterInfo, MeterUnavailable, Sample
from bertwatt.backends.wallplug._proc import run_bounded
from bertwatt.errors import ConfigError, SensorReadError

__all__ = ["CommandDriver", "parse_output"]

_TOKEN = re.compile(r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(kWh|Wh|kJ|J|W)?(?![A-Za-z])")
_ENERGY_J = {"J": 1.0, "kJ": 1e3, "Wh": 3600.0, "kWh": 3.6e6}


def parse_output(text: str) -> Sample:
    """Power and energy from a reader's output (see the module docstring).

    Raises:
        ValueError: nothing parseable, a negative or non-finite value, or a unit given twice.
    """
    power: float | None = None
    energy: float | None = None
    stripped = text.strip()
    if not stripped:
        raise ValueError("no output")
    pos = 0
    for m in _TOKEN.finditer(stripped):
        if stripped[pos : m.start()].strip(" \t\r\n,;"):
            raise ValueError(f"unexpected text {stripped[pos : m.start()].strip()[:40]!r}")
        pos = m.end()
        value = float(m.group(1))
        if not value >= 0 or value == float("inf"):
            raise ValueError(f"implausible value {m.group(0)!r}")
        unit = m.group(2) or "W"
        if unit == "W":
            if power is not None:
                raise ValueError("two power values")
            power = value
        else:
            if energy is not None:
                raise ValueError("two energy values")
            energy = value * _ENERGY_J[unit]
    if stripped[pos:].strip(" \t\r\n,;"):
        raise ValueError(f"unexpected text {stripped[pos:].strip()[:40]!r}")
    return Sample(power, energy)


class CommandDriver:
    """A meter read by running ``argv`` (see the module docstring)."""

    kind = "command"

    def __init__(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float = 5.0,
        update_period_s: float = 1.0,
        resolution_j: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if isinstance(argv, str | bytes) or not isinstance(argv, Sequence) or not argv:
            raise ConfigError(
                "command: argv must be a non-empty list such as ['my-meter', '--watts'], "
                f"got {argv!r}"
            )
        if not all(isinstance(a, str) and "\x00" not in a for a in argv):
            raise ConfigError("command: every argv entry must be a string without NUL bytes")
        self._argv = list(argv)
        self._timeout_s = timeout_s
        self._update = update_period_s
        self._resolution = resolution_j
        self._env = dict(env or {})
        self.where = f"command {self._argv[0]!r}"

    def open(self) -> MeterInfo:
        """Run the reader once and see what it prints."""
        if shutil.which(self._argv[0]) is None:
            raise MeterUnavailable(
                f"{self._argv[0]!r} is not an executable program (not found on PATH)",
                backend="command",
                where=self.where,
                fix="give the full path of the meter's reader, or make it executable",
            )
        try:
            first = self.sample()
        except SensorReadError as err:
            raise MeterUnavailable(
                err.message, backend="command", where=err.where, fix=err.fix
            ) from None
        return MeterInfo(
            model=f"command {' '.join(self._argv)[:120]}",
            source=f"output of {self._argv[0]}",
            has_power=first.power_w is not None,
            has_energy=first.energy_j is not None,
            energy_resolution_j=self._resolution,
            update_period_s=self._update,
            notes=("Accuracy and update period are those of the meter behind the command.",),
            info={"command": " ".join(self._argv)[:200]},
        )

    def sample(self) -> Sample:
        """Run the reader and parse its output."""
        try:
            result = run_bounded(self._argv, timeout_s=self._timeout_s, env=self._env)
        except OSError as err:
            raise SensorReadError(
                f"cannot run {self._argv[0]!r}: {err.strerror or err}",
                backend="command",
                where=self.where,
            ) from None
        if result.timed_out:
            raise SensorReadError(
                f"the reader printed nothing within {self._timeout_s:g} s and was killed",
                backend="command",
                where=self.where,
                fix="check the meter, or raise timeout_s",
            )
        if result.returncode != 0:
            err_text = " ".join(result.stderr.split())[:200]
            raise SensorReadError(
                f"the reader exited with {result.returncode}"
                + (f": {err_text}" if err_text else ""),
                backend="command",
                where=self.where,
            )
        try:
            return parse_output(result.stdout)
        except ValueError as err:
            raise SensorReadError(
                f"malformed reader output ({err}): {result.stdout.strip()[:120]!r}; expected e.g. "
                "'123.4' (W), '123.4 W' or '5678 J'",
                backend="command",
                where=self.where,
            ) from None

    def close(self) -> None:
        """Nothing to release."""
