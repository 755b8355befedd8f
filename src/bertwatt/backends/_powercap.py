"""The Linux powercap sysfs tree: where the RAPL zones are, and reading their files.

Layout, as documented in the kernel's ``Documentation/power/powercap/powercap.rst`` and seen on
real machines (``ls -l /sys/class/powercap`` in TheAlexDev23/power-options#42)::

    /sys/class/powercap/
      intel-rapl       -> ../../devices/virtual/powercap/intel-rapl          (control type)
      intel-rapl:0     -> .../intel-rapl/intel-rapl:0                        name: package-0
      intel-rapl:0:0   -> .../intel-rapl/intel-rapl:0/intel-rapl:0:0         name: core
      intel-rapl:0:1   -> .../intel-rapl/intel-rapl:0/intel-rapl:0:1         name: uncore
      intel-rapl:0:2   -> .../intel-rapl/intel-rapl:0/intel-rapl:0:2         name: dram
      intel-rapl:1     -> .../intel-rapl/intel-rapl:1                        name: psys

Every zone and sub-zone appears once at the top level, and sub-zones also appear nested inside
their package. :func:`discover` finds zones in both places and de-duplicates them by their id
(``intel-rapl:0:2``), so the root may be the class directory or a control-type directory. What a
zone *is* comes from its ``name`` file, which :mod:`bertwatt.backends.rapl` classifies.
"""

from __future__ import annotations

import errno
import math
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from bertwatt.backends.base import ReadResult, Unavailable

__all__ = [
    "READ_BYTES",
    "Zone",
    "chmod_fix",
    "discover",
    "is_dir",
    "largest_constraint",
    "os_text",
    "read_counters",
    "read_optional",
    "read_text",
    "unavailable_root",
]

# Control types in the order they are tried: MSR-backed zones, else the MMIO interface.
_CONTROL_TYPES = ("intel-rapl", "intel-rapl-mmio")
#: Bytes read from an ``energy_uj`` file at once.
READ_BYTES = 32  # "18446744073709551615\n" is 21 bytes
_CONSTRAINT_RE = re.compile(r"constraint_\d+_(?:max_power|power_limit)_uw")
_NAN = math.nan


@dataclass(frozen=True, slots=True)
class Zone:
    """One powercap zone directory: its id (``intel-rapl:0:2``), path, and parent zone's id."""

    zone_id: str  # e.g. "intel-rapl:0:2"
    path: Path
    parent_id: str | None


def read_counters(fds: list[int], paths: list[str]) -> ReadResult:
    """Read each open ``energy_uj`` with ``pread``: joules, or ``nan`` and why, naming the file."""
    values: list[float] = []
    errors: dict[int, str] | None = None
    pread = os.pread
    for i, fd in enumerate(fds):
        try:
            raw = pread(fd, READ_BYTES, 0)
        except OSError as err:
            values.append(_NAN)
            errors = errors if errors is not None else {}
            errors[i] = f"cannot read {paths[i]}: {os_text(err)}"
            continue
        head, newline, _ = raw.partition(b"\n")
        if newline and head.isdigit():
            values.append(int(head) / 1e6)
            continue
        values.append(_NAN)
        errors = errors if errors is not None else {}
        if raw:
            errors[i] = f"malformed content in {paths[i]}: {raw!r} (expected an integer in µJ)"
        else:
            errors[i] = f"{paths[i]} returned no data (zone removed, e.g. driver unloaded?)"
    return values, errors


def discover(root: Path) -> tuple[str | None, Path, list[Zone], list[Unavailable]]:
    """Find the zones of the first control type that has any: ``intel-rapl``, else MMIO.

    Returns ``(prefix, base, zones, problems)``; ``prefix`` is ``None`` when nothing was found.
    Raises OSError when ``root`` cannot be listed.
    """
    problems: list[Unavailable] = []
    for prefix in _CONTROL_TYPES:
        for base in (root, root / prefix):
            if base != root and not is_dir(base):
                continue
            zones = _zones_under(base, prefix, problems)
            if zones:
                return prefix, base, zones, problems
    return None, root, [], problems


