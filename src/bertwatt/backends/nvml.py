"""NVIDIA GPUs through NVML: the board energy counter, or board power where there is none.

One channel per physical GPU, named ``gpu:<NVML index>``:

- a **counter** channel from ``nvmlDeviceGetTotalEnergyConsumption`` (mJ since the driver was
  loaded, Volta and newer; an unsigned 64-bit value, so it does not wrap in practice);
- else a **power** channel from the driver's buffered power samples (``nvmlDeviceGetSamples`` with
  ``NVML_TOTAL_POWER_SAMPLES``, read about once a second: each reading is their mean since the
  previous read, see ``_nvml_samples.py``), where the GPU keeps at least 2.5 s of them;
- else a **power** channel from ``nvmlDeviceGetPowerUsage`` (mW). NVML's reference says that on
  Ampere (except GA100) and newer GPUs this call returns power averaged over 1 s, and on GA100 and
  older architectures an instantaneous value (it points to the ``NVML_FI_DEV_POWER_AVERAGE`` and
  ``NVML_FI_DEV_POWER_INSTANT`` fields of ``nvmlDeviceGetFieldValues`` for either on purpose).

Which GPUs: by default the ones this process can use, as CUDA reads ``CUDA_VISIBLE_DEVICES``
(CUDA Programming Guide, "CUDA Environment Variables"): unset means every GPU; an empty string means
none; otherwise a comma-separated list of integer indices, GPU UUIDs as printed by
``nvidia-smi -L`` or any prefix of one (``GPU-8932f937``) that matches a single GPU, or MIG device
UUIDs (``MIG-<uuid>``, or the older ``MIG-GPU-<uuid>/<GPU instance>/<compute instance>``). CUDA
stops at the first entry that names no device: ``0,2,-1,1`` makes 0 and 2 visible and hides 1.
bertwatt applies the same rules (``_cuda_devices.py``; spaces around entries are ignored, a GPU
listed twice is measured once) and reports the entries it had to drop.

Integer indices are NVML's (PCI bus order, as ``nvidia-smi`` numbers GPUs). CUDA numbers GPUs
fastest first unless ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` (see the cuda-smi README), so on a machine
with different GPU models the two can disagree; such channels carry a note saying so.

MIG: NVML reports energy and power only per physical GPU. A MIG instance is measured through its
parent GPU, and the channel notes that the figure covers the whole GPU, other tenants included.

Facts the provenance cites: Yang et al., "Part-time Power Measurements: nvidia-smi's Lack of
Attention" (arXiv:2312.02741, 2023) found that on A100 and H100 only about 25% of the runtime is
sampled for power; the Zeus v0.6.1 release notes report that the NVML energy counter can update less
often than a short measurement window, which then reads 0 J.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from bertwatt.backends._cuda_devices import GPU, Pick, check_devices, pick_gpus
from bertwatt.backends._nvml_samples import SAMPLES_CALL, PowerSamples, probe_power_samples
from bertwatt.backends.base import (
    Availability,
    Channel,
    Provenance,
    ReadResult,
    Unavailable,
)
from bertwatt.config import cuda_device_order
from bertwatt.errors import ConfigError, SensorReadError

__all__ = ["DEFAULT_MAX_POWER_W", "POWER_HEADROOM", "NVMLBackend"]

_log = logging.getLogger(__name__)

_ENERGY_CALL = "nvmlDeviceGetTotalEnergyConsumption"
_POWER_CALL = "nvmlDeviceGetPowerUsage"
_PIP_FIX = "pip install 'bertwatt[nvml]'"

#: ``max_power_w`` is the GPU's power limit times this. Boards briefly draw more than the limit
#: (the power controller enforces it as an average), and the check exists to reject gross glitches
#: (garbage values, counter jumps), not to police the limit: rejecting a real reading would bias the
#: energy low, so the margin is wide.
POWER_HEADROOM = 2.0

#: ``max_power_w`` when NVML reports no power limit: twice the 1,200 W that NVIDIA's largest
#: single GPUs (B200 in GB200 systems) can be configured to.
DEFAULT_MAX_POWER_W = 2400.0

# Energy-counter errors that mean "this GPU has no usable counter": fall back to power.
_FALLBACK_ERRORS = ("NVML_ERROR_NOT_SUPPORTED", "NVML_ERROR_FUNCTION_NOT_FOUND")

_INIT_FIXES = {
    "NVML_ERROR_LIBRARY_NOT_FOUND": (
        "install the NVIDIA driver (it ships libnvidia-ml.so.1) and check that `nvidia-smi` works; "
        "in a container, start it with GPU access (e.g. `docker run --gpus all`); on a machine "
        "without an NVIDIA GPU, leave 'nvml' out of backends="
    ),
    "NVML_ERROR_DRIVER_NOT_LOADED": (
        "load the NVIDIA kernel driver (`sudo modprobe nvidia`, or reinstall the driver) and check "
        "that `nvidia-smi` works; on a machine without an NVIDIA GPU, leave 'nvml' out of backends="
    ),
    "NVML_ERROR_NO_PERMISSION": (
        "give this user read/write access to /dev/nvidia* (or run where it has GPU access)"
    ),
    "NVML_ERROR_LIB_RM_VERSION_MISMATCH": (
        "the NVML library and the loaded kernel driver differ, usually after a driver upgrade: "
        "reboot, or reload the nvidia kernel modules"
    ),
}
_GENERIC_INIT_FIX = (
    "run on a host with an NVIDIA GPU and a working driver (check `nvidia-smi`), or leave 'nvml' "
    "out of backends="
)

#: Where a Linux host with an NVIDIA driver shows it: the control device and the driver's proc
#: entry, or, under WSL 2, the GPU paravirtualisation device and the driver's library folder.
DRIVER_PATHS = ("/dev/nvidiactl", "/proc/driver/nvidia/version", "/dev/dxg", "/usr/lib/wsl/lib")


def _no_driver() -> str | None:
    """Why NVML cannot work here, when no NVIDIA driver is present on Linux; else None.

    Saves importing pynvml (ctypes and friends, about 15 ms) and a failing ``nvmlInit`` on the
    many machines without an NVIDIA GPU. Elsewhere, and when any sign of a driver exists,
    ``nvmlInit`` decides (and names its own error).
    """
    if not sys.platform.startswith("linux") or any(os.path.exists(p) for p in DRIVER_PATHS):
        return None
    return (
        "no NVIDIA driver on this machine: none of " + ", ".join(DRIVER_PATHS) + " exists "
        "(NVML was not loaded)"
    )


_READ_HINTS = {
    "NVML_ERROR_GPU_IS_LOST": (
        "the GPU stopped responding or fell off the bus: check `nvidia-smi` and `dmesg`; "
        "it needs a reset or a reboot"
    ),
    "NVML_ERROR_NO_PERMISSION": "this user lacks permission for the query (check /dev/nvidia*)",
    "NVML_ERROR_UNINITIALIZED": (
        "NVML was shut down under bertwatt (another library called nvmlShutdown): probe again"
    ),
}

_NOTE_COUNTER = (
    "NVML board energy counter: mJ since the driver was loaded (Volta and newer); it restarts "
    "from 0 if the driver is reloaded. It advances in steps, so a window shorter than its update "
    "period can read 0 J (Zeus v0.6.1 release notes)."
)
_NOTE_POWER = (
    "nvmlDeviceGetPowerUsage: board power in mW; NVML's reference says it is averaged over 1 s on "
    "Ampere (except GA100) and newer GPUs and instantaneous on GA100 and older ones. On A100 and "
    "H100 only about 25% of the runtime is sampled for power (Yang et al. 2023, arXiv:2312.02741), "
    "so short bursts can be missed."
)


class NVMLBackend:
    """Energy of NVIDIA GPUs from NVML, one channel per physical GPU.

    Args:
        devices: GPUs to measure, by NVML index (``int``, as ``nvidia-smi`` numbers them) or UUID
            (``"GPU-..."``, a unique prefix of one, or a ``"MIG-..."`` instance, which measures its
            parent GPU). ``None`` measures the GPUs this process can use: those
            ``CUDA_VISIBLE_DEVICES`` lets CUDA see (every GPU when it is unset).
        all_devices: measure every GPU on the machine, whatever ``CUDA_VISIBLE_DEVICES`` says.

    Raises:
        ConfigError: for malformed arguments. A device that is not on the machine is not an
            error here: :meth:`probe` reports it as unavailable.
    """

    name = "nvml"
    blocking = False
    #: self-characterisation at start (bertwatt.characterise): the counter steps every ~100 ms
    characterise = True

    @property
    def may_hang(self) -> bool:
        """Whether probe() or close() may take long (``nvmlInit`` can take seconds while a
        driver wakes its GPUs): False only when there is no NVIDIA driver to call."""
        return self._nvml is not None or "pynvml" in sys.modules or _no_driver() is None

    def __init__(
        self, devices: Sequence[int | str] | None = None, *, all_devices: bool = False
    ) -> None:
        if not isinstance(all_devices, bool):
            raise ConfigError(f"all_devices must be True or False, got {all_devices!r}")
        self._devices = check_devices(devices)
        if self._devices is not None and all_devices:
            raise ConfigError("pass devices=[...] or all_devices=True, not both")
        self._all = all_devices
        self._nvml: Any = None
        self._error_type: type[BaseException] = Exception
        self._plan: list[tuple[Callable[[Any], float], Any]] | None = None
        self._labels: list[tuple[str, str, str]] = []
        self._messages: dict[tuple[int, int | None], str] = {}
        self._code_names: dict[int, str] = {}

    def __repr__(self) -> str:
        devices = None if self._devices is None else list(self._devices)
        return f"NVMLBackend(devices={devices!r}, all_devices={self._all!r})"

    # -- protocol ----------------------------------------------------------------------------

    def probe(self) -> Availability:
        """Initialise NVML, pick the GPUs and choose counter or power for each.

        Never raises because NVML, a driver or a GPU is missing: those come back as
        :class:`~bertwatt.backends.base.Unavailable` entries with the reason and the fix.
        """
        self.close()
        if "pynvml" not in sys.modules and (missing := _no_driver()) is not None:
            return _nothing(missing, _INIT_FIXES["NVML_ERROR_LIBRARY_NOT_FOUND"])
        try:
            import pynvml
        except ImportError as err:
            return _nothing(
                "cannot import pynvml, NVIDIA's NVML bindings from the nvidia-ml-py package "
                f"({err})",
                _PIP_FIX,
            )
        nv: Any = pynvml
        error_type = getattr(nv, "NVMLError", None)
        if not isinstance(error_type, type) or not issubclass(error_type, BaseException):
            return _nothing(
                "the importable pynvml module has no NVMLError class: it is not NVIDIA's "
                f"bindings ({getattr(nv, '__file__', nv)!r})",
                "pip uninstall pynvml && " + _PIP_FIX,
            )
        self._code_names = {
            value: key
            for key, value in vars(nv).items()
            if key.startswith("NVML_ERROR_") and isinstance(value, int)
        }
        try:
            nv.nvmlInit()
        except (error_type, OSError) as err:
            code = self._code_name(err)
            return _nothing(
                f"nvmlInit failed: {err}" + (f" ({code})" if code else ""),
                _INIT_FIXES.get(code or "", _GENERIC_INIT_FIX),
            )
        self._nvml = nv
        self._error_type = error_type
        try:
            channels, unavailable = self._select_and_build(nv, error_type)
        except error_type as err:
            self.close()
            return _nothing(
                f"NVML failed while listing GPUs: {self._describe(err)}",
                "check that `nvidia-smi -L` lists the GPUs",
            )
        if not channels:
            self.close()
            return Availability(unavailable=tuple(unavailable))
        return Availability(channels=tuple(channels), unavailable=tuple(unavailable))

    def read(self) -> ReadResult:
        """Read every channel: joules for counters, watts for power; ``nan`` where a GPU fails.

        One NVML call per GPU. A failing GPU gives ``nan`` and a message naming the call, the
        channel, the GPU's UUID and the NVML error; the other GPUs are still read.

        Raises:
            SensorReadError: when called before :meth:`probe` or after :meth:`close`.
        """
        plan = self._plan
        if plan is None:
            raise SensorReadError(
                "read() needs a successful probe() first", backend="nvml", fix="call probe()"
            )
        error_type = self._error_type
        values: list[float] = []
        errors: dict[int, str] | None = None
        for i, (call, handle) in enumerate(plan):
            try:
                values.append(call(handle) * 0.001)
            except error_type as err:
                values.append(math.nan)
                if errors is None:
                    errors = {}
                errors[i] = self._read_message(i, err)
        return values, errors

    def read_power(self) -> list[float]:
        """Board power (W) of every channel's GPU now (``nvmlDeviceGetPowerUsage``), ``nan``
        where it fails: beside a counter channel, for self-characterisation (is the reading
        instant or averaged?). Not part of the sampler's reads.

        Raises:
            SensorReadError: when called before :meth:`probe` or after :meth:`close`.
        """
        plan, nv = self._plan, self._nvml
        if plan is None or nv is None:
            raise SensorReadError(
                "read_power() needs a successful probe() first", backend="nvml", fix="call probe()"
            )
        call = nv.nvmlDeviceGetPowerUsage
        out: list[float] = []
        for _, handle in plan:
            try:
                out.append(call(handle) * 0.001)
            except self._error_type:
                out.append(math.nan)
        return out

    def close(self) -> None:
        """Shut NVML down (once per successful probe). The backend may be probed again."""
        nv, self._nvml = self._nvml, None
        self._plan = None
        self._labels = []
        self._messages = {}
        if nv is None:
            return
        try:
            nv.nvmlShutdown()
        except nv.NVMLError as err:
            _log.debug("nvmlShutdown failed: %s", err)

    # -- GPU selection -----------------------------------------------------------------------

    def _select_and_build(
        self, nv: Any, error_type: type[BaseException]
    ) -> tuple[list[Channel], list[Unavailable]]:
        unavailable: list[Unavailable] = []
        gpus: list[GPU | None] = []
        for index in range(nv.nvmlDeviceGetCount()):
            try:
                handle = nv.nvmlDeviceGetHandleByIndex(index)
                uuid = str(nv.nvmlDeviceGetUUID(handle))
            except error_type as err:
                gpus.append(None)
                unavailable.append(
                    Unavailable(
                        what=f"nvml:gpu:{index}",
                        reason=f"cannot open GPU {index}: {self._describe(err)}",
                        fix="check the GPU with `nvidia-smi`",
                    )
                )
                continue
            try:
                name = str(nv.nvmlDeviceGetName(handle))
            except error_type:
                name = "unknown"
            gpus.append(GPU(index, handle, uuid, name))
        if not gpus:
            unavailable.append(
                Unavailable(
                    what="nvml",
                    reason="NVML works but lists no GPU (nvmlDeviceGetCount = 0)",
                    fix="check `nvidia-smi -L`; in a container, start it with GPU access",
                )
            )
            return [], unavailable
        picks = pick_gpus(
            nv, error_type, gpus, unavailable, devices=self._devices, all_devices=self._all
        )
        driver = ""
        if picks:
            try:
                driver = str(nv.nvmlSystemGetDriverVersion())
            except error_type:
                driver = ""
        mixed = len({g.name for g in gpus if g is not None}) > 1
        order_note = mixed and cuda_device_order() != "PCI_BUS_ID"
        channels: list[Channel] = []
        for pick in picks:
            built = self._build(nv, error_type, pick, driver, order_note and pick.by_index)
            if isinstance(built, Unavailable):
                unavailable.append(built)
            else:
                channels.append(built)
        return channels, unavailable

    # -- channels ----------------------------------------------------------------------------

    def _build(
        self,
        nv: Any,
        error_type: type[BaseException],
        pick: Pick,
        driver: str,
        order_note: bool,
    ) -> Channel | Unavailable:
        gpu = pick.gpu
        handle = gpu.handle
        channel_name = f"gpu:{gpu.index}"
        notes: list[str] = []
        try:
            mig_mode = "enabled" if nv.nvmlDeviceGetMigMode(handle)[0] else "disabled"
        except error_type:
            mig_mode = "not supported"
        if pick.mig or mig_mode == "enabled":
            used = f" and this process uses MIG instance {', '.join(pick.mig)}" if pick.mig else ""
            notes.append(
                f"GPU {gpu.index} is in MIG mode{used}: NVML reports energy and power only for "
                "the whole physical GPU, so this figure covers all of it, including every other "
                "MIG instance and whoever runs there; it is not this process's share."
            )
        if order_note:
            notes.append(
                "This GPU was chosen by an integer index and the machine has different GPU "
                "models: CUDA numbers GPUs fastest first unless CUDA_DEVICE_ORDER=PCI_BUS_ID, "
                "NVML in PCI bus order, so CUDA's GPU of that index may be another one. Set "
                "CUDA_DEVICE_ORDER=PCI_BUS_ID or use GPU UUIDs to be sure."
            )
        limit_w, limit_source = self._power_limit(nv, error_type, handle)
        info = {
            "name": gpu.name,
            "uuid": gpu.uuid,
            "nvml_index": str(gpu.index),
            "power_limit_w": f"{limit_w:g}" if limit_w is not None else "unknown",
            "power_limit_source": limit_source,
            "mig_mode": mig_mode,
            "selected_by": pick.how,
        }
        if pick.mig:
            info["mig_devices"] = ",".join(pick.mig)
            info["mig_parent"] = gpu.uuid
        if driver:
            info["driver_version"] = driver
        max_power_w = limit_w * POWER_HEADROOM if limit_w else DEFAULT_MAX_POWER_W
        try:
            nv.nvmlDeviceGetTotalEnergyConsumption(handle)
        except error_type as err:
            if self._code_name(err) not in _FALLBACK_ERRORS:
                return Unavailable(
                    what=f"nvml:{channel_name}",
                    reason=f"{_ENERGY_CALL} failed on {gpu.uuid}: {self._describe(err)}",
                    fix="check the GPU with `nvidia-smi`",
                )
            energy_error = self._describe(err)
        else:
            self._add(nv, _ENERGY_CALL, handle, channel_name, gpu.uuid)
            provenance = Provenance(
                kind="measured",
                source=f"NVML {_ENERGY_CALL}",
                scope="gpu-board",
                method="cumulative board energy counter (mJ), read at window edges and by the "
                "sampler",
                resolution_j=0.001,
                notes=(_NOTE_COUNTER, *notes),
            )
            return Channel(
                name=channel_name,
                domain="gpu",
                kind="counter",
                provenance=provenance,
                wrap_j=None,
                max_power_w=max_power_w,
                info=info,
            )
        samples = probe_power_samples(nv, error_type, handle, self._describe)
        if isinstance(samples, PowerSamples):
            return self._sampled_channel(
                samples, handle, channel_name, gpu, energy_error, notes, info, max_power_w
            )
        notes.append(
            f"Power is polled: the driver's buffered power samples are not used ({samples})."
        )
        try:
            nv.nvmlDeviceGetPowerUsage(handle)
        except error_type as err:
            return Unavailable(
                what=f"nvml:{channel_name}",
                reason=(
                    f"{_ENERGY_CALL} failed on {gpu.uuid} ({energy_error}) and so did "
                    f"{_POWER_CALL} ({self._describe(err)})"
                ),
                fix="this GPU reports neither energy nor power through NVML",
            )
        _log.debug(
            "%s: %s unavailable (%s); using %s",
            channel_name,
            _ENERGY_CALL,
            energy_error,
            _POWER_CALL,
        )
        self._add(nv, _POWER_CALL, handle, channel_name, gpu.uuid)
        provenance = Provenance(
            kind="measured",
            source=f"NVML {_POWER_CALL}",
            scope="gpu-board",
            method="board power (mW) polled by the sampler and integrated over time",
            notes=(
                f"{_ENERGY_CALL} is unavailable on this GPU ({energy_error}; it needs Volta or "
                "newer), so energy is integrated from power samples.",
                _NOTE_POWER,
                *notes,
            ),
        )
        return _power_channel(channel_name, provenance, max_power_w, info)

    def _sampled_channel(
        self,
        samples: PowerSamples,
        handle: Any,
        channel_name: str,
        gpu: GPU,
        energy_error: str,
        notes: list[str],
        info: dict[str, str],
        max_power_w: float,
    ) -> Channel:
        """A power channel read from the driver's buffered power samples (no 10 Hz polling)."""
        if self._plan is None:
            self._plan = []
        self._plan.append((samples, handle))
        self._labels.append((SAMPLES_CALL, channel_name, gpu.uuid))
        info["power_sample_period_s"] = f"{samples.period_s:.6g}"
        provenance = Provenance(
            kind="measured",
            source=f"NVML {SAMPLES_CALL} (NVML_TOTAL_POWER_SAMPLES)",
            scope="gpu-board",
            method=(
                "the driver's buffered board power samples (one every "
                f"{samples.period_s * 1e3:.3g} ms), read about once a second; each reading is "
                "their time-weighted (trapezoid) mean since the previous read"
            ),
            update_period_s=samples.period_s,
            notes=(
                f"{_ENERGY_CALL} is unavailable on this GPU ({energy_error}; it needs Volta or "
                "newer), so energy is integrated from the driver's power samples.",
                "If a read comes later than the buffer reaches back, the samples lost are "
                "bridged by the trapezoid rule between the last sample seen and the next.",
                _NOTE_POWER,
                *notes,
            ),
        )
        return _power_channel(channel_name, provenance, max_power_w, info, mean=True)

    def _power_limit(
        self, nv: Any, error_type: type[BaseException], handle: Any
    ) -> tuple[float | None, str]:
        failures = []
        for call in ("nvmlDeviceGetEnforcedPowerLimit", "nvmlDeviceGetPowerManagementLimit"):
            try:
                milliwatts = getattr(nv, call)(handle)
            except error_type as err:
                failures.append(f"{call}: {err}")
                continue
            if milliwatts and milliwatts > 0:
                return milliwatts / 1000.0, call
            failures.append(f"{call}: returned {milliwatts!r}")
        return None, "; ".join(failures)

    def _add(self, nv: Any, call: str, handle: Any, channel: str, uuid: str) -> None:
        if self._plan is None:
            self._plan = []
        self._plan.append((getattr(nv, call), handle))
        self._labels.append((call, channel, uuid))

    # -- error text --------------------------------------------------------------------------

    def _code_name(self, err: BaseException) -> str | None:
        code = getattr(err, "value", None)
        return self._code_names.get(code) if isinstance(code, int) else None

    def _describe(self, err: BaseException) -> str:
        code = self._code_name(err)
        return f"{err} ({code})" if code else str(err) or type(err).__name__

    def _read_message(self, i: int, err: BaseException) -> str:
        key = (i, getattr(err, "value", None))
        message = self._messages.get(key)
        if message is None:
            call, channel, uuid = self._labels[i]
            hint = _READ_HINTS.get(self._code_name(err) or "")
            message = f"{call} failed on {channel} ({uuid}): {self._describe(err)}"
            if hint:
                message = f"{message}; {hint}"
            self._messages[key] = message
        return message


def _power_channel(
    name: str,
    provenance: Provenance,
    max_power_w: float,
    info: dict[str, str],
    *,
    mean: bool = False,
) -> Channel:
    """A GPU board power channel (polled: instant readings; ``mean``: means since the last read)."""
    return Channel(
        name=name,
        domain="gpu",
        kind="power",
        provenance=provenance,
        max_power_w=max_power_w,
        info=info,
        mean_since_last_read=mean,
    )


def _nothing(reason: str, fix: str | None) -> Availability:
    return Availability(unavailable=(Unavailable(what="nvml", reason=reason, fix=fix),))
