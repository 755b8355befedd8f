"""Linux powercap (RAPL) backend: CPU package, core, uncore, DRAM and psys energy counters.

Reads the kernel's powercap sysfs interface directly (no pyRAPL, no MSR access); the layout and
how zones are found are described in ``_powercap.py``. ``root`` may be the class directory or the
control-type directory (``/sys/class/powercap/intel-rapl``). A sub-zone's *name*, not its index,
says what it is: servers often have ``dram`` at ``intel-rapl:0:0`` (intel/thermal_daemon#304).
Multi-die packages are named ``package-N-die-M`` (``rapl_add_package`` in
``drivers/powercap/intel_rapl_common.c``).

Channels (all counters, in joules, *not* unwrapped: the meter unwraps with ``wrap_j``):

======================  ============  =============  =======  ========================
zone name               channel       scope          counted  parent
======================  ============  =============  =======  ========================
``package-N``           cpu:package-N cpu-package    yes
``core``                cpu:core-N    cpu-core       no       cpu:package-N
``uncore``              cpu:uncore-N  cpu-uncore     no       cpu:package-N
``dram``                dram:N        dram           yes
``psys``                platform:psys platform       no
======================  ============  =============  =======  ========================

The package counter covers cores, caches and the integrated GPU but **not** DRAM, so DRAM is
counted on top of it (powercap/powercap#3; ml-energy/zeus#92; sustainable-computing-io/kepler#156;
geopm/geopm#45). ``psys`` covers the platform as a whole (package, DRAM and, depending on the
firmware, more), so it overlaps everything and is reported apart (powercap/powercap#3).

AMD Zen CPUs are served by the same ``intel_rapl_msr`` driver under the same ``intel-rapl`` names
(kernel patch "powercap: Add AMD Fam17h RAPL support", Victor Ding, 2020-10; MangoHud#1651), usually
with a package zone and a ``core`` sub-zone only.

``intel-rapl-mmio`` zones are **not** read when ``intel-rapl`` zones exist. The MMIO interface of
the processor thermal device exposes the *same* package domain a second time (package 0 only,
``drivers/thermal/intel/int340x_thermal/processor_thermal_rapl.c``), so reading both would count
the package twice; CodeCarbon had exactly that bug (mlco2/codecarbon#950). Only when a machine has
``intel-rapl-mmio`` zones and no ``intel-rapl`` zones at all are the MMIO zones read instead, under
the same channel names, with a provenance note.

Since Linux 5.10, ``energy_uj`` is readable by root only (commit 949dd0104c49, "powercap: restrict
energy meter to root access", the fix for CVE-2020-8694 / PLATYPUS). An unreadable file becomes an
:class:`~bertwatt.backends.base.Unavailable` carrying the exact ``chmod`` command for this root.

Accuracy: the counters update about every millisecond (Intel SDM Vol. 3B, "Package RAPL Domain":
MSR_PKG_ENERGY_STATUS "is updated every ~1msec"). On Intel CPUs before Haswell the values come from
a model; from Haswell on they are backed by measurements (Hackenberg et al., IPDPSW 2015,
doi:10.1109/IPDPSW.2015.70). AMD does not document what its domains cover (likwid, Zen groups),
and Schöne et al. (arXiv:2108.00808, 2021) discuss the limits of Zen 2's built-in monitoring.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bertwatt.backends._powercap import (
    READ_BYTES,
    Zone,
    chmod_fix,
    discover,
    is_dir,
    largest_constraint,
    os_text,
    read_counters,
    read_optional,
    read_text,
    unavailable_root,
)
from bertwatt.backends.base import Availability, Channel, Provenance, ReadResult, Scope, Unavailable
from bertwatt.errors import ConfigError, SensorReadError

__all__ = [
    "DEFAULT_MAX_POWER_W",
    "DEFAULT_ROOT",
    "MIN_MAX_POWER_W",
    "POWER_HEADROOM",
    "UPDATE_PERIOD_S",
    "RAPLBackend",
]

logger = logging.getLogger(__name__)

#: Where the kernel exposes powercap zones.
DEFAULT_ROOT = "/sys/class/powercap"

#: ``max_power_w`` of a zone that reports no power constraint: 1000 W, above any single CPU
#: socket, DRAM set or client platform sold today (the same bound Zeus assumes,
#: ``RAPL_COUNTER_MAX_INCREASE`` in ``zeus/device/cpu/rapl.py``). Too high only makes the meter
#: re-read more often (every ``wrap_j / max_power_w`` s, about 4 min for a 262 kJ range) and its
#: glitch filter looser; too low would reject true readings.
DEFAULT_MAX_POWER_W = 1000.0

#: Factor applied to the largest ``constraint_*_max_power_uw`` / ``constraint_*_power_limit_uw``
#: of a zone. The largest value is used because ``max_power_uw`` can be below the configured
#: limits (55 W max with a 162 W short-term limit in powercap/raplcap#14), and headroom because a
#: package may exceed its limits between two reads of a ~1 ms counter.
POWER_HEADROOM = 2.0

#: Lower bound on a constraint-derived ``max_power_w`` (firmware sometimes reports tiny limits).
MIN_MAX_POWER_W = 50.0

#: RAPL energy counters are updated about every 1 ms (Intel SDM Vol. 3B, "Package RAPL Domain").
UPDATE_PERIOD_S = 1e-3

_SELECTOR_RE = re.compile(r"(?:cpu|dram|platform):[A-Za-z0-9_.-]+")
_CVE_TEXT = "permission denied; root-only since Linux 5.10 (CVE-2020-8694)"
_NAN = math.nan

_COMMON_NOTES = (
    "Counter updated about every 1 ms (Intel SDM Vol. 3B, 'Package RAPL Domain').",
    "sysfs reports whole microjoules; the hardware step is the CPU's RAPL energy unit "
    "(MSR_RAPL_POWER_UNIT), which sysfs does not show.",
    "Intel before Haswell: values come from a model; Haswell and later: backed by measurement "
    "(Hackenberg et al., IPDPSW 2015, doi:10.1109/IPDPSW.2015.70). AMD Zen: same driver; AMD "
    "does not document what each domain covers (likwid Zen notes; Schöne et al., "
    "arXiv:2108.00808, on the limits of Zen 2's monitoring).",
)
_SCOPE_NOTES: dict[str, str] = {
    "cpu-package": "One CPU package (socket or die): cores, caches, integrated GPU; excludes DRAM "
    "(powercap/powercap#3).",
    "cpu-core": "Cores of one package: already inside the package channel, never added to it.",
    "cpu-uncore": "Uncore (often the integrated GPU) of one package: already inside the package "
    "channel, never added to it.",
    "dram": "Memory attached to one package; not part of the package counter, so it is counted "
    "separately (powercap/powercap#3, ml-energy/zeus#92).",
    "platform": "psys: the platform as defined by its firmware; overlaps package and DRAM, so it "
    "is reported apart and never added (powercap/powercap#3).",
    "other": "Zone of a kind bertwatt does not know; reported apart and never added.",
}


@dataclass(frozen=True, slots=True)
class _Spec:
    name: str
    domain: str
    scope: Scope
    counted: bool
    parent: str | None
    zone: Zone
    zone_name: str
    is_part: bool  # core/uncore/unknown parts of a package: governed by include_subzones


class RAPLBackend:
    """Energy counters of the Linux powercap ``intel-rapl`` zones (Intel and AMD CPUs).

    Args:
        root: the powercap class directory, or the ``intel-rapl`` control-type directory inside
            it. Tests pass a :class:`bertwatt.testing.powercap.FakePowercapTree` root.
        zones: channel names to read, e.g. ``["cpu:package-0", "dram:0"]``; ``None`` reads all.
        include_subzones: also report the core/uncore parts of each package (never counted;
            DRAM is always read because it is not part of the package).
        include_psys: also report the platform (psys) zone (never counted).

    Raises:
        ConfigError: an argument has the wrong type or an impossible value.
    """

    name = "rapl"
    blocking = False
    #: probe() and close() only read sysfs files: probed on the caller's thread (see probing.py)
    may_hang = False

    def __init__(
        self,
        root: str | os.PathLike[str] = DEFAULT_ROOT,
        *,
        zones: Sequence[str] | None = None,
        include_subzones: bool = True,
        include_psys: bool = True,
    ) -> None:
        if not isinstance(root, (str, os.PathLike)) or not os.fspath(root):
            raise ConfigError(f"RAPLBackend root must be a non-empty path, got {root!r}")
        for flag, value in (("include_subzones", include_subzones), ("include_psys", include_psys)):
            if not isinstance(value, bool):
                raise ConfigError(f"RAPLBackend {flag} must be True or False, got {value!r}")
        self._root = Path(os.fspath(root))
        self._zones = _check_zones(zones, include_subzones, include_psys)
        self._include_subzones = include_subzones
        self._include_psys = include_psys
        self._lock = threading.Lock()
        self._fds: list[int] | None = None
        self._paths: list[str] = []

    def __repr__(self) -> str:
        zones = list(self._zones) if self._zones is not None else None
        return (
            f"RAPLBackend(root={str(self._root)!r}, zones={zones!r}, "
            f"include_subzones={self._include_subzones}, include_psys={self._include_psys})"
        )

    # ----------------------------------------------------------------------------------- probe

    def probe(self) -> Availability:
        """Find the zones, open each ``energy_uj`` and check it parses.

        Never raises because RAPL is absent or unreadable: those cases come back as
        :class:`Unavailable` entries naming the path and the fix.
        """
        self.close()
        root = self._root
        if not is_dir(root):
            return Availability(unavailable=(unavailable_root(root),))
        try:
            found = discover(root)
        except OSError as err:
            reason = f"cannot list {root}: {os_text(err)}"
            return Availability(unavailable=(Unavailable(what="rapl", reason=reason),))
        prefix, base, zones, problems = found
        if prefix is None:
            return Availability(unavailable=(unavailable_root(root), *problems))

        specs, all_names, naming_problems = self._specs(zones)
        problems.extend(naming_problems)
        channels: list[Channel] = []
        fds: list[int] = []
        paths: list[str] = []
        bounds: dict[str, float] = {}
        denied: list[tuple[str, Path]] = []
        try:
            for spec in specs:
                result = _open_zone(spec, prefix, bounds)
                if isinstance(result, Unavailable):
                    problems.append(result)
                elif isinstance(result, Path):
                    denied.append((spec.name, result))
                else:
                    channels.append(result[0])
                    fds.append(result[1])
                    paths.append(str(spec.zone.path / "energy_uj"))
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        if denied:
            fix = chmod_fix(base, [path for _, path in denied])
            for name, path in denied:
                reason = f"cannot open {path}: {_CVE_TEXT}"
                problems.append(Unavailable(what=f"rapl:{name}", reason=reason, fix=fix))
        if self._zones is not None:
            for wanted in self._zones:
                if wanted not in all_names:
                    have = ", ".join(all_names) or "none"
                    reason = f"no zone for {wanted} under {root} (channels found: {have})"
                    problems.append(Unavailable(what=f"rapl:{wanted}", reason=reason))
        with self._lock:
            self._fds = fds
            self._paths = paths
        logger.debug("rapl: %d channel(s) under %s via %s", len(channels), root, prefix)
        return Availability(channels=tuple(channels), unavailable=tuple(problems))

    def _specs(self, zones: list[Zone]) -> tuple[list[_Spec], list[str], list[Unavailable]]:
        """Name and classify each zone; return the selected ones, every name, and problems."""
        specs: list[_Spec] = []
        problems: list[Unavailable] = []
        suffixes: dict[str, tuple[str, str] | None] = {}  # top zone id -> (suffix, channel)
        for zone in zones:
            name_path = zone.path / "name"
            try:
                zone_name = read_text(name_path)
            except (OSError, ValueError) as err:
                problems.append(_zone_problem(zone, name_path, err))
                if zone.parent_id is None:
                    suffixes[zone.zone_id] = None
                continue
            if zone.parent_id is None:
                spec = _classify_top(zone, zone_name)
                suffixes[zone.zone_id] = (
                    (zone_name[len("package-") :], spec.name)
                    if spec.scope == "cpu-package"
                    else (zone_name, spec.name)
                )
            else:
                parent = suffixes.get(zone.parent_id)
                if parent is None:
                    reason = f"{zone.path}: its parent zone {zone.parent_id} could not be named"
                    problems.append(Unavailable(what=f"rapl:{zone.zone_id}", reason=reason))
                    continue
                spec = _classify_sub(zone, zone_name, *parent)
            specs.append(spec)
        names = [spec.name for spec in specs]
        selected: list[_Spec] = []
        for spec in specs:
            if not self._wanted(spec):
                continue
            if names.count(spec.name) > 1:
                reason = f"{spec.zone.path}: another zone is also named {spec.zone_name!r}"
                problems.append(Unavailable(what=f"rapl:{spec.name}", reason=reason))
            else:
                selected.append(spec)
        return selected, names, problems

    def _wanted(self, spec: _Spec) -> bool:
        if self._zones is not None:
            return spec.name in self._zones
        if spec.scope == "platform":
            return self._include_psys
        if spec.is_part:
            return self._include_subzones
        return True

    # ------------------------------------------------------------------------------------ read

    def read(self) -> ReadResult:
        """Read every channel's ``energy_uj`` and return joules (raw counter, not unwrapped).

        A file that fails gives ``nan`` and a message naming the file and the errno; the other
        channels are still read.

        Raises:
            SensorReadError: :meth:`probe` has not run, or :meth:`close` has.
        """
        with self._lock:
            fds = self._fds
            if fds is None:
                raise SensorReadError(
                    "read() called before probe() or after close()",
                    backend="rapl",
                    fix="call probe() first",
                )
            try:
                return read_counters(fds, self._paths)
            except Exception as err:  # never let one odd failure take down the sampler
                message = f"rapl read failed: {err!r}"
                return [_NAN] * len(fds), dict.fromkeys(range(len(fds)), message)

    def __del__(self) -> None:
        # A dropped backend must not leak descriptors; the meter still calls close() itself.
        with contextlib.suppress(Exception):
            self.close()

    def close(self) -> None:
        """Close the ``energy_uj`` descriptors. :meth:`probe` may be called again afterwards."""
        with self._lock:
            fds, self._fds, self._paths = self._fds, None, []
        for fd in fds or ():
            with contextlib.suppress(OSError):
                os.close(fd)


def _classify_top(zone: Zone, zone_name: str) -> _Spec:
    if zone_name.startswith("package-"):
        name = f"cpu:{zone_name}"
        return _Spec(name, "cpu", "cpu-package", True, None, zone, zone_name, False)
    if zone_name == "psys" or zone_name.startswith("psys-"):
        name = f"platform:{zone_name}"
        return _Spec(name, "platform", "platform", False, None, zone, zone_name, False)
    name = f"platform:{zone_name}"
    return _Spec(name, "platform", "other", False, None, zone, zone_name, False)


def _classify_sub(zone: Zone, zone_name: str, suffix: str, parent: str) -> _Spec:
    if zone_name == "dram":
        return _Spec(f"dram:{suffix}", "dram", "dram", True, None, zone, zone_name, False)
    scope: Scope = "other"
    if zone_name == "core":
        scope = "cpu-core"
    elif zone_name == "uncore":
        scope = "cpu-uncore"
    name = f"cpu:{zone_name}-{suffix}"
    return _Spec(name, "cpu", scope, False, parent, zone, zone_name, True)


def _open_zone(
    spec: _Spec, prefix: str, bounds: dict[str, float]
) -> tuple[Channel, int] | Unavailable | Path:
    """Build one channel and open its counter; a denied ``energy_uj`` comes back as its path."""
    zone_dir = spec.zone.path
    range_path = zone_dir / "max_energy_range_uj"
    try:
        range_uj = int(read_text(range_path))
        if range_uj <= 0:
            raise ValueError(f"range must be > 0, got {range_uj}")
    except (OSError, ValueError) as err:
        return _channel_problem(spec, range_path, err)
    energy_path = zone_dir / "energy_uj"
    try:
        fd = os.open(energy_path, os.O_RDONLY | os.O_CLOEXEC)
    except PermissionError:
        return energy_path
    except OSError as err:
        return _channel_problem(spec, energy_path, err)
    try:
        raw = os.pread(fd, READ_BYTES, 0)
        head, newline, _ = raw.partition(b"\n")
        if not (newline and head.isdigit()):
            raise ValueError(f"expected an integer in µJ, got {raw!r}")
    except (OSError, ValueError) as err:
        os.close(fd)
        return _channel_problem(spec, energy_path, err)

    max_power_w, power_source = _max_power(zone_dir)
    if max_power_w is None:
        inherited = bounds.get(spec.parent) if spec.parent else None
        if inherited is not None:
            max_power_w, power_source = inherited, f"inherited from {spec.parent}"
        else:
            max_power_w, power_source = DEFAULT_MAX_POWER_W, "default (no power constraint)"
    bounds[spec.name] = max_power_w

    notes = [_SCOPE_NOTES[spec.scope], *_COMMON_NOTES]
    if prefix != "intel-rapl":
        notes.append(f"Read from {prefix} because this machine has no intel-rapl (MSR) zones.")
    provenance = Provenance(
        kind="measured",
        source=f"Linux powercap ({prefix}) energy_uj",
        scope=spec.scope,
        method=(
            "cumulative energy counter in µJ, read with pread() on a descriptor kept open; "
            "converted to J; wraps at max_energy_range_uj and is unwrapped by the meter"
        ),
        update_period_s=UPDATE_PERIOD_S,
        resolution_j=1e-6,
        notes=tuple(notes),
    )
    info = {
        "path": str(zone_dir),
        "zone": spec.zone.zone_id,
        "zone_name": spec.zone_name,
        "max_energy_range_uj": str(range_uj),
        "enabled": read_optional(zone_dir / "enabled"),
        "max_power_w_source": power_source,
    }
    channel = Channel(
        name=spec.name,
        domain=spec.domain,
        kind="counter",
        provenance=provenance,
        counted=spec.counted,
        parent=spec.parent,
        wrap_j=range_uj / 1e6,
        max_power_w=max_power_w,
        info=info,
    )
    return channel, fd


def _max_power(zone_dir: Path) -> tuple[float | None, str]:
    """Bound from the zone's largest power constraint, with headroom; ``None`` if it has none."""
    best_uw, best_file = largest_constraint(zone_dir)
    if best_uw <= 0:
        return None, ""
    bound = max(POWER_HEADROOM * best_uw / 1e6, MIN_MAX_POWER_W)
    return bound, f"{POWER_HEADROOM:g} x {best_file} ({best_uw} µW), at least {MIN_MAX_POWER_W:g} W"


