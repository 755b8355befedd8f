"""A fake Linux powercap (RAPL) sysfs tree made of real files, for tests without RAPL hardware.

:class:`FakePowercapTree` lays out zones the way ``/sys/class/powercap`` does on a real machine:
the zone directories live in a device tree (``<root>/.devices/intel-rapl/intel-rapl:0/...``,
standing in for ``/sys/devices/virtual/powercap``), sub-zones nested inside their package, and
``<root>`` holds one relative symlink per control type, zone and sub-zone::

    <root>/intel-rapl      -> .devices/intel-rapl
    <root>/intel-rapl:0    -> .devices/intel-rapl/intel-rapl:0
    <root>/intel-rapl:0:0  -> .devices/intel-rapl/intel-rapl:0/intel-rapl:0:0

Point :class:`bertwatt.backends.rapl.RAPLBackend` at ``<root>`` (or at ``<root>/intel-rapl``).
Counters are rewritten in place, so descriptors the backend keeps open see every change, and the
fault helpers (:meth:`~FakePowercapTree.deny`, :meth:`~FakePowercapTree.remove`,
:meth:`~FakePowercapTree.corrupt`) act on the files themselves. Nothing here imports pytest.

Example::

    tree = FakePowercapTree(tmp_path / "powercap")
    tree.add_package(0, max_power_uw=125_000_000)
    tree.add_psys()
    tree.add_energy("intel-rapl:0", 12.5)   # 12.5 J more on package-0, wrapping like hardware
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bertwatt.errors import ConfigError

__all__ = ["DEFAULT_MAX_ENERGY_RANGE_UJ", "FakePowercapTree"]

#: ``max_energy_range_uj`` of a typical Intel package: 2**32 - 1 counts of 61.035 µJ
#: (value from powercap/raplcap#14).
DEFAULT_MAX_ENERGY_RANGE_UJ = 262_143_328_850

_DEVICES = ".devices"
_CONTROL_TYPES = ("intel-rapl", "intel-rapl-mmio")
_ATTR_RE = re.compile(r"energy_uj|max_energy_range_uj|name|enabled|constraint_\d+_[a-z_]+")


@dataclass
class _FakeZone:
    zone_id: str
    device_dir: Path
    link: Path
    range_uj: int
    parent: str | None
    children: list[str] = field(default_factory=list)


class FakePowercapTree:
    """Builds and mutates a powercap sysfs tree of real files under ``root``.

    Zones are addressed by their directory name, e.g. ``"intel-rapl:0"`` or ``"intel-rapl:0:2"``.
    Misuse (unknown zone, bad value) raises :class:`~bertwatt.errors.ConfigError`.

    Args:
        root: directory standing in for ``/sys/class/powercap``; created if missing.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        self._zones: dict[str, _FakeZone] = {}

    def __repr__(self) -> str:
        return f"FakePowercapTree({str(self.root)!r}, zones={self.zones!r})"

    @property
    def zones(self) -> list[str]:
        """Ids of the zones currently in the tree, in creation order."""
        return list(self._zones)

    def path(self, zone: str) -> Path:
        """The zone's directory as a reader sees it: ``<root>/<zone id>`` (a symlink)."""
        return self._zone(zone).link

    # ------------------------------------------------------------------------------ building

    def add_package(
        self,
        index: int,
        *,
        name: str | None = None,
        energy_uj: int = 0,
        max_energy_range_uj: int = DEFAULT_MAX_ENERGY_RANGE_UJ,
        max_power_uw: int | None = None,
        power_limit_uw: int | None = None,
        subzones: Sequence[str] = ("core", "uncore", "dram"),
        control_type: str = "intel-rapl",
    ) -> str:
        """Add a CPU package zone ``<control_type>:<index>`` and its sub-zones.

        Args:
            index: zone index (the ``N`` in ``intel-rapl:N``).
            name: the ``name`` file; ``package-<index>`` by default (multi-die CPUs use
                ``package-N-die-M``).
            energy_uj: initial counter value in µJ (sub-zones start at 0).
            max_energy_range_uj: counter range in µJ, shared by the sub-zones.
            max_power_uw: written as ``constraint_0_max_power_uw`` when given.
            power_limit_uw: written as ``constraint_0_power_limit_uw`` when given.
            subzones: names of the sub-zones, indexed in order (``intel-rapl:N:0``, ...). AMD
                machines typically have ``("core",)``, servers often ``("dram",)``.
            control_type: ``"intel-rapl"`` or ``"intel-rapl-mmio"``.

        Returns:
            The zone directory as a reader sees it (``<root>/intel-rapl:N``).
        """
        if isinstance(subzones, str) or not all(isinstance(s, str) and s for s in subzones):
            raise ConfigError(f"subzones must be a sequence of zone names, got {subzones!r}")
        zone_id = self._new_top_id(control_type, index)
        self._add_zone(
            zone_id,
            name if name is not None else f"package-{index}",
            energy_uj=energy_uj,
            range_uj=max_energy_range_uj,
            max_power_uw=max_power_uw,
            power_limit_uw=power_limit_uw,
            parent=None,
        )
        for sub_index, sub_name in enumerate(subzones):
            self._add_zone(
                f"{zone_id}:{sub_index}",
                sub_name,
                energy_uj=0,
                range_uj=max_energy_range_uj,
                max_power_uw=None,
                power_limit_uw=None,
                parent=zone_id,
            )
        return str(self._zones[zone_id].link)

    def add_psys(
        self,
        index: int | None = None,
        *,
        energy_uj: int = 0,
        max_energy_range_uj: int = DEFAULT_MAX_ENERGY_RANGE_UJ,
        max_power_uw: int | None = None,
        power_limit_uw: int | None = None,
    ) -> str:
        """Add the platform zone (``name`` = ``psys``), a top-level ``intel-rapl`` zone.

        Args:
            index: zone index; by default the next free one (``intel-rapl:1`` on one socket).
            energy_uj: initial counter value in µJ.
            max_energy_range_uj: counter range in µJ.
            max_power_uw: written as ``constraint_0_max_power_uw`` when given.
            power_limit_uw: written as ``constraint_0_power_limit_uw`` when given.

        Returns:
            The zone directory as a reader sees it.
        """
        if index is None:
            used = {int(z.split(":")[1]) for z in self._zones if z.startswith("intel-rapl:")}
            index = next(i for i in range(len(used) + 1) if i not in used)
        zone_id = self._new_top_id("intel-rapl", index)
        self._add_zone(
            zone_id,
            "psys",
            energy_uj=energy_uj,
            range_uj=max_energy_range_uj,
            max_power_uw=max_power_uw,
            power_limit_uw=power_limit_uw,
            parent=None,
        )
        return str(self._zones[zone_id].link)

    # ------------------------------------------------------------------------------ counters

    def energy_uj(self, zone: str) -> int:
        """The zone's current counter value in µJ."""
        path = self._zone(zone).device_dir / "energy_uj"
        with _owner_access(path):
            return int(path.read_text(encoding="ascii"))

    def set_energy(self, zone: str, energy_uj: int) -> None:
        """Set the zone's counter to ``energy_uj`` (0 to ``max_energy_range_uj``)."""
        record = self._zone(zone)
        _check_counter(energy_uj, record.range_uj)
        _write_in_place(record.device_dir / "energy_uj", f"{energy_uj}\n")

    def add_energy(self, zone: str, joules: float) -> int:
        """Advance the zone's counter by ``joules``, wrapping modulo its range like hardware.

        The fake wraps modulo ``max_energy_range_uj`` exactly, the period the meter assumes
        (``Channel.wrap_j``). Real counters wrap one hardware energy unit later (the range is
        ``0xFFFFFFFF`` units), a difference of at most tens of µJ per wrap.

        Returns:
            The new counter value in µJ.
        """
        if isinstance(joules, bool) or not isinstance(joules, (int, float)):
            raise ConfigError(f"joules must be a number, got {joules!r}")
        if not (math.isfinite(joules) and joules >= 0):
            raise ConfigError(f"joules must be finite and >= 0 (counters only grow): {joules!r}")
        record = self._zone(zone)
        new = (self.energy_uj(zone) + round(joules * 1e6)) % record.range_uj
        _write_in_place(record.device_dir / "energy_uj", f"{new}\n")
        return new

    # -------------------------------------------------------------------------------- faults

    def deny(self, zone: str) -> None:
        """Make the zone's ``energy_uj`` unreadable (mode 000), as Linux >= 5.10 does for non-root.

        The real file is mode 0400 owned by root; mode 000 also denies the test user who owns
        the fake file. Root bypasses file modes, here as on a real machine, so code running as
        root still reads it: run the reader as an unprivileged user to see the denial.
        """
        os.chmod(self._zone(zone).device_dir / "energy_uj", 0)

    def corrupt(self, zone: str, text: str, *, attr: str = "energy_uj") -> None:
        """Replace the content of a zone file (``energy_uj`` by default) with ``text`` verbatim."""
        if not _ATTR_RE.fullmatch(attr):
            raise ConfigError(f"corrupt() cannot write {attr!r}; pick a zone attribute file")
        _write_in_place(self._zone(zone).device_dir / attr, text)

    def remove(self, zone: str) -> None:
        """Make the zone and its sub-zones vanish, as when the driver is unloaded mid-run.

        Reads on a descriptor of a removed sysfs file fail; a regular file would keep its old
        content, so the files are emptied first: a reader holding them open then reads no data.
        """
        record = self._zone(zone)
        for zone_id in [*record.children, record.zone_id]:
            gone = self._zones.pop(zone_id)
            for entry in gone.device_dir.iterdir():
                if entry.is_file() and not entry.is_symlink():
                    _truncate(entry)
            if gone.link.is_symlink():
                gone.link.unlink()
        shutil.rmtree(record.device_dir)
        if record.parent is not None:
            self._zones[record.parent].children.remove(record.zone_id)

    # ------------------------------------------------------------------------------- private

    def _zone(self, zone: str) -> _FakeZone:
        try:
            return self._zones[zone]
        except KeyError:
            raise ConfigError(
                f"no zone {zone!r} in the fake powercap tree at {self.root} (zones: {self.zones})"
            ) from None

    def _new_top_id(self, control_type: str, index: int) -> str:
        if control_type not in _CONTROL_TYPES:
            raise ConfigError(f"control_type must be one of {_CONTROL_TYPES}, got {control_type!r}")
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ConfigError(f"zone index must be an int >= 0, got {index!r}")
        zone_id = f"{control_type}:{index}"
        if zone_id in self._zones:
            raise ConfigError(f"zone {zone_id} already exists in {self.root}")
        return zone_id

    def _add_zone(
        self,
        zone_id: str,
        name: str,
        *,
        energy_uj: int,
        range_uj: int,
        max_power_uw: int | None,
        power_limit_uw: int | None,
        parent: str | None,
    ) -> None:
        if isinstance(range_uj, bool) or not isinstance(range_uj, int) or range_uj <= 0:
            raise ConfigError(f"max_energy_range_uj must be an int > 0, got {range_uj!r}")
        _check_counter(energy_uj, range_uj)
        for label, value in (("max_power_uw", max_power_uw), ("power_limit_uw", power_limit_uw)):
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ConfigError(f"{label} must be an int >= 0 or None, got {value!r}")
        control_type = zone_id.split(":")[0]
        type_dir = self.root / _DEVICES / control_type
        if parent is None:
            device_dir = type_dir / zone_id
        else:
            device_dir = self._zones[parent].device_dir / zone_id
        if not type_dir.is_dir():
            type_dir.mkdir(parents=True)
            for directory in (self.root / _DEVICES, type_dir):
                os.chmod(directory, 0o755)
            _write_file(type_dir / "enabled", "1\n")
            _symlink(self.root / control_type, type_dir)
        device_dir.mkdir()
        os.chmod(device_dir, 0o755)
        _write_file(device_dir / "name", f"{name}\n")
        _write_file(device_dir / "energy_uj", f"{energy_uj}\n")
        _write_file(device_dir / "max_energy_range_uj", f"{range_uj}\n")
        _write_file(device_dir / "enabled", "1\n" if parent is None else "0\n")
        if max_power_uw is not None or power_limit_uw is not None:
            _write_file(device_dir / "constraint_0_name", "long_term\n")
        if max_power_uw is not None:
            _write_file(device_dir / "constraint_0_max_power_uw", f"{max_power_uw}\n")
        if power_limit_uw is not None:
            _write_file(device_dir / "constraint_0_power_limit_uw", f"{power_limit_uw}\n")
        link = self.root / zone_id
        _symlink(link, device_dir)
        self._zones[zone_id] = _FakeZone(zone_id, device_dir, link, range_uj, parent)
        if parent is not None:
            self._zones[parent].children.append(zone_id)


