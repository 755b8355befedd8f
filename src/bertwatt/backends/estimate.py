"""The labelled estimate: CPU (and optionally DRAM) power from TDP x utilisation. NOT a measurement.

Used when no sensor (RAPL, NVML, a wall plug) covers the CPU. Each channel's provenance is
``kind="estimated"``, lists every input in ``assumptions`` and says in ``notes`` how to measure.
With ``u`` the utilisation in [0, 1] since the previous read::

    capacity_w = TDP per package x sockets x usable logical CPUs / host logical CPUs
    "system":  P = capacity_w x (0.1 + 0.9 u)   u = busy share of the CPUs this process may use
    "process": P = capacity_w x u    u = CPU s of this process tree / (wall s x usable CPUs)

Idle floor in "system" mode only: a package draws power at 0 % load, and server power is close to
linear in utilisation between idle and full load (Fan, Weber and Barroso, ISCA 2007, "Power
provisioning for a warehouse-sized computer"). CodeCarbon's machine-level ``cpu_load`` mode floors
power at 10 % of TDP (``codecarbon/external/hardware.py``; its cubic curve, fitted to its own RAPL
profiles of a few CPUs, is not adopted here). With a floor, the figure also behaves like a sensor
when the meter subtracts an idle baseline. "process" mode attributes this process's share, leaving
out the idle power it did not cause, like Green Algorithms (cores x TDP per core x usage factor;
Lannelongue et al., Adv. Sci. 2021, doi:10.1002/advs.202100707) and CodeCarbon's process mode.

TDP: ``tdp_w=``, else the packaged table (:func:`bertwatt.backends.tdp.lookup_tdp`), else 12 W per
usable logical CPU, Green Algorithms' per-core figure for an unknown CPU (row ``Any`` of
``data/TDP_cpu.csv``), which overstates where SMT siblings share a core. TDP is a thermal design
figure, not measured power: turbo can exceed it (Intel PL2). A table TDP covers one socket: it is
multiplied by the distinct ``physical id`` values of ``/proc/cpuinfo`` and by the share of logical
CPUs usable here (``os.sched_getaffinity``). A VM cannot see the host's CPU count, so no share
applies there and the figure is likely too high: pass ``cpu_count=`` (host logical CPUs). cgroup
quotas are not seen. In ``"process"`` mode on Linux, CPU times come from ``os.times()`` and
``/proc/<pid>/stat`` (psutil is not imported: it costs about 10 ms at a window's start); in
``"system"`` mode, utilisation comes from ``psutil.cpu_times()`` deltas kept on the instance, not
from ``psutil.cpu_percent(interval=None)``, whose last sample is shared by every caller
(module-global, per thread since giampaolo/psutil#2282): other code, or priming on another thread,
corrupts it.

DRAM (``memory=True``): 0.375 W/GiB by default, CodeCarbon's pre-v3 "3 watts for 8 GB" of
DDR3/DDR4 (after Crucial, "How much power does memory use?"; DIMM sizes are binary). Green
Algorithms uses 0.3725 W/GB (``data/v2.0/referenceValues.csv``); CodeCarbon v3 moved to about 5 W
per DIMM (``codecarbon/external/ram.py``). Memory power follows the memory installed, not the part
in use (Green Algorithms: it "only depends on the size of memory available"), so "system" uses
``psutil.virtual_memory().total``; "process" attributes this process's RSS.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from bertwatt.backends.base import Availability, Channel, Provenance, ReadResult, Scope, Unavailable
from bertwatt.backends.tdp import TdpRecord, lookup_tdp
from bertwatt.errors import ConfigError

__all__ = [
    "DEFAULT_MEMORY_W_PER_GIB",
    "FALLBACK_W_PER_LOGICAL_CPU",
    "IDLE_FRACTION",
    "EstimateBackend",
    "TdpRecord",  # from bertwatt.backends.tdp, importable here too
    "lookup_tdp",  # from bertwatt.backends.tdp, importable here too
]

logger = logging.getLogger(__name__)

#: Default DRAM power in W per GiB (CodeCarbon < v3: 3 W per 8 GB DIMM, after Crucial).
DEFAULT_MEMORY_W_PER_GIB = 0.375
#: Share of TDP drawn at 0 % utilisation in ``"system"`` mode (CodeCarbon's cpu_load minimum).
IDLE_FRACTION = 0.1
#: W per usable logical CPU when the CPU is not in the table (Green Algorithms' "Any" per core).
FALLBACK_W_PER_LOGICAL_CPU = 12.0

_GIB = 1024**3
_MEMORY_SOURCE = (
    "CodeCarbon before v3: 3 W per 8 GB DDR3/DDR4 DIMM (Crucial, 'How much power does memory "
    "use?'); Green Algorithms: 0.3725 W/GB (Lannelongue et al., Adv. Sci. 2021)"
)
_MEASURE_NOTE = (
    "To measure instead of estimate: make RAPL readable (sudo chmod a+r "
    "/sys/class/powercap/intel-rapl:*/energy_uj, resets at reboot) and use the 'rapl' backend; "
    "for NVIDIA GPUs `pip install nvidia-ml-py` and use the 'nvml' backend."
)
_PROCESS_UTIL = (
    "this process tree's user+system CPU seconds (this process and its reaped children from "
    "{own}, its live descendants from /proc/<pid>/task/<tid>/children and {kids}) / "
    "(wall seconds x usable CPUs)"
)
_PROCFS_OWN, _PROCFS_KIDS = "os.times()", "/proc/<pid>/stat"
_PSUTIL_OWN, _PSUTIL_KIDS = "psutil cpu_times()", "psutil cpu_times()"
_MIN_INTERVAL_S = 0.02  # reads closer than this to the last accepted one repeat its utilisation, s
_UTIL_WINDOW = (
    f", since the previous read; a read less than {_MIN_INTERVAL_S * 1e3:g} ms after the previous "
    "one repeats the previous value (CPU times advance in 10 ms ticks); a read before any interval "
    "has elapsed since probe() uses the utilisation since the process started ('process') or "
    "since boot ('system'), so probe() sleeps for nothing"
)
_FIX_MODEL = "a brand string or table name, e.g. cpu_model='Xeon Gold 6248'"
_FIX_COUNT = "the host's logical CPU count, e.g. cpu_count=80"
_FALLBACK_SOURCE = (
    f"fallback: CPU model not in table; {FALLBACK_W_PER_LOGICAL_CPU:g} W per usable logical CPU "
    "(Green Algorithms' per-core figure for an unknown CPU; each logical CPU counted as a core)"
)
_FALLBACK_NOTE = (
    "CPU model {model!r} is not in bertwatt's TDP table, so a generic {w:g} W per logical CPU "
    "was used. Fix: EstimateBackend(tdp_w=<TDP of one package in W>) or "
    "EstimateBackend(cpu_model='<model, e.g. Xeon Gold 6248>')."
)
_VM_NOTE = (
    "Running under a hypervisor: the TDP is the host socket's and this VM's share of it is "
    "unknown, so the figure is likely too high. Fix: EstimateBackend(cpu_count=<host logical "
    "CPUs>) or EstimateBackend(tdp_w=<W of this VM's share>)."
)


@dataclass(frozen=True, slots=True)
class _CpuInfo:
    model: str | None
    model_from: str
    sockets: int | None
    hypervisor: bool


def _cpuinfo(path: str) -> _CpuInfo:
    """:func:`_read_cpuinfo`, read once per process for the kernel's own ``/proc/cpuinfo``
    (the CPU model, sockets and hypervisor flag do not change while a process runs)."""
    if path == "/proc/cpuinfo":
        return _proc_cpuinfo()
    return _read_cpuinfo(path)


@functools.cache
def _proc_cpuinfo() -> _CpuInfo:
    return _read_cpuinfo("/proc/cpuinfo")


def _read_cpuinfo(path: str) -> _CpuInfo:
    model: str | None = None
    sockets: set[str] = set()
    hypervisor = False
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = (part.strip() for part in line.partition(":"))
                if key.lower() == "model name" and model is None and value:
                    model = value
                elif key.lower() == "physical id":
                    sockets.add(value)
                elif key.lower() == "flags" and "hypervisor" in value.split():
                    hypervisor = True
    except OSError as err:
        logger.debug("cannot read %s: %s", path, err)
    if model is not None:
        return _CpuInfo(model, f"{path} 'model name'", len(sockets) or None, hypervisor)
    return _CpuInfo(platform.processor() or None, "platform.processor()", None, hypervisor)


def _busy_total_s(times: Any) -> tuple[float, float]:
    """(busy, total) CPU seconds from a psutil cpu_times tuple; steal counts as neither."""
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return total - idle - getattr(times, "steal", 0.0), total


def _channel(
    name: str,
    scope: Scope,
    source: str,
    method: str,
    a: dict[str, str],
    notes: list[str],
    max_power_w: float,
    info: dict[str, str],
    *,
    mean_since_last_read: bool = False,
) -> Channel:
    """A power channel labelled ``estimated``; the domain is the name's prefix."""
    prov = Provenance(
        kind="estimated",
        source=source,
        scope=scope,
        method=method,
        assumptions=a,
        notes=tuple(notes),
    )
    return Channel(
        name=name,
        domain=name.split(":")[0],
        kind="power",
        provenance=prov,
        max_power_w=max_power_w,
        info=info,
        mean_since_last_read=mean_since_last_read,
    )