# ---------------------------------------------------------------------------------- helpers


def _check_zones(
    zones: Sequence[str] | None, include_subzones: bool, include_psys: bool
) -> tuple[str, ...] | None:
    if zones is None:
        return None
    if isinstance(zones, (str, bytes)) or not isinstance(zones, Sequence):
        raise ConfigError(
            f"RAPLBackend zones must be a list of channel names such as ['cpu:package-0'], "
            f"got {zones!r}"
        )
    if not zones:
        raise ConfigError("RAPLBackend zones=[] selects nothing; pass None to read every zone")
    for zone in zones:
        if not isinstance(zone, str) or not _SELECTOR_RE.fullmatch(zone):
            raise ConfigError(
                f"RAPLBackend zones entry {zone!r} is not a channel name; expected e.g. "
                f"'cpu:package-0', 'cpu:core-0', 'dram:0' or 'platform:psys'"
            )
        if not include_psys and zone.startswith("platform:"):
            raise ConfigError(f"RAPLBackend zones includes {zone!r} but include_psys=False")
        if not include_subzones and zone.startswith(("cpu:core-", "cpu:uncore-")):
            raise ConfigError(f"RAPLBackend zones includes {zone!r} but include_subzones=False")
    if len(set(zones)) != len(zones):
        raise ConfigError(f"RAPLBackend zones lists a channel twice: {list(zones)!r}")
    return tuple(zones)


def _zone_problem(zone: Zone, path: Path, err: Exception) -> Unavailable:
    what = f"rapl:{zone.zone_id}"
    extra = " and its sub-zones" if zone.parent_id is None else ""
    return Unavailable(what=what, reason=f"cannot use {path}{extra}: {_error_text(err)}")


def _channel_problem(spec: _Spec, path: Path, err: Exception) -> Unavailable:
    return Unavailable(what=f"rapl:{spec.name}", reason=f"cannot use {path}: {_error_text(err)}")


def _error_text(err: Exception) -> str:
    if isinstance(err, OSError):
        return os_text(err)
    return f"malformed content ({err})"