def _check_counter(energy_uj: int, range_uj: int) -> None:
    if isinstance(energy_uj, bool) or not isinstance(energy_uj, int):
        raise ConfigError(f"energy_uj must be an int, got {energy_uj!r}")
    if not 0 <= energy_uj <= range_uj:
        raise ConfigError(f"energy_uj must be within 0..{range_uj}, got {energy_uj}")


def _symlink(link: Path, target: Path) -> None:
    os.symlink(os.path.relpath(target, link.parent), link)


def _write_file(path: Path, text: str) -> None:
    path.write_text(text, encoding="ascii")
    os.chmod(path, 0o644)


def _write_in_place(path: Path, text: str) -> None:
    """Rewrite ``path`` without replacing its inode, so open descriptors see the new text.

    The new text is written over the old one before the file is cut to length, so a reader
    racing the write sees the old value, or the new value followed by stale bytes after its
    newline; never an empty file.
    """
    data = text.encode("ascii")
    with _owner_access(path):
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            done = 0
            while done < len(data):
                done += os.pwrite(fd, data[done:], done)
            os.ftruncate(fd, len(data))
        finally:
            os.close(fd)


def _truncate(path: Path) -> None:
    with _owner_access(path):
        os.truncate(path, 0)


@contextlib.contextmanager
def _owner_access(path: Path) -> Iterator[None]:
    """Give the owner read and write access to ``path`` for the duration (undoes :meth:`deny`)."""
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o600 == 0o600:
        yield
        return
    os.chmod(path, mode | 0o600)
    try:
        yield
    finally:
        os.chmod(path, mode)
