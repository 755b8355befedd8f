"""EnergyMeter: the measurement window as a first-class object, with named phases inside it.

::

    with EnergyMeter() as meter:
        with meter.phase("train"):
            train()
    print(meter.report.summary())

A meter owns one :class:`~bertwatt.sampler.Sampler`. Window edges (start, stop, phase begin/end,
anonymous marks) optionally synchronise CUDA, then read every non-blocking backend exactly at the
edge; power channels and blocking backends are resolved from their timelines. The meter is safe to
use from several threads, can be started again after it stopped, and produces its report even when
the measured block raises.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
import uuid
import warnings
import weakref
from collections.abc import Iterator, Mapping, Sequence
from os import PathLike
from typing import TYPE_CHECKING, Any

# The modules a default window uses (stdlib only: no vendor library, psutil or pynvml) are
# imported with the meter, so that no window's start pays for importing them.
import bertwatt.backends.estimate
import bertwatt.backends.nvml
import bertwatt.backends.rapl
import bertwatt.distributed.binding
import bertwatt.distributed.ranks  # noqa: F401
from bertwatt.backends.base import Backend, Channel
from bertwatt.clock import Clock, SystemClock
from bertwatt.config import MeterConfig, validate_pue, zone_from_env
from bertwatt.errors import ConfigError, MeasurementWarning
from bertwatt.host import host_facts, node_identity
from bertwatt.probing import probe_backends
from bertwatt.report.checks import emit_snapshot_warnings, emit_warnings
from bertwatt.sampler import Sampler, mark_hung, read_timeout_note
from bertwatt.window import Phase, Window, WindowEnergy, total_of

if TYPE_CHECKING:
    from bertwatt.report.models import EnergyReport
    from bertwatt.report.snapshot import WindowSnapshot

__all__ = ["EnergyMeter", "WindowEnergy", "emit_warnings"]

logger = logging.getLogger(__name__)

#: How long stop() waits past ``slow_read_timeout_s`` for backends' close() to return.
_CLOSE_GRACE_S = 0.5

#: The first checkpoint is written this soon after start (then every checkpoint_interval_s), so
#: a run killed early still leaves a report.
FIRST_CHECKPOINT_S = 2.0

_running: weakref.WeakSet[EnergyMeter] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """In a fork() child, give running meters fresh locks (a lock held by a thread that does not
    exist in the child would never be released); the window's pid tells them they are a copy."""
    for meter in list(_running):
        meter._lock = threading.RLock()
        w = meter._window
        if w is not None:
            for g in w.groups:
                for name in ("lock", "read_lock"):
                    if hasattr(g, name):
                        setattr(g, name, threading.Lock())
        meter._checkpointer = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _check_backends(backends: Any, what: str) -> None:
    """Refuse anything but a sequence of backend objects, each with a usable name."""
    if isinstance(backends, str | bytes) or not isinstance(backends, Sequence):
        raise ConfigError(f"{what} must be a list of backend objects, got {backends!r}")
    for b in backends:
        if not isinstance(b, Backend):
            raise ConfigError(
                f"{b!r} is not a backend: it needs name, blocking, probe(), read() and "
                "close() (see bertwatt.backends.Backend)"
            )
        if not isinstance(b.name, str) or not b.name.strip():
            raise ConfigError(f"a backend's name must be a non-empty string, got {b.name!r}")