class _NoPsutil:
    """Stands for psutil where it is not imported (process mode on Linux reads /proc)."""

    class Error(Exception):
        """Never raised: lets ``except psutil.Error`` clauses stand as they are."""


def _stat_fields(procfs: str, pid: int) -> list[bytes]:
    """Fields 3.. of ``/proc/<pid>/stat`` (after the command name, which may hold blanks)."""
    with open(f"{procfs}/{pid}/stat", "rb") as fh:
        data = fh.read()
    return data[data.rindex(b")") + 2 :].split()


def _procfs_busy_s(procfs: str, pid: int) -> float:
    """utime + stime + cutime + cstime of ``pid`` in seconds (``proc(5)`` fields 14-17)."""
    f = _stat_fields(procfs, pid)
    return sum(int(x) for x in f[11:15]) / os.sysconf("SC_CLK_TCK")


def _procfs_age_s(procfs: str) -> float:
    """Seconds since this process started: ``/proc/uptime`` minus ``starttime`` (field 22)."""
    start_s = int(_stat_fields(procfs, os.getpid())[19]) / os.sysconf("SC_CLK_TCK")
    with open(f"{procfs}/uptime", "rb") as fh:
        uptime_s = float(fh.read().split()[0])
    return max(0.0, uptime_s - start_s)


