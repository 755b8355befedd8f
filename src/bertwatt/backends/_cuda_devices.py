"""Which GPUs a process may use, by CUDA's rules, and what a device identifier names.

``CUDA_VISIBLE_DEVICES`` is read as CUDA reads it (CUDA Programming Guide, "CUDA Environment
Variables"): unset, every GPU; empty, none; otherwise comma-separated entries, each an integer
index, a GPU UUID or a prefix of exactly one (``GPU-8932f937``), or a MIG device UUID
(``MIG-<uuid>``, or the older ``MIG-GPU-<uuid>/<GPU instance>/<compute instance>``). CUDA stops
at the first entry that names no device, so the entries after it are dropped and reported. Spaces
around entries are ignored; a GPU named twice is picked once. A MIG instance resolves to its parent
GPU, which is what NVML measures. Integer indices are NVML's (PCI bus order).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bertwatt.backends.base import Unavailable
from bertwatt.config import cuda_visible_devices
from bertwatt.errors import ConfigError

__all__ = ["GPU", "Pick", "check_devices", "pick_gpus"]

_INDEX_RE = re.compile(r"[+-]?\d+")
_OLD_MIG_RE = re.compile(r"MIG-(GPU-[^/]+)/(\d+)/(\d+)")


@dataclass(slots=True)
class GPU:
    """A GPU NVML opened: its NVML index, handle, UUID and name."""

    index: int
    handle: Any
    uuid: str
    name: str


@dataclass(slots=True)
class Pick:
    """A GPU chosen for measuring, how it was chosen, and the MIG instances named on it."""

    gpu: GPU
    how: str
    by_index: bool
    mig: list[str] = field(default_factory=list)


def check_devices(devices: Sequence[int | str] | None) -> tuple[int | str, ...] | None:
    """Validate ``devices=``: NVML indices (int >= 0) or GPU/MIG UUIDs, none twice.

    Raises:
        ConfigError: for any other shape; a well-formed entry that names no GPU is not an error
            here (:func:`pick_gpus` reports it).
    """
    if devices is None:
        return None
    if isinstance(devices, (str, bytes)) or not isinstance(devices, Sequence):
        raise ConfigError(
            "devices= takes a list of NVML indices or UUIDs, e.g. devices=[0] or "
            f"devices=['GPU-...']; got {devices!r}"
        )
    if not devices:
        raise ConfigError("devices=[] selects no GPU; pass None for the GPUs this process uses")
    seen: set[int | str] = set()
    for entry in devices:
        if isinstance(entry, bool) or not isinstance(entry, (int, str)):
            raise ConfigError(f"devices entries are int indices or UUID strings, got {entry!r}")
        if isinstance(entry, int) and entry < 0:
            raise ConfigError(f"devices entries must be NVML indices >= 0, got {entry}")
        if isinstance(entry, str) and not entry.startswith(("GPU-", "MIG-")):
            raise ConfigError(
                "devices strings are GPU or MIG UUIDs ('GPU-...' or 'MIG-...', see "
                f"`nvidia-smi -L`); got {entry!r} (pass NVML indices as int)"
            )
        if entry in seen:
            raise ConfigError(f"devices lists {entry!r} twice")
        seen.add(entry)
    return tuple(devices)


def pick_gpus(
    nv: Any,
    error_type: type[BaseException],
    gpus: list[GPU | None],
    unavailable: list[Unavailable],
    *,
    devices: tuple[int | str, ...] | None,
    all_devices: bool,
) -> list[Pick]:
    """Choose the GPUs to measure: every one, those of ``devices``, or CUDA's visible ones.

    Args:
        nv: the initialised pynvml module.
        error_type: its ``NVMLError`` class.
        gpus: the machine's GPUs by NVML index; ``None`` for one NVML could not open.
        unavailable: where entries that name no GPU, or that CUDA would drop, are reported.
        devices: the backend's checked ``devices=`` (see :func:`check_devices`), or ``None``.
        all_devices: every GPU, whatever ``CUDA_VISIBLE_DEVICES`` says.

    Returns:
        One pick per physical GPU, in the order first named, with the MIG instances named on it.
    """
    picks: dict[int, Pick] = {}

    def add(gpu: GPU, how: str, by_index: bool, mig: str | None) -> None:
        pick = picks.setdefault(gpu.index, Pick(gpu, how, by_index))
        if mig is not None and mig not in pick.mig:
            pick.mig.append(mig)

    if all_devices:
        for gpu in gpus:
            if gpu is not None:
                add(gpu, "all_devices=True", False, None)
        return list(picks.values())
    if devices is not None:
        for entry in devices:
            found = _match(nv, error_type, gpus, entry)
            if isinstance(found, str):
                unavailable.append(
                    Unavailable(
                        what=f"nvml:{entry}",
                        reason=f"devices= names {entry!r}, which {found}",
                        fix=_fix_devices(gpus),
                    )
                )
            elif found[0] is not None:
                add(found[0], f"devices=[{entry!r}]", isinstance(entry, int), found[1])
        return list(picks.values())
    env = cuda_visible_devices()
    if env is None:
        for gpu in gpus:
            if gpu is not None:
                add(gpu, "CUDA_VISIBLE_DEVICES unset: every GPU is visible", False, None)
        return list(picks.values())
    entries = [e.strip() for e in env.split(",")] if env.strip() else []
    stop = ""
    for pos, entry in enumerate(entries):
        found = _match(nv, error_type, gpus, entry)
        if isinstance(found, str):
            dropped = ", ".join(repr(e) for e in entries[pos:])
            stop = (
                f"entry {entry!r} {found}; CUDA stops at the first invalid entry, so "
                f"{dropped} are not visible to this process"
            )
            break
        if found[0] is not None:
            add(found[0], f"CUDA_VISIBLE_DEVICES entry {entry!r}", _is_index(entry), found[1])
    if picks and stop:
        unavailable.append(
            Unavailable(
                what="nvml",
                reason=f"CUDA_VISIBLE_DEVICES={env!r}: {stop} and are not measured",
                fix=_fix_env(gpus),
            )
        )
    elif not picks:
        unavailable.append(
            Unavailable(
                what="nvml",
                reason=(
                    f"CUDA_VISIBLE_DEVICES={env!r} makes no GPU visible to this process"
                    + (f" ({stop})" if stop else "")
                    + ", so there is none to measure"
                ),
                fix=(
                    "unset CUDA_VISIBLE_DEVICES or list the GPUs this process uses; to "
                    "measure GPUs it does not use, pass NVMLBackend(all_devices=True) or "
                    "devices=[...]"
                ),
            )
        )
    return list(picks.values())


def _match(
    nv: Any,
    error_type: type[BaseException],
    gpus: list[GPU | None],
    entry: int | str,
) -> tuple[GPU | None, str | None] | str:
    """Resolve one device identifier to (GPU, MIG UUID or None), or say why it names none.

    A GPU that NVML could not open resolves to ``(None, None)``: it exists (and was
    reported), but cannot be measured.
    """
    if isinstance(entry, int) or _is_index(entry):
        index = int(entry)
        if 0 <= index < len(gpus):
            return gpus[index], None
        return f"is not a GPU index (NVML lists {_index_range(gpus)})"
    if entry.startswith("GPU-"):
        hits = [g for g in gpus if g is not None and g.uuid.startswith(entry)]
        if len(hits) == 1:
            return hits[0], None
        if hits:
            return f"is a prefix of {len(hits)} GPU UUIDs, not of exactly one"
        return "matches no GPU UUID on this machine"
    old = _OLD_MIG_RE.fullmatch(entry)
    if old is not None:
        hits = [g for g in gpus if g is not None and g.uuid == old.group(1)]
        if hits:
            return hits[0], entry
        return f"names MIG instance of {old.group(1)}, which is not on this machine"
    if entry.startswith("MIG-"):
        try:
            handle = nv.nvmlDeviceGetHandleByUUID(entry)
            if not _truthy(nv.nvmlDeviceIsMigDeviceHandle(handle)):
                return "is not a MIG device UUID"
            parent = nv.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(handle)
            parent_uuid = str(nv.nvmlDeviceGetUUID(parent))
        except error_type as err:
            return f"matches no MIG device (nvmlDeviceGetHandleByUUID: {err})"
        hits = [g for g in gpus if g is not None and g.uuid == parent_uuid]
        if hits:
            return hits[0], entry
        return f"is a MIG device of {parent_uuid}, which NVML could not open"
    return "is neither a GPU index, a GPU UUID or prefix ('GPU-...'), nor a MIG UUID ('MIG-...')"


def _is_index(entry: str) -> bool:
    return _INDEX_RE.fullmatch(entry) is not None


def _truthy(value: Any) -> bool:
    # pynvml's nvmlDeviceIsMigDeviceHandle returns a ctypes c_uint, not an int.
    return bool(getattr(value, "value", value))


def _index_range(gpus: list[GPU | None]) -> str:
    return f"{len(gpus)} GPU{'s' if len(gpus) != 1 else ''}: 0-{len(gpus) - 1}"


def _fix_devices(gpus: list[GPU | None]) -> str:
    return f"pass an NVML index ({_index_range(gpus)}) or a UUID listed by `nvidia-smi -L`"


def _fix_env(gpus: list[GPU | None]) -> str:
    return (
        f"correct CUDA_VISIBLE_DEVICES: NVML indices ({_index_range(gpus)}), full UUIDs from "
        "`nvidia-smi -L`, or prefixes that match exactly one GPU"
    )