class EnergyMeter:
    """Measures energy of the code run between :meth:`start` and :meth:`stop`.

    Args:
        backends: exactly these backends. ``None`` (default) auto-detects what this machine can
            measure (RAPL, NVML) and adds the labelled estimate only for what no sensor covers.
        interval_s: sampling period (default 0.1 s).
        output: JSON report path; checkpointed atomically while running, replaced at stop.
        checkpoint_interval_s: period of those checkpoints (the first is written
            ``FIRST_CHECKPOINT_S`` = 2 s after start, or sooner if the period is shorter).
        baseline_s: idle seconds measured before the window, for energy above idle.
        sync_cuda: synchronise CUDA at edges (None: when torch is imported and CUDA initialised).
        edge_reads: read non-blocking backends exactly at each window edge.
        slow_read_timeout_s: how long stop() waits for blocking backends' last sample;
            stop() returns within this plus one second whatever the backends do.
        probe_timeout_s: how long start() waits for every backend's probe() and first read()
            together (default 10 s); one that has not answered is reported, not waited for.
        edge_timeout_s: how long a window edge waits for a non-blocking backend's read
            (default 0.25 s); one that misses it is resolved from its timeline (and reported).
        timeline_points: stored points per channel before thinning.
        carbon: a :class:`~bertwatt.carbon.CarbonIntensity` or a zone name (checked here, so an
            unknown zone fails at construction, not at the end of a run) for emissions; None
            uses ``BERTWATT_ZONE`` if set, else emissions are not computed (and the report says so).
        pue: power usage effectiveness applied to get facility energy (default 1.0, stated).
        clock: time source (tests pass :class:`~bertwatt.testing.FakeClock`).
        max_power_w: plausibility bounds in W by channel name or scope (see
            :attr:`bertwatt.config.MeterConfig.max_power_w`); readings implying more are rejected.
        run: what is being run (fields of :class:`bertwatt.report.RunInfo`, e.g. ``command``,
            ``cwd``), put on every checkpoint and the final report; also settable as ``.run``.
        distributed: ``"auto"`` (default), ``True`` or ``False``: in a job of several processes
            (torchrun, accelerate, DeepSpeed, Slurm, MPI), each rank measures its own GPU and the
            node sensors, writes ``<output_dir>/node-<id>-rank<R>.json``, and with ``True`` rank 0
            gathers the job report at :meth:`stop` (:attr:`job_report`). ``False``: this
            process alone. See docs/distributed.md.
        output_dir: directory of the per-rank files and the job report (default: the directory
            of ``output``).
        gather_timeout_s: how long rank 0 waits for the other ranks' reports at :meth:`stop`.
        extra_backends: backends added to the others, auto-detected or not: e.g. a wall meter
            (``[WallPlugBackend.from_source("shelly+http://192.168.1.50")]``) next to whatever
            this machine detects. With ``backends=None`` the CPU estimate is still added only when
            no sensor measures the CPU (a wall meter does not count as one).

    A ``fork()`` inside a metered block leaves the child a copy of the meter that never writes
    ``output`` (only the process that started the meter does); its report stays in memory.
    """

    def __init__(
        self,
        backends: Sequence[Backend] | None = None,
        *,
        interval_s: float = 0.1,
        output: str | PathLike[str] | None = None,
        checkpoint_interval_s: float = 60.0,
        baseline_s: float = 0.0,
        sync_cuda: bool | None = None,
        edge_reads: bool = True,
        slow_read_timeout_s: float = 5.0,
        probe_timeout_s: float = 10.0,
        edge_timeout_s: float = 0.25,
        timeline_points: int = 8192,
        carbon: Any = None,
        pue: float | None = None,
        clock: Clock | None = None,
        max_power_w: Mapping[str, float] | None = None,
        run: Mapping[str, object] | None = None,
        distributed: bool | str = "auto",
        output_dir: str | PathLike[str] | None = None,
        gather_timeout_s: float = 300.0,
        extra_backends: Sequence[Backend] = (),
    ) -> None:
        from bertwatt.distributed.binding import MeterDistribution

        self._dist = MeterDistribution(distributed, output_dir, gather_timeout_s)
        self.config = MeterConfig(
            interval_s=interval_s,
            output=output,  # type: ignore[arg-type]
            checkpoint_interval_s=checkpoint_interval_s,
            baseline_s=baseline_s,
            sync_cuda=sync_cuda,
            edge_reads=edge_reads,
            slow_read_timeout_s=slow_read_timeout_s,
            probe_timeout_s=probe_timeout_s,
            edge_timeout_s=edge_timeout_s,
            timeline_points=timeline_points,
            max_power_w=max_power_w,
        )
        if run is not None and not isinstance(run, Mapping):
            raise ConfigError(f"run must be a mapping of RunInfo fields, got {run!r}")
        self.run: Mapping[str, object] | None = dict(run) if run is not None else None
        if backends is not None:
            _check_backends(backends, "backends")
        _check_backends(extra_backends, "extra_backends")
        both = [*(backends or ()), *extra_backends]
        if len(set(map(id, both))) != len(both):
            names = [b.name for b in both]
            raise ConfigError(f"the same backend object is listed twice in {names}")
        if clock is not None and not isinstance(clock, Clock):
            raise ConfigError(f"clock must provide monotonic_ns(), time_ns() and wait(): {clock!r}")
        if pue is not None:
            pue = validate_pue(pue)
        if carbon is not None:
            from bertwatt.carbon.intensity import as_intensity

            carbon = as_intensity(carbon)
        self._explicit = list(backends) if backends is not None else None
        self._extra = list(extra_backends)
        self.carbon = carbon
        self.pue = pue
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._lock = threading.RLock()
        self._window: Window | None = None
        self._report: EnergyReport | None = None
        self._final: WindowSnapshot | None = None  # the last window, until its report is built
        self._checkpointer: threading.Thread | None = None
        self._checkpoint_stop = threading.Event()
        self._prefetched = False

    # ------------------------------------------------------------------ lifecycle
    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        w = self._window
        return w is not None and not w.stopped

    def _resolve_backends(self) -> list[Backend]:
        chosen = self._dist.backends(self._explicit)  # a rank's own GPU; plugs on one rank
        extra = self._dist.backends(list(self._extra)) or []  # network meters on one rank too
        if chosen is not None:
            return [*chosen, *extra]
        from bertwatt.backends import default_backends

        return [*default_backends(), *extra]

    def start(self) -> EnergyMeter:
        """Probe the backends, start sampling and open the window. Returns the meter."""
        with self._lock:
            if self.running:
                raise ConfigError("this EnergyMeter is already running; stop() it first")
            cfg = self.config
            deadline = time.monotonic() + cfg.probe_timeout_s
            groups, unavailable = probe_backends(
                self._resolve_backends(),
                cfg,
                estimate_uncovered_cpu=self._explicit is None,
                inline=self.clock.manual,
            )
            timelines = tuple(tl for g in groups for tl in g.timelines)
            sampler = Sampler(groups, self.clock, edge_timeout_s=cfg.edge_timeout_s)
            try:
                window = Window(
                    config=cfg,
                    clock=self.clock,
                    groups=tuple(groups),
                    timelines=timelines,
                    unavailable=unavailable,
                    sampler=sampler,
                    start_wall_ns=self.clock.time_ns(),
                    run_id=uuid.uuid4().hex,
                    node_id=node_identity(),
                )
                self._window = window
                _running.add(self)
                self._prefetch_carbon()
                self._sync_cuda()
                # The first edge is marked before the sampler starts: each backend's first read
                # (which start() waits for) is then this edge's read, taken right at the edge.
                first = window.new_mark(self.clock.monotonic_ns())
                sampler.start(first_read_timeout_s=deadline - time.monotonic())
                window.fold()
                if cfg.baseline_s > 0:
                    b0 = first
                    self.clock.wait(threading.Event(), cfg.baseline_s)
                    b1 = self._mark_locked(window)
                    window.baseline_marks = (b0, b1)
                    window.start_mark = b1
                    window.start_wall_ns = self.clock.time_ns()
                else:
                    window.start_mark = first
                self._dist.begin(cfg.output)
                if cfg.output is not None or self._dist.path is not None:
                    self._start_checkpointer()
            except BaseException:  # e.g. Ctrl-C during the baseline: stop threads, release backends
                sampler.stop(time.monotonic(), 0.0)
                _running.discard(self)
                self._window = None
                raise
            return self

    def stop(self, *, warn: bool = True) -> EnergyReport:
        """Close the window, stop sampling, build and return the report (also ``.report``).

        With ``warn`` (default), emits one :class:`~bertwatt.errors.EstimateWarning` when a
        counted figure is estimated and one :class:`~bertwatt.errors.MeasurementWarning` when a
        counted channel covered less than 95 % of the window or nothing was measured; the
        details are in the report either way. Integrations that report on their own pass False.

        Leaving a ``with`` block stops the meter without building the report: it is built (and
        the pydantic models loaded) when :attr:`report` is first read, unless ``output=`` (or a
        distributed run) needs it at once; the warnings come at the block's end either way.
        """
        report = self._stop(stacklevel=3, warn=warn, build=True)
        assert report is not None
        return report

    def _stop(
        self, *, stacklevel: int, warn: bool = True, build: bool = False
    ) -> EnergyReport | None:
        with self._lock:
            w = self._window
            if w is None or w.stopped:
                raise ConfigError("this EnergyMeter is not running; start() it first")
            # Every wait below ends by this deadline; hung reads and closes stay on their threads.
            deadline = time.monotonic() + w.config.slow_read_timeout_s
            w.sampler.edge_deadline_ns = self.clock.monotonic_ns() + int(
                w.config.slow_read_timeout_s * 1e9
            )
            try:
                self._sync_cuda()
                for name, ph in w.phases.items():
                    if ph.open_mark is not None:
                        end = self._mark_locked(w, read=False)
                        w.close_interval(ph, ph.open_mark, end)
                        ph.open_mark = ph.last_end = None
                        ph.owners.clear()
                        w.warnings.append(f"phase {name!r} was still open at stop(); closed there")
                self._stop_sampler(w, deadline)
            except BaseException:  # never leave sampler threads running behind an error
                w.sampler.stop(deadline, _CLOSE_GRACE_S)
                raise
            w.fold()
            w.stopped = True
            _running.discard(self)
            self._report = None
            self._final = self._snapshot(w, final=True)
        self._stop_checkpointer()
        forked = os.getpid() != w.pid
        writes = w.config.output is not None or self._dist.active or self._dist.path is not None
        if not (build or writes):  # built when .report is first read
            if warn:
                emit_snapshot_warnings(self._final, stacklevel)
            return None
        report = self._final_report()
        if forked and w.config.output is not None:
            report.warnings.append(
                f"this process (pid {os.getpid()}) is a fork() child of the one that started the "
                f"meter (pid {w.pid}): its report was not written to {w.config.output}"
            )
        elif w.config.output is not None and self._writes_output():
            from bertwatt.errors import ReportError
            from bertwatt.report.io import write_report

            try:
                write_report(report, w.config.output)
            except ReportError as err:  # keep the report in memory; say so where it is seen
                report.warnings.append(f"the final report was not written: {err}")
                warnings.warn(
                    f"bertwatt: the final report was not written: {err}; it is still in "
                    "meter.report",
                    MeasurementWarning,
                    stacklevel=stacklevel,
                )
        if not forked:
            self._dist.finish(report)  # rank file first, then the gather (never raises)
        if warn:
            emit_warnings(report, stacklevel)
        return report

    def _final_report(self) -> EnergyReport:
        """The last window's report, built from its final snapshot on first use."""
        with self._lock:
            if self._report is None:
                snap = self._final
                if snap is None:
                    raise ConfigError("no report yet: the meter has not been stopped")
                self._report = self._dist.annotate(self._from_snapshot(snap, final=True))
            return self._report

    def _stop_sampler(self, w: Window, deadline: float) -> None:
        """Take the end edge, wait for blocking backends, stop the sampler threads (bounded)."""
        timeout_s = w.config.slow_read_timeout_s
        try:
            w.end_mark = self._mark_locked(w)
            w.sampler.wait_for_blocking(w.mark_t[w.end_mark], deadline)
        finally:
            hung = w.sampler.stop(deadline, _CLOSE_GRACE_S)
        now = self.clock.monotonic_ns()
        for g in hung:
            w.warnings.append(read_timeout_note(g, timeout_s))
            with g.lock:
                mark_hung(g, now, timeout_s)
        w.warnings.extend(w.sampler.notes)
        for g in w.groups:
            with g.lock:
                for tl in g.timelines:
                    tl.finish()

    def __enter__(self) -> EnergyMeter:
        return self.start()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not self.running:
            return
        if exc is None:
            self._stop(stacklevel=3)
            return
        try:
            self._stop(stacklevel=3)
        except Exception:  # never mask the user's exception with ours
            logger.exception("bertwatt: stopping the meter after an exception failed")

    @property
    def job_report(self) -> EnergyReport | None:
        """The job report of a distributed run on rank 0 (see ``distributed``); None elsewhere,
        before :meth:`stop`, or when nothing was gathered."""
        return self._dist.job_report

    def _writes_output(self) -> bool:
        # several ranks must not write one ``output``: rank 0 keeps it, the others their files
        return not self._dist.active or self._dist.info.rank == 0

    @property
    def report(self) -> EnergyReport:
        """The report of the last completed window (built on first read after a ``with``)."""
        if self._report is None and self._final is None:
            raise ConfigError("no report yet: the meter has not been stopped")
        return self._final_report()

    # ------------------------------------------------------------------ marks and phases
    def _sync_cuda(self) -> None:
        mode = self.config.sync_cuda
        if mode is False:
            return
        torch: Any = sys.modules.get("torch")
        if torch is None:
            if not mode:
                return
            import torch  # explicit sync_cuda=True
        try:
            if (mode or torch.cuda.is_initialized()) and torch.cuda.is_available():
                torch.cuda.synchronize()
        except Exception as err:  # a CUDA error must not end the measurement
            logger.debug("CUDA synchronize at a window edge failed: %s", err)

    def _mark_locked(self, w: Window, *, read: bool = True) -> int:
        mark_id = w.new_mark(self.clock.monotonic_ns())
        if read and w.config.edge_reads:
            w.sampler.edge_read()
        w.fold()
        w.prune()
        return mark_id

    def _require(self) -> Window:
        w = self._window
        if w is None or w.stopped:
            raise ConfigError("the meter is not running: use it inside `with EnergyMeter():`")
        return w

    def mark(self) -> int:
        """Record a window edge now and return its id, for :meth:`energy_between`.

        On long runs old marks are dropped to bound memory: the first 1024 and the most recent
        16384 marks of a window are always kept, and every mark an open phase still uses.
        """
        with self._lock:
            w = self._require()
            self._sync_cuda()
            return self._mark_locked(w)

    def energy_between(self, start: int, end: int) -> WindowEnergy:
        """Energy between two marks of the current (or last) window, as far as known now."""
        w = self._window
        if w is None:
            raise ConfigError("the meter has not been started")
        with self._lock:
            t_start, t_end = w.t_of(start), w.t_of(end)
        if end < start:
            raise ConfigError(f"end mark {end} comes before start mark {start}")
        values: dict[Channel, float] = {}
        channels: dict[str, float | None] = {}
        for g in w.groups:
            with g.lock:
                for tl in g.timelines:
                    a, b = tl.marks.get(start), tl.marks.get(end)
                    if a is None or b is None or not tl.samples:
                        channels[tl.channel.name] = None
                    else:
                        channels[tl.channel.name] = b - a
                        values[tl.channel] = b - a
        total, _ = total_of(values)
        return WindowEnergy(
            duration_s=(t_end - t_start) / 1e9,
            energy_j=total,
            channels=channels,
            complete=all(v is not None for v in channels.values()),
        )

    @staticmethod
    def _check_mark(w: Window, at: object, *, after: int | None = None) -> int:
        try:
            w.t_of(at)
        except ConfigError as err:
            raise ConfigError(f"at={at!r}: {err}") from None
        assert isinstance(at, int)
        if at < w.start_mark:
            raise ConfigError(f"mark {at} comes before the window start")
        if after is not None and at < after:
            raise ConfigError(f"end mark {at} comes before the phase's begin mark {after}")
        return at

    def begin(self, name: str, *, at: int | None = None) -> None:
        """Open the named phase ``name`` (phases may nest and overlap; names are reusable).

        Several threads may open the same name at once: the phase is then *shared*. It is open
        from the first thread's begin to the last thread's end, and that span is one interval of
        the phase (its energy counted once, never once per thread); each thread's :meth:`end`
        returns the energy of its own occurrence. Opening a name twice from one thread without
        ending it is a ConfigError.

        Args:
            name: the phase name.
            at: an existing mark (from :meth:`mark`) to open the phase at, so that several
                phases and step records can share one edge exactly; default: a new edge now.
        """
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"a phase name must be a non-empty string, got {name!r}")
        tid = threading.get_ident()
        with self._lock:
            w = self._require()
            ph = w.phases.get(name)
            if ph is not None and ph.owners.get(tid):
                raise ConfigError(
                    f"phase {name!r} is already open in this thread; end({name!r}) it first"
                )
            if at is not None:
                mark = self._check_mark(w, at)
            else:
                self._sync_cuda()
                mark = self._mark_locked(w)
            if ph is None:
                ph = w.phases[name] = Phase()
            ph.owners[tid] = [mark]
            if ph.open_mark is None or mark < ph.open_mark:  # at= may name an earlier edge
                ph.open_mark = mark

    def end(self, name: str, *, at: int | None = None) -> WindowEnergy:
        """Close the named phase and return the energy of this occurrence, as known now.

        A thread closes its own occurrence of a shared phase; a thread that did not open it
        closes the oldest open occurrence. The phase's interval ends with the last occurrence.

        Args:
            name: the phase name.
            at: an existing mark to close the phase at (see :meth:`begin`); default: now.
        """
        tid = threading.get_ident()
        with self._lock:
            w = self._require()
            ph = w.phases.get(name)
            if ph is None or ph.open_mark is None or not ph.owners:
                raise ConfigError(f"phase {name!r} is not open")
            owner = tid if ph.owners.get(tid) else next(iter(ph.owners))
            start = ph.owners[owner][-1]
            if at is not None:
                end = self._check_mark(w, at, after=start)
            else:
                self._sync_cuda()
                end = self._mark_locked(w)
            del ph.owners[owner]
            if ph.last_end is None or end > ph.last_end:
                ph.last_end = end
            if not ph.owners:
                w.close_interval(ph, ph.open_mark, ph.last_end)
                ph.open_mark = ph.last_end = None
        return self.energy_between(start, end)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Context manager form of :meth:`begin` / :meth:`end`; ends the phase on exceptions too."""
        self.begin(name)
        try:
            yield
        finally:
            if self.running:
                self.end(name)

    # ------------------------------------------------------------------ live figures
    def snapshot(self) -> WindowEnergy:
        """Energy from the window start to each channel's latest sample (cheap: no edge read)."""
        w = self._window
        if w is None:
            raise ConfigError("the meter has not been started")
        values: dict[Channel, float] = {}
        channels: dict[str, float | None] = {}
        with self._lock:
            t_start = w.mark_t.get(w.start_mark)
            t_stop = w.mark_t.get(w.end_mark) if w.end_mark is not None else None
        for g in w.groups:
            with g.lock:
                for tl in g.timelines:
                    a = tl.marks.get(w.start_mark)
                    if a is None or not tl.samples:
                        channels[tl.channel.name] = None
                        continue
                    channels[tl.channel.name] = tl.energy_j - a
                    values[tl.channel] = tl.energy_j - a
        total, _ = total_of(values)
        start = t_start if t_start is not None else self.clock.monotonic_ns()
        end = t_stop if t_stop is not None else self.clock.monotonic_ns()
        return WindowEnergy(
            duration_s=(end - start) / 1e9,
            energy_j=total,
            channels=channels,
            complete=all(v is not None for v in channels.values()),
        )

    def partial_report(self) -> EnergyReport:
        """A report of the window so far, without stopping it."""
        return self._build(final=False)

    # ------------------------------------------------------------------ reports
    def _prefetch_carbon(self) -> None:
        prefetch = getattr(self.carbon, "prefetch", None)
        if callable(prefetch):
            try:
                prefetch()
            except Exception as err:
                logger.debug("carbon prefetch failed: %s", err)

    def _build(self, *, final: bool) -> EnergyReport:
        w = self._window
        if w is None:
            raise ConfigError("the meter has not been started")
        return self._from_snapshot(self._snapshot(w, final=final), final=final)

    def _snapshot(self, w: Window, *, final: bool) -> WindowSnapshot:
        host = dict(host_facts())
        host["pid"] = os.getpid()
        with self._lock:  # phases and marks change under this lock; copy them consistently
            w.fold()
            return w.snapshot(
                final=final, now_ns=self.clock.monotonic_ns(), host=host, run=self.run
            )

    def _from_snapshot(self, snap: WindowSnapshot, *, final: bool) -> EnergyReport:
        from bertwatt.report.build import build_report

        report = build_report(snap)
        if final and self.carbon is None and zone_from_env() is None:
            from bertwatt.carbon.uncomputed import NO_ZONE_NOTE, uncomputed

            report = uncomputed(report, NO_ZONE_NOTE)  # the carbon code is not loaded for this
        elif final:
            from bertwatt.carbon.intensity import apply_carbon

            report = apply_carbon(report, self.carbon, pue=self.pue)
        return report

    def _start_checkpointer(self) -> None:
        self._checkpoint_stop.clear()
        if self.clock.manual:
            return
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="bertwatt-checkpoint", daemon=True
        )
        self._checkpointer.start()

    def _stop_checkpointer(self) -> None:
        self._checkpoint_stop.set()
        t = self._checkpointer
        if t is not None:
            t.join()
            self._checkpointer = None

    def checkpoint(self) -> None:
        """Write the partial report to ``output`` now (atomic replace). No-op without output."""
        w = self._window
        if w is None or (w.config.output is None and self._dist.path is None):
            return
        if os.getpid() != w.pid:
            return  # a fork() child never writes the parent's file
        from bertwatt.report.io import write_report

        partial = self._build(final=False)
        self._dist.write(partial)
        if w.config.output is not None and self._writes_output():
            write_report(self._dist.annotate(partial), w.config.output)

    def _checkpoint_loop(self) -> None:
        period = self.config.checkpoint_interval_s
        wait = min(FIRST_CHECKPOINT_S, period)
        while not self._checkpoint_stop.wait(wait):
            wait = period
            try:
                self.checkpoint()
            except Exception as err:  # a full disk must not end training
                logger.warning("bertwatt: writing the checkpoint report failed: %s", err)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<EnergyMeter {state} interval_s={self.config.interval_s:g}>"