def _err(message: str, fix: str | None = None) -> ConfigError:
    return ConfigError(message, backend="estimate", fix=fix)


def _positive(name: str, value: object, upper: float, fix: str) -> float:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if number and math.isfinite(value) and 0 < value <= upper:  # type: ignore[arg-type,operator]
        return float(value)  # type: ignore[arg-type]
    raise _err(f"{name} must be a number > 0 and <= {upper:g}, got {value!r}", fix)


class EstimateBackend:
    """CPU (and optionally DRAM) power estimated from TDP x utilisation; see the module docstring.

    Channels (power, W, counted, labelled ``estimated``): ``cpu:estimate`` (scope
    ``cpu-package``) and, with ``memory=True``, ``dram:estimate`` (scope ``dram``).

    Args:
        tdp_w: TDP of one CPU package (socket), W, instead of the table's; scaled by sockets and
            the usable share like a table row.
        cpu_model: CPU brand string or table name to look up instead of the detected one.
        utilisation: ``"process"`` (default: the CPU time of this process tree, i.e. this
            process and every process it started, as a share of the usable CPUs; no idle floor)
            or ``"system"`` (the usable CPUs' busy share, whoever uses them, with an idle floor).
            ``"process"`` is the default because it is the least wrong on a shared machine:
            ``"system"`` charges every other user's load to the window (a ``sleep 3`` on a busy
            machine was charged 71 J at 23.7 W), while ``"process"`` charges what the measured
            work ran, leaving out only the idle power it did not cause (said in the report).
        memory: also estimate DRAM power.
        memory_w_per_gib: DRAM power per GiB of memory, W/GiB.
        cpu_count: the host's logical CPUs, which the TDP x sockets covers; default: the CPUs the
            kernel reports (inside a VM, the VM's own).
        cpuinfo_path: where to read the CPU brand string, sockets and the hypervisor flag.
        procfs_path: the Linux ``/proc`` mount. With ``utilisation="process"`` (and no
            ``memory``), CPU times are read from it and ``os.times()`` directly, so psutil is not
            imported (about 10 ms at a window's start); elsewhere, or where it cannot be read,
            psutil answers.

    Raises:
        ConfigError: an argument has a type or value that cannot be used.
    """

    name = "estimate"
    blocking = False
    #: probe() and close() only read /proc files: probed on the caller's thread (see probing.py)
    may_hang = False

    def __init__(
        self,
        *,
        tdp_w: float | None = None,
        cpu_model: str | None = None,
        utilisation: Literal["system", "process"] = "process",
        memory: bool = False,
        memory_w_per_gib: float = DEFAULT_MEMORY_W_PER_GIB,
        cpu_count: int | None = None,
        cpuinfo_path: str | os.PathLike[str] = "/proc/cpuinfo",
        procfs_path: str | os.PathLike[str] = "/proc",
    ) -> None:
        fix = "the TDP of one CPU package in W, e.g. EstimateBackend(tdp_w=150)"
        self._tdp_w = None if tdp_w is None else _positive("tdp_w", tdp_w, 2000.0, fix)
        if cpu_model is not None and not (isinstance(cpu_model, str) and cpu_model.strip()):
            raise _err(f"cpu_model must be a non-empty string, got {cpu_model!r}", _FIX_MODEL)
        if not (isinstance(utilisation, str) and utilisation in ("system", "process")):
            raise _err(f"utilisation must be 'system' or 'process', got {utilisation!r}")
        if not isinstance(memory, bool):
            raise _err(f"memory must be True or False, got {memory!r}")
        fix = f"omit it for the default {DEFAULT_MEMORY_W_PER_GIB} W/GiB"
        self._w_per_gib = _positive("memory_w_per_gib", memory_w_per_gib, 10.0, fix)
        if cpu_count is not None and (
            isinstance(cpu_count, bool) or not isinstance(cpu_count, int) or cpu_count < 1
        ):
            raise _err(f"cpu_count must be an int >= 1, got {cpu_count!r}", _FIX_COUNT)
        if not isinstance(cpuinfo_path, (str, os.PathLike)):
            raise _err(f"cpuinfo_path must be a path, got {cpuinfo_path!r}")
        if not isinstance(procfs_path, (str, os.PathLike)):
            raise _err(f"procfs_path must be a path, got {procfs_path!r}")
        self._procfs = os.fspath(procfs_path)
        self._cpu_model = cpu_model.strip() if cpu_model is not None else None
        self._mode, self._memory, self._cpu_count = utilisation, memory, cpu_count
        self._cpuinfo_path = os.fspath(cpuinfo_path)
        self._cpuinfo: _CpuInfo | None = None
        self._channels: tuple[Channel, ...] = ()
        self._readers: tuple[Callable[[], float], ...] = ()
        self._psutil: Any = None
        self._proc: Any = None
        self._kids: dict[int, Any] = {}  # psutil.Process of live descendants, by pid
        self._tree_max = 0.0
        self._cpu_ids: tuple[int, ...] | None = None
        self._usable = 1
        self._capacity_w = self._dram_w = math.nan
        self._last = (0.0, 0.0)  # (busy, available) CPU s at the last accepted read
        self._last_s = 0.0  # monotonic s of that read
        self._last_util: float | None = None

    def __repr__(self) -> str:
        return (
            f"EstimateBackend(tdp_w={self._tdp_w!r}, cpu_model={self._cpu_model!r}, "
            f"utilisation={self._mode!r}, memory={self._memory!r}, "
            f"memory_w_per_gib={self._w_per_gib!r}, cpu_count={self._cpu_count!r}, "
            f"procfs_path={self._procfs!r})"
        )

    def probe(self) -> Availability:
        """Detect the CPU, choose the TDP, sample CPU times once (no sleep); never raises."""
        psutil: Any = _NoPsutil
        if self._mode == "system" or self._memory or not self._procfs_readable():
            try:
                import psutil as found
            except ImportError as err:
                gone = Unavailable(
                    what="estimate",
                    reason=f"cannot import psutil ({err})",
                    fix="pip install psutil",
                )
                return Availability(unavailable=(gone,))
            psutil = found
        self._psutil = psutil
        if self._cpuinfo is None:
            self._cpuinfo = _cpuinfo(self._cpuinfo_path)
        channels, readers, missing = [], [], []
        try:
            channels.append(self._probe_cpu(psutil, self._cpuinfo))
            readers.append(self._read_cpu)
        except (OSError, psutil.Error) as err:
            why = f"cannot read CPU times or the TDP table: {type(err).__name__}: {err}"
            return Availability(unavailable=(Unavailable(what="estimate", reason=why),))
        if self._memory:
            try:
                channels.append(self._probe_dram(psutil))
                readers.append(self._read_dram)
            except (OSError, psutil.Error) as err:
                why = f"psutil.virtual_memory(): {type(err).__name__}: {err}"
                missing.append(Unavailable(what="estimate:dram", reason=why))
        self._channels, self._readers = tuple(channels), tuple(readers)
        return Availability(channels=self._channels, unavailable=tuple(missing))

    def _probe_cpu(self, psutil: Any, info: _CpuInfo) -> Channel:
        counted = None if psutil is _NoPsutil else psutil.cpu_count(logical=True)
        host = self._cpu_count or counted or os.cpu_count() or 1
        try:
            affinity = sorted(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            affinity = []
        usable = self._usable = len(affinity) or host
        model = self._cpu_model or info.model
        a = {
            "cpu_model": repr(model),
            "cpu_model_from": "constructor argument" if self._cpu_model else info.model_from,
            "detected_cpu_model": repr(info.model),
            "logical_cpus_usable": f"{usable} ({'os.sched_getaffinity' if affinity else 'all'})",
        }
        notes = ["Estimated from TDP x CPU utilisation, NOT measured.", _MEASURE_NOTE]
        record = lookup_tdp(model) if model and self._tdp_w is None else None
        tdp = self._tdp_w if record is None else record.tdp_w
        if tdp is None:
            self._capacity_w = FALLBACK_W_PER_LOGICAL_CPU * usable
            a["tdp_w"] = f"{self._capacity_w:g} for {usable} usable logical CPUs"
            a["tdp_source"] = _FALLBACK_SOURCE
            notes.append(_FALLBACK_NOTE.format(model=model, w=FALLBACK_W_PER_LOGICAL_CPU))
        else:
            sockets, share = info.sockets or 1, min(1.0, usable / host)
            self._capacity_w = tdp * sockets * share
            a["tdp_w"] = f"{tdp:g} per package"
            a["tdp_source"] = (
                f"table row {record.model!r} (source: {record.source}; year: {record.year}; "
                f"matched on {record.matched_on})"
                if record
                else f"user override: EstimateBackend(tdp_w={tdp:g})"
            )
            a["sockets"] = f"{sockets} (" + (
                f"distinct 'physical id' in {self._cpuinfo_path})" if info.sockets else "assumed)"
            )
            a["logical_cpus_host"] = f"{host} (" + (
                "constructor argument cpu_count)"
                if self._cpu_count
                else ("os.cpu_count)" if counted is None else "psutil.cpu_count)")
            )
            a["share_of_packages"] = f"{usable}/{host} = {share:.4g}"
            if sockets > 1:
                notes.append(f"TDP multiplied by {sockets} sockets.")
            if info.hypervisor and record and self._cpu_count is None:
                notes.append(_VM_NOTE)
        a["capacity_w"] = f"{self._capacity_w:.4g} (power of the usable CPUs at full load)"
        a["utilisation"] = self._prime(psutil, affinity)
        a["power_model"] = (
            f"P = capacity_w x ({IDLE_FRACTION:g} + {1 - IDLE_FRACTION:g} x u): linear from an "
            "idle floor of 10% of capacity (CodeCarbon's cpu_load minimum) to full load"
            if self._mode == "system"
            else "P = capacity_w x u: this process's share, no idle floor"
        )
        facts = {"cpu_model": str(model), "capacity_w": f"{self._capacity_w:.4g}"}
        via = "/proc" if psutil is _NoPsutil else "psutil"
        source, method = f"TDP x CPU utilisation ({via})", "CPU-time deltas between reads"
        capacity_w = self._capacity_w
        return _channel(
            "cpu:estimate",
            "cpu-package",
            source,
            method,
            a,
            notes,
            capacity_w,
            facts,
            mean_since_last_read=True,  # utilisation since the previous read
        )

    def _procfs_readable(self) -> bool:
        """Whether this process's CPU times can be read from ``procfs_path`` (Linux)."""
        try:
            _procfs_busy_s(self._procfs, os.getpid())
            _procfs_age_s(self._procfs)
        except (OSError, ValueError, IndexError):
            return False
        return True

    def _prime(self, psutil: Any, affinity: list[int]) -> str:
        """Choose the CPUs and take the first CPU-times sample (no sleep); return how it is done."""
        if self._mode == "process":
            self._proc = None if psutil is _NoPsutil else psutil.Process()
            self._cpu_ids, self._kids, self._tree_max = None, {}, 0.0
            how = (
                _PROCESS_UTIL.format(own=_PROCFS_OWN, kids=_PROCFS_KIDS)
                if self._proc is None
                else _PROCESS_UTIL.format(own=_PSUTIL_OWN, kids=_PSUTIL_KIDS)
            )
        else:
            online = len(psutil.cpu_times(percpu=True))
            try:
                configured = os.sysconf("SC_NPROCESSORS_CONF")
            except (AttributeError, ValueError, OSError):
                configured = -1
            # per-CPU rows come by position, which is the CPU id only when no CPU is offline
            if affinity and len(affinity) < online == configured:
                self._cpu_ids = tuple(affinity)
                how = f"busy share of CPUs {affinity} (psutil.cpu_times(percpu=True))"
            else:
                self._cpu_ids = None
                how = f"busy share of all {online} online CPUs (psutil.cpu_times())"
        # Nothing is slept here: until a first interval has elapsed, reads use the utilisation
        # since the process started ("process") or since boot ("system"), from the same sample.
        self._last, self._last_s = self._sample(), time.monotonic()
        self._last_util = self._prior_utilisation(psutil)
        return how + _UTIL_WINDOW

    def _prior_utilisation(self, psutil: Any) -> float | None:
        """Utilisation since the process started (process tree) or since boot (system)."""
        busy, total = self._last
        if self._mode == "process":
            try:
                if self._proc is None:
                    total = _procfs_age_s(self._procfs) * self._usable
                else:
                    total = (time.time() - self._proc.create_time()) * self._usable
            except (OSError, ValueError, IndexError, psutil.Error):
                return None
        return min(1.0, max(0.0, busy / total)) if total > 0 else None

    def _probe_dram(self, psutil: Any) -> Channel:
        total_gib = psutil.virtual_memory().total / _GIB
        self._dram_w = total_gib * self._w_per_gib
        if self._proc is None:
            self._proc = psutil.Process()
        given = self._w_per_gib != DEFAULT_MEMORY_W_PER_GIB
        a = {
            "w_per_gib": f"{self._w_per_gib:g} ("
            + ("constructor argument memory_w_per_gib)" if given else f"{_MEMORY_SOURCE})"),
            "memory": f"installed: psutil.virtual_memory().total = {total_gib:.4g} GiB (in a "
            "container, the host's)"
            if self._mode == "system"
            else "this process's resident set size, psutil.Process().memory_info().rss",
        }
        notes = [
            "Estimated from memory size x W per GiB, NOT measured.",
            "To measure DRAM instead: a readable RAPL 'dram' zone and the 'rapl' backend.",
        ]
        source, method = "memory size x W per GiB (psutil)", "memory size queried at each read"
        facts = {"memory_gib": f"{total_gib:.4g}"}
        return _channel("dram:estimate", "dram", source, method, a, notes, self._dram_w, facts)

    def _descendants(self) -> list[int]:
        """PIDs of this process's live descendants, from /proc/<pid>/task/<tid>/children."""
        out: list[int] = []
        todo = [os.getpid()]
        while todo and len(out) < 4096:
            pid = todo.pop()
            try:
                tids = os.listdir(f"{self._procfs}/{pid}/task")
            except OSError:
                continue
            for tid in tids:
                try:
                    path = f"{self._procfs}/{pid}/task/{tid}/children"
                    with open(path, encoding="ascii") as fh:
                        kids = [int(k) for k in fh.read().split()]
                except (OSError, ValueError):
                    continue
                out += kids
                todo += kids
        return out

    def _tree_busy_s(self) -> float:
        """CPU seconds of this process, its reaped children and its live descendants."""
        if self._proc is None:  # Linux: os.times() and /proc/<pid>/stat, no psutil
            t = os.times()
            busy = t.user + t.system + t.children_user + t.children_system
            for pid in self._descendants():
                try:
                    busy += _procfs_busy_s(self._procfs, pid)
                except (OSError, ValueError, IndexError):
                    continue  # gone: its time is in its parent's children_* once reaped
            self._tree_max = max(self._tree_max, busy)
            return self._tree_max
        t = self._proc.cpu_times()
        busy = t.user + t.system + getattr(t, "children_user", 0.0)
        busy += getattr(t, "children_system", 0.0)
        for pid in self._descendants():
            kid = self._kids.get(pid)
            try:
                if kid is None:
                    kid = self._kids[pid] = self._psutil.Process(pid)
                k = kid.cpu_times()
            except self._psutil.Error:  # gone: its time is in its parent's children_* once reaped
                self._kids.pop(pid, None)
                continue
            busy += k.user + k.system + getattr(k, "children_user", 0.0)
            busy += getattr(k, "children_system", 0.0)
        if len(self._kids) > 4096:
            self._kids.clear()
        # a child reaped between two reads moves its time to children_*: never go backwards
        self._tree_max = max(self._tree_max, busy)
        return self._tree_max

    def _sample(self) -> tuple[float, float]:
        """(busy, available) CPU seconds; for a process tree, available = wall s x usable CPUs."""
        if self._mode == "process":
            return self._tree_busy_s(), time.monotonic() * self._usable
        if self._cpu_ids is None:
            return _busy_total_s(self._psutil.cpu_times())
        per = self._psutil.cpu_times(percpu=True)
        pairs = [_busy_total_s(per[i]) for i in self._cpu_ids]
        return sum(p[0] for p in pairs), sum(p[1] for p in pairs)

    def _utilisation(self) -> float:
        now_s = time.monotonic()
        if now_s - self._last_s >= _MIN_INTERVAL_S:
            busy, total = self._sample()
            if total > self._last[1]:
                u = (busy - self._last[0]) / (total - self._last[1])
                self._last_util = min(1.0, max(0.0, u))
                self._last, self._last_s = (busy, total), now_s
        if self._last_util is None:
            raise RuntimeError(
                "no CPU time has elapsed since probe() (psutil CPU times advance "
                "in 1/USER_HZ ticks, usually 10 ms)"
            )
        return self._last_util

    def _read_cpu(self) -> float:
        u = self._utilisation()
        if self._mode == "system":
            return self._capacity_w * (IDLE_FRACTION + (1.0 - IDLE_FRACTION) * u)
        return self._capacity_w * u

    def _read_dram(self) -> float:
        if self._mode == "system":
            return self._dram_w
        return self._proc.memory_info().rss / _GIB * self._w_per_gib

    def read(self) -> ReadResult:
        """Watts for each channel of the last probe; ``nan`` and a message where psutil fails."""
        values: list[float] = []
        errors: dict[int, str] = {}
        for i, reader in enumerate(self._readers):
            try:
                values.append(reader())
            except Exception as err:  # a psutil hiccup must never stop a measurement
                values.append(math.nan)
                errors[i] = f"{self._channels[i].name}: {type(err).__name__}: {err}"
        return values, errors or None

    def close(self) -> None:
        """Drop the psutil handles; :meth:`probe` may be called again."""
        self._proc = None
        self._channels, self._readers = (), ()
