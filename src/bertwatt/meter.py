"""EnergyMeter: the measurement window as a first-class object, with named phases inside it.

::

    with EnergyMeter() as meter:
        with meter.phase("train"):
            train()
    print(meter.report.summary())

A meter owns one :class:`~bertwatt.sampler.Sampler`. Window edges (start, stop, phase begin/end,
anonymous marks) optionally synchronise CUDA, then read every fast counter backend exactly at the
edge; power channels and blocking backends are resolved from their timelines. The meter is safe to
use from several threads, can be started again after it stopped, and produces its report even when
the measured block raises.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from os import PathLike
from typing import TYPE_CHECKING, Any

from bertwatt.backends.base import Backend, Channel
from bertwatt.clock import Clock, SystemClock
from bertwatt.config import MeterConfig, validate_pue
from bertwatt.errors import ConfigError, MeasurementWarning
from bertwatt.probing import probe_backends
from bertwatt.report.checks import emit_warnings
from bertwatt.sampler import Sampler
from bertwatt.window import Phase, Window, WindowEnergy, total_of

if TYPE_CHECKING:
    from bertwatt.report.models import EnergyReport

__all__ = ["EnergyMeter", "WindowEnergy", "emit_warnings"]

logger = logging.getLogger(__name__)


class EnergyMeter:
    """Measures energy of the code run between :meth:`start` and :meth:`stop`.

    Args:
        backends: exactly these backends. ``None`` (default) auto-detects what this machine can
            measure (RAPL, NVML) and adds the labelled estimate only for what no sensor covers.
        interval_s: sampling period (default 0.1 s).
        output: JSON report path; checkpointed atomically while running, replaced at stop.
        checkpoint_interval_s: period of those checkpoints.
        baseline_s: idle seconds measured before the window, for energy above idle.
        sync_cuda: synchronise CUDA at edges (None: when torch is imported and CUDA initialised).
        edge_reads: read fast counter backends exactly at each window edge.
        slow_read_timeout_s: how long stop() waits for blocking backends' last sample.
        timeline_points: stored points per channel before thinning.
        carbon: a :class:`~bertwatt.carbon.CarbonIntensity` or a zone name (checked here, so an
            unknown zone fails at construction, not at the end of a run) for emissions; None
            uses ``BERTWATT_ZONE`` if set, else emissions are not computed (and the report says so).
        pue: power usage effectiveness applied to get facility energy (default 1.0, stated).
        clock: time source (tests pass :class:`~bertwatt.testing.FakeClock`).
        distributed: ``"auto"`` (default), ``True`` or ``False``: in a job of several processes
            (torchrun, accelerate, DeepSpeed, Slurm, MPI), each rank measures its own GPU and the
            node sensors, writes ``<output_dir>/node-<id>-rank<R>.json``, and with ``True`` rank 0
            gathers the job report at :meth:`stop` (:attr:`job_report`). ``False``: this
            process alone. See docs/distributed.md.
        output_dir: directory of the per-rank files and the job report (default: the directory
            of ``output``).
        gather_timeout_s: how long rank 0 waits for the other ranks' reports at :meth:`stop`.
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
        timeline_points: int = 8192,
        carbon: Any = None,
        pue: float | None = None,
        clock: Clock | None = None,
        distributed: bool | str = "auto",
        output_dir: str | PathLike[str] | None = None,
        gather_timeout_s: float = 300.0,
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
            timeline_points=timeline_points,
        )
        if backends is not None:
            if isinstance(backends, str | bytes) or not isinstance(backends, Sequence):
                raise ConfigError(f"backends must be a list of backend objects, got {backends!r}")
            for b in backends:
                if not isinstance(b, Backend):
                    raise ConfigError(
                        f"{b!r} is not a backend: it needs name, blocking, probe(), read() and "
                        "close() (see bertwatt.backends.Backend)"
                    )
            names = [b.name for b in backends]
            if len(set(map(id, backends))) != len(backends):
                raise ConfigError(f"the same backend object is listed twice in {names}")
        if clock is not None and not isinstance(clock, Clock):
            raise ConfigError(f"clock must provide monotonic_ns(), time_ns() and wait(): {clock!r}")
        if pue is not None:
            pue = validate_pue(pue)
        if carbon is not None:
            from bertwatt.carbon.intensity import as_intensity

            carbon = as_intensity(carbon)
        self._explicit = list(backends) if backends is not None else None
        self.carbon = carbon
        self.pue = pue
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._lock = threading.RLock()
        self._window: Window | None = None
        self._report: EnergyReport | None = None
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
        if chosen is not None:
            return list(chosen)
        from bertwatt.backends import default_backends

        return default_backends()

    def start(self) -> EnergyMeter:
        """Probe the backends, start sampling and open the window. Returns the meter."""
        with self._lock:
            if self.running:
                raise ConfigError("this EnergyMeter is already running; stop() it first")
            cfg = self.config
            groups, unavailable = probe_backends(
                self._resolve_backends(), cfg, estimate_uncovered_cpu=self._explicit is None
            )
            timelines = tuple(tl for g in groups for tl in g.timelines)
            sampler = Sampler(groups, self.clock)
            window = Window(
                config=cfg,
                clock=self.clock,
                groups=tuple(groups),
                timelines=timelines,
                unavailable=unavailable,
                sampler=sampler,
                start_wall_ns=self.clock.time_ns(),
            )
            self._window = window
            self._prefetch_carbon()
            self._sync_cuda()
            sampler.start()
            if cfg.baseline_s > 0:
                b0 = self._mark_locked(window, read=False)
                self.clock.wait(threading.Event(), cfg.baseline_s)
                b1 = self._mark_locked(window)
                window.baseline_marks = (b0, b1)
                window.start_mark = b1
                window.start_wall_ns = self.clock.time_ns()
            else:
                window.start_mark = self._mark_locked(window, read=False)
            self._dist.begin(cfg.output)
            if cfg.output is not None or self._dist.path is not None:
                self._start_checkpointer()
            return self

    def stop(self, *, warn: bool = True) -> EnergyReport:
        """Close the window, stop sampling, build and return the report (also ``.report``).

        With ``warn`` (default), emits one :class:`~bertwatt.errors.EstimateWarning` when a
        counted figure is estimated and one :class:`~bertwatt.errors.MeasurementWarning` when a
        counted channel covered less than 95 % of the window or nothing was measured; the
        details are in the report either way. Integrations that report on their own pass False.
        """
        return self._stop(stacklevel=3, warn=warn)

    def _stop(self, *, stacklevel: int, warn: bool = True) -> EnergyReport:
        with self._lock:
            w = self._window
            if w is None or w.stopped:
                raise ConfigError("this EnergyMeter is not running; start() it first")
            self._sync_cuda()
            for name, ph in w.phases.items():
                if ph.open_mark is not None:
                    end = self._mark_locked(w, read=False)
                    ph.intervals.append((ph.open_mark, end))
                    ph.open_mark = None
                    w.warnings.append(f"phase {name!r} was still open at stop(); closed there")
            w.end_mark = self._mark_locked(w)
            w.sampler.wait_for_slow(w.marks[w.end_mark], w.config.slow_read_timeout_s)
            hung = w.sampler.stop(w.config.slow_read_timeout_s)
            for name in hung:
                w.warnings.append(
                    f"backend {name!r} did not answer within {w.config.slow_read_timeout_s:g} s "
                    "of stop(); its last interval is not covered"
                )
            for g in w.groups:
                with g.lock:
                    for tl in g.timelines:
                        tl.finish()
                if g.backend.name not in hung:
                    try:
                        g.backend.close()
                    except Exception as err:
                        logger.debug("closing backend %s failed: %s", g.backend.name, err)
            w.stopped = True
        self._stop_checkpointer()
        report = self._dist.annotate(self._build(final=True))
        self._report = report
        if w.config.output is not None and self._writes_output():
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
        self._dist.finish(report)  # rank file first, then the gather (never raises)
        if warn:
            emit_warnings(report, stacklevel)
        return report

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
        """The report of the last completed window."""
        if self._report is None:
            raise ConfigError("no report yet: the meter has not been stopped")
        return self._report

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
        mark_id = len(w.marks)
        t = self.clock.monotonic_ns()
        w.marks.append(t)
        for g in w.groups:
            with g.lock:
                for tl in g.timelines:
                    tl.mark(mark_id, t)
        if read and w.config.edge_reads:
            w.sampler.edge_read()
        return mark_id

    def _require(self) -> Window:
        w = self._window
        if w is None or w.stopped:
            raise ConfigError("the meter is not running: use it inside `with EnergyMeter():`")
        return w

    def mark(self) -> int:
        """Record a window edge now and return its id, for :meth:`energy_between`."""
        with self._lock:
            w = self._require()
            self._sync_cuda()
            return self._mark_locked(w)

    def energy_between(self, start: int, end: int) -> WindowEnergy:
        """Energy between two marks of the current (or last) window, as far as known now."""
        w = self._window
        if w is None:
            raise ConfigError("the meter has not been started")
        n = len(w.marks)
        for m in (start, end):
            if isinstance(m, bool) or not isinstance(m, int) or not 0 <= m < n:
                raise ConfigError(f"{m!r} is not a mark of this window (0..{n - 1})")
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
            duration_s=(w.marks[end] - w.marks[start]) / 1e9,
            energy_j=total,
            channels=channels,
            complete=all(v is not None for v in channels.values()),
        )

    @staticmethod
    def _check_mark(w: Window, at: object, *, after: int | None = None) -> int:
        n = len(w.marks)
        if isinstance(at, bool) or not isinstance(at, int) or not 0 <= at < n:
            raise ConfigError(f"at={at!r} is not a mark of this window (0..{n - 1})")
        if at < w.start_mark:
            raise ConfigError(f"mark {at} comes before the window start")
        if after is not None and at < after:
            raise ConfigError(f"end mark {at} comes before the phase's begin mark {after}")
        return at

    def begin(self, name: str, *, at: int | None = None) -> None:
        """Open the named phase ``name`` (phases may nest and overlap; names are reusable).

        Args:
            name: the phase name.
            at: an existing mark (from :meth:`mark`) to open the phase at, so that several
                phases and step records can share one edge exactly; default: a new edge now.
        """
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"a phase name must be a non-empty string, got {name!r}")
        with self._lock:
            w = self._require()
            ph = w.phases.setdefault(name, Phase())
            if ph.open_mark is not None:
                raise ConfigError(f"phase {name!r} is already open; end({name!r}) it first")
            if at is not None:
                ph.open_mark = self._check_mark(w, at)
                return
            self._sync_cuda()
            ph.open_mark = self._mark_locked(w)

    def end(self, name: str, *, at: int | None = None) -> WindowEnergy:
        """Close the named phase and return the energy of this occurrence, as known now.

        Args:
            name: the phase name.
            at: an existing mark to close the phase at (see :meth:`begin`); default: now.
        """
        with self._lock:
            w = self._require()
            ph = w.phases.get(name)
            if ph is None or ph.open_mark is None:
                raise ConfigError(f"phase {name!r} is not open")
            if at is not None:
                end = self._check_mark(w, at, after=ph.open_mark)
            else:
                self._sync_cuda()
                end = self._mark_locked(w)
            start = ph.open_mark
            ph.intervals.append((start, end))
            ph.open_mark = None
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
        start = w.marks[w.start_mark] if w.marks else self.clock.monotonic_ns()
        end = w.marks[w.end_mark] if w.end_mark is not None else self.clock.monotonic_ns()
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
        from bertwatt.report.build import build_report

        w = self._window
        if w is None:
            raise ConfigError("the meter has not been started")
        with self._lock:  # phases and marks change under this lock; copy them consistently
            frozen = w.frozen()
        report = build_report(frozen, final=final)
        if final:
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
        from bertwatt.report.io import write_report

        partial = self._build(final=False)
        self._dist.write(partial)
        if w.config.output is not None and self._writes_output():
            write_report(self._dist.annotate(partial), w.config.output)

    def _checkpoint_loop(self) -> None:
        period = self.config.checkpoint_interval_s
        while not self._checkpoint_stop.wait(period):
            try:
                self.checkpoint()
            except Exception as err:  # a full disk must not end training
                logger.warning("bertwatt: writing the checkpoint report failed: %s", err)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<EnergyMeter {state} interval_s={self.config.interval_s:g}>"