def _zones_under(base: Path, prefix: str, problems: list[Unavailable]) -> list[Zone]:
    top_re = re.compile(re.escape(prefix) + r":(\d+)")
    sub_re = re.compile(re.escape(prefix) + r":(\d+):(\d+)")
    tops: dict[int, Path] = {}
    flat_subs: dict[tuple[int, int], Path] = {}
    for entry in sorted(os.listdir(base)):
        path = base / entry
        top, sub = top_re.fullmatch(entry), sub_re.fullmatch(entry)
        if not (top or sub):
            continue
        if not is_dir(path):
            reason = f"{path} is not a directory (a dangling symlink?)"
            problems.append(Unavailable(what=f"rapl:{entry}", reason=reason))
        elif top:
            tops[int(top.group(1))] = path
        elif sub:
            flat_subs[(int(sub.group(1)), int(sub.group(2)))] = path
    zones: list[Zone] = []
    for index in sorted(tops):
        top_id = f"{prefix}:{index}"
        zones.append(Zone(top_id, tops[index], None))
        subs = {key: path for key, path in flat_subs.items() if key[0] == index}
        try:
            nested = os.listdir(tops[index])
        except OSError:
            nested = []
        for entry in nested:
            sub = sub_re.fullmatch(entry)
            if sub and int(sub.group(1)) == index and is_dir(tops[index] / entry):
                subs.setdefault((index, int(sub.group(2))), tops[index] / entry)
        for key in sorted(subs):
            zones.append(Zone(f"{prefix}:{key[0]}:{key[1]}", subs[key], top_id))
    for key, path in sorted(flat_subs.items()):
        if key[0] not in tops:
            reason = f"{path}: no parent zone {prefix}:{key[0]} next to it"
            problems.append(Unavailable(what=f"rapl:{path.name}", reason=reason))
    return zones


def largest_constraint(zone_dir: Path) -> tuple[int, str]:
    """The zone's largest ``constraint_*_max_power_uw`` / ``_power_limit_uw``, µW, and its file.

    ``(0, "")`` when there is none. Files that cannot be read are skipped: some report ``ENODATA``
    (intel/powertelemetry#3).
    """
    best_uw, best_file = 0, ""
    try:
        entries = sorted(os.listdir(zone_dir))
    except OSError:
        return 0, ""
    for entry in entries:
        if not _CONSTRAINT_RE.fullmatch(entry):
            continue
        try:
            value = int(read_text(zone_dir / entry))
        except (OSError, ValueError):
            continue
        if value > best_uw:
            best_uw, best_file = value, entry
    return best_uw, best_file


def read_text(path: Path) -> str:
    """A small sysfs file's stripped ASCII text; ``ValueError`` when it is empty."""
    with open(path, encoding="ascii", errors="strict") as handle:
        text = handle.read(4096).strip()
    if not text:
        raise ValueError("file is empty")
    return text


def read_optional(path: Path) -> str:
    """:func:`read_text`, or ``"unknown"`` when the file cannot be read."""
    try:
        return read_text(path)
    except (OSError, ValueError):
        return "unknown"


def os_text(err: OSError) -> str:
    """An OSError as its message, errno and errno name."""
    code = errno.errorcode.get(err.errno, "?") if err.errno is not None else "?"
    return f"{err.strerror or err} (errno {err.errno}, {code})"


def chmod_fix(base: Path, paths: list[Path]) -> str:
    """The exact command that makes ``paths`` readable, as globs that also cover the others."""
    patterns: list[str] = []
    for path in paths:
        relative = path.relative_to(base).as_posix()
        pattern = re.sub(r":\d+", ":*", relative)
        if pattern not in patterns:
            patterns.append(pattern)
    prefix = shlex.quote(str(base))
    targets = " ".join(f"{prefix}/{pattern}" for pattern in patterns)
    return (
        f"`sudo chmod a+r {targets}` (resets at reboot; to keep it, add a udev rule or "
        f"systemd-tmpfiles entry that gives a group read access), run as root, or leave "
        f'"rapl" out of backends='
    )


def unavailable_root(root: Path) -> Unavailable:
    """Why ``root`` holds no RAPL zones, with the fix."""
    fix = (
        "on bare-metal Linux load the driver: `sudo modprobe intel_rapl_msr` (Intel since Sandy "
        "Bridge; AMD Zen on recent kernels); in a container, make the host's "
        "/sys/class/powercap visible; virtual machines and most cloud instances expose no RAPL, "
        'so leave "rapl" out of backends= there'
    )
    try:
        entries = sorted(os.listdir(root))
    except FileNotFoundError:
        reason = f"{root} does not exist: this kernel exposes no powercap interface here"
    except NotADirectoryError:
        reason = f"{root} is not a directory"
    except OSError as err:
        reason = f"cannot list {root}: {os_text(err)}"
    else:
        seen = ", ".join(entries[:8]) + (", ..." if len(entries) > 8 else "") or "nothing"
        reason = f"no intel-rapl power zones under {root} (found: {seen})"
    return Unavailable(what="rapl", reason=reason, fix=fix)


def is_dir(path: Path) -> bool:
    """``path.is_dir()``, False where it cannot be checked."""
    try:
        return path.is_dir()
    except OSError:  # e.g. a parent that cannot be searched
        return False
