"""Hugging Face ``Trainer`` integration: :class:`EnergyCallback` and :func:`measure_finetune`.

::

    from bertwatt import EnergyCallback

    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=dev)
    energy = EnergyCallback(carbon="FR").attach(trainer)
    trainer.train()
    print(energy.report.summary())

or, in one call, training then evaluation::

    report = bertwatt.measure_finetune(trainer, carbon="FR")

What the callback does, at negligible cost per step:

- starts a meter at train begin (unless one is already running) and stops it at train end;
- phases ``train`` (paused during evaluations and checkpoints), ``epoch-N``, ``eval``,
  ``checkpoint``; every optimizer step is closed by a meter mark (counter channels are read
  exactly there), so per-step energies tile training;
- counts examples, tokens processed (padding included) and non-padding tokens of every forward
  call of the model, with a forward pre-hook: the tensors the model really receives, whatever the
  collator, in the main process, so DataLoader workers and gradient accumulation are handled;
- adds a short set of ``energy/...`` keys to one Trainer log line per step (the rest on request,
  :mod:`~bertwatt.integrations.logkeys`), so they reach TensorBoard, W&B, MLflow and the rest;
- shows the live line (power now, energy so far) in the progress bar on a terminal;
- writes the report (``report.json`` and ``summary.txt``) to ``<output_dir>/bertwatt/`` at the end
  and on every checkpoint;
- never raises into the training loop (every event is guarded; problems go to the report's
  warnings) and never touches tensors' values, random state or the control flow, so training
  results are identical with and without it.

The Trainer calls ``report_to`` integrations before user callbacks. So that they see the energy
keys, add the callback with :meth:`EnergyCallback.attach` (``EnergyCallback().attach(trainer)``;
``measure_finetune`` does): it puts itself right after ``DefaultFlowCallback`` in the Trainer's
callback list, through ``trainer.callback_handler``. Given in ``Trainer(callbacks=[...])`` it
still adds the keys to the logs and ``state.log_history``, but the integrations that ran before
it do not see them (it says so once), since nothing transformers hands a callback leads back to
the Trainer's callback list.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import logging
import math
import time
from collections.abc import Callable, Iterable
from os import PathLike
from pathlib import Path
from typing import Any, TypeVar

from transformers import TrainerCallback

from bertwatt.errors import ConfigError
from bertwatt.integrations.logkeys import log_keys
from bertwatt.integrations.plan import trainer_plan
from bertwatt.integrations.report import FinetuneReport, InferenceReport
from bertwatt.integrations.runinfo import trainer_facts
from bertwatt.integrations.session import FinetuneSession
from bertwatt.integrations.trainer_state import (
    continue_from_checkpoint,
    live_line,
    record_progress,
    store_figures,
)
from bertwatt.live import LiveLine
from bertwatt.meter import EnergyMeter
from bertwatt.report.checks import emit_warnings
from bertwatt.report.finetune import positive_number as _positive

__all__ = [
    "EnergyCallback",
    "FinetuneReport",
    "FinetuneSession",
    "InferenceReport",
]

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

#: At most one progress record (last known activity) per this many ns of the meter's clock at
#: step ends (a few µs each), and one at every log.
_PROGRESS_PERIOD_NS = 1_000_000_000


def _guarded(fn: F) -> F:
    """Run a callback event; log and record any exception instead of raising into training."""

    @functools.wraps(fn)
    def wrapper(self: EnergyCallback, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        try:
            fn(self, args, state, control, **kwargs)
        except Exception as err:
            self._problem(fn.__name__, err)

    return wrapper  # type: ignore[return-value]


#: Names this module re-exports lazily (importing them here would make an import cycle).
_REEXPORTS = {
    "measure_finetune": "bertwatt.integrations.finetune",
    "measure_inference": "bertwatt.integrations.inference",
}


def __getattr__(name: str) -> Any:
    if name in _REEXPORTS:
        return getattr(importlib.import_module(_REEXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class EnergyCallback(TrainerCallback):
    """Measure a ``transformers.Trainer`` run: energy per phase, per step and per token.

    Args:
        backends: exactly these backends; None auto-detects (as :class:`~bertwatt.EnergyMeter`).
        meter: use this meter instead of building one (a running meter is left running at
            train end; the report is built when it is stopped).
        output: report JSON path. None: ``<output_dir>/bertwatt/report.json`` (one file per
            process when ``world_size > 1``); False: write nothing.
        log_metrics: ``energy/...`` keys added to the Trainer's logs, once per logged step: True
            (a short default set: kWh so far, mean W, J per token processed, gCO2e, the
            predicted kWh), ``"all"``, key names (``["j_per_step", "padding_share"]``), or False.
            See :mod:`bertwatt.integrations.logkeys`.
        max_step_records: per-step records kept before neighbours merge (bounds memory).
        predict_after_steps: predict the run's energy after this many steps (None: 10% of the
            run, at least 10; 0: never).
        inference: reference for "the run equals N inference queries": an
            :class:`InferenceReport` or J per query (None: this run's evaluation, if any).
        pretraining_energy_kwh: energy of one pre-training run of the base model, to express the
            run as a fraction of it; ``pretraining_source`` says where the figure is from.
        live: the live line (power now, energy so far) while training: None/True shows it when
            stderr is a terminal (in the Trainer's progress bar when there is one), False never.
        session: record into this :class:`FinetuneSession` (as :func:`measure_finetune` does);
            whoever made it owns the meter and builds the report, the callback only feeds it
            (the run plan at train begin, then the Trainer's events).
        **meter_options: any other :class:`~bertwatt.EnergyMeter` option (``interval_s``,
            ``carbon``, ``pue``, ``baseline_s``, ``sync_cuda``, ``clock``, ...).

    Raises:
        ConfigError: an invalid option (at construction, never during training).
    """

    def __init__(
        self,
        backends: Any = None,
        *,
        meter: EnergyMeter | None = None,
        output: str | PathLike[str] | bool | None = None,
        log_metrics: bool | str | Iterable[str] = True,
        max_step_records: int = 2048,
        predict_after_steps: int | None = None,
        inference: InferenceReport | float | None = None,
        pretraining_energy_kwh: float | None = None,
        pretraining_source: str | None = None,
        live: bool | None = None,
        session: FinetuneSession | None = None,
        **meter_options: Any,
    ) -> None:
        if session is not None:
            if not isinstance(session, FinetuneSession):
                raise ConfigError(f"session must be a FinetuneSession, got {session!r}")
            if meter is not None and meter is not session.meter:
                raise ConfigError("session= records on its own meter: leave meter= out")
            meter = session.meter
        if meter is not None:
            if not isinstance(meter, EnergyMeter):
                raise ConfigError(f"meter must be an EnergyMeter, got {meter!r}")
            if backends is not None or meter_options:
                raise ConfigError(
                    "give either meter= or meter options (backends, interval_s, ...), not both"
                )
        if output is True:
            raise ConfigError("output must be a path, None (default location) or False")
        if isinstance(inference, int | float) and not isinstance(inference, bool):
            _positive("inference J per query", inference)
        if pretraining_energy_kwh is not None:
            _positive("pretraining_energy_kwh", pretraining_energy_kwh)
        self.meter = meter if meter is not None else EnergyMeter(backends, **meter_options)
        self.output = output
        self.log_keys = log_keys(log_metrics)
        self.log_metrics = bool(self.log_keys)
        self._session_options: dict[str, Any] = {
            "max_step_records": max_step_records,
            "predict_after_steps": predict_after_steps,
            "inference": inference,
            "pretraining_energy_kwh": pretraining_energy_kwh,
            "pretraining_source": pretraining_source,
        }
        FinetuneSession(self.meter, **self._session_options)  # validates the options now
        self.session: FinetuneSession | None = None
        self._given = session
        self.live = live
        self._live: LiveLine | None = None
        self._logged_step: int | None = None
        self._report: FinetuneReport | None = None
        self._owns_meter = False
        self._in_train = False
        self._best_save = False
        self._report_path: Path | None = None
        self._last_write = 0.0
        self._problems: set[str] = set()
        #: The job report of a distributed run, on rank 0 after ``trainer.train()``; else None.
        self.job_report: Any = None
        self._state_step: int | None = None
        self._last_progress_ns = 0
        self._handler: Any = None  # the Trainer's CallbackHandler, once attached
        self._told_attach = False

    # ------------------------------------------------------------------ public
    @property
    def report(self) -> FinetuneReport:
        """The report of the last training run (after ``trainer.train()`` returned)."""
        if self._report is None and self.session is not None and not self.meter.running:
            try:
                base = self.meter.report
            except ConfigError:
                base = None
            if base is not None:
                self._report = self.session.build_report(base)
        if self._report is None:
            raise ConfigError(
                "no report yet: it is built at the end of trainer.train() (or, with a meter "
                "you started yourself, once you stop it)"
            )
        return self._report

    def attach(self, trainer: Any) -> EnergyCallback:
        """Add this callback to ``trainer`` right after its ``DefaultFlowCallback``, so that the
        ``report_to`` integrations, which run after that, see the ``energy/...`` log keys."""
        handler = trainer.callback_handler
        callbacks = handler.callbacks
        if not any(cb is self for cb in callbacks):
            callbacks.append(self)
        self._run_before_reporters(callbacks)
        self._handler = handler
        return self

    # ------------------------------------------------------------------ internals
    def _problem(self, event: str, err: BaseException) -> str:
        message = f"EnergyCallback.{event} failed ({type(err).__name__}: {err}); training goes on"
        if self.session is not None:
            self.session.warn(message)
        elif message not in self._problems:
            logger.warning("bertwatt: %s", message)
        self._problems.add(message)
        logger.debug("bertwatt: EnergyCallback.%s traceback", event, exc_info=err)
        return message

    def _run_before_reporters(self, callbacks: list[Any]) -> None:
        from transformers.trainer_callback import DefaultFlowCallback

        mine = next((i for i, cb in enumerate(callbacks) if cb is self), None)
        if mine is None:
            return
        flows = [i for i, cb in enumerate(callbacks) if isinstance(cb, DefaultFlowCallback)]
        target = flows[-1] + 1 if flows else 0
        if mine > target:
            # Moving an item earlier while the handler iterates the list is safe: the items not
            # yet visited keep their positions.
            callbacks.pop(mine)
            callbacks.insert(target, self)

    def _start_live(self, args: Any, callbacks: list[Any] | None) -> None:
        if self.live is False or self._live is not None:
            return
        if callbacks is None and self.live is None and not getattr(args, "disable_tqdm", True):
            # the Trainer draws a progress bar on stderr, but unattached this callback cannot
            # find it (it is in the Trainer's callback list): a second line would fight it
            return
        self._live = live_line(self.meter, callbacks, self.live)

    def _tell_attach(self, args: Any) -> None:
        """Unattached: say once what the Trainer's ``report_to`` integrations miss."""
        reporters = getattr(args, "report_to", None) or []
        if isinstance(reporters, str):
            reporters = [reporters]
        reporters = [str(r) for r in reporters if r not in ("none", None)]
        if self._told_attach or not reporters or not self.log_keys:
            return
        self._told_attach = True
        logger.warning(
            "bertwatt: EnergyCallback was given in Trainer(callbacks=[...]), so it runs after "
            "the report_to integrations (%s): they do not see the energy/* keys (the logs and "
            "trainer.state.log_history have them). Fix: EnergyCallback(...).attach(trainer) "
            "instead",
            ", ".join(reporters),
        )

    def _stop_live(self) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.stop()

    def report_path(self, args: Any) -> Path | None:
        """Where the report goes for these ``TrainingArguments`` (None: nowhere)."""
        return self._path(args)

    def _path(self, args: Any) -> Path | None:
        if self.output is False:
            return None
        if self.output is not None:
            return Path(self.output)
        base = Path(getattr(args, "output_dir", None) or "trainer_output") / "bertwatt"
        if int(getattr(args, "world_size", 1) or 1) > 1:
            return base / f"report-rank{int(getattr(args, 'process_index', 0))}.json"
        return base / "report.json"

    def _write(self, report: FinetuneReport) -> None:
        path = self._report_path
        if path is None:
            return
        try:
            report.to_json(path)
            from bertwatt.report.io import write_text_atomic

            write_text_atomic(path.with_name(path.stem + "-summary.txt"), report.summary() + "\n")
        except Exception as err:  # a full disk must not end training
            message = self._problem("write", err)
            if message not in report.warnings:
                report.warnings.append(message)
        self._last_write = time.monotonic()

    def _write_partial(self) -> None:
        s = self.session
        if s is None or self._report_path is None or not s.running:
            return
        self._write(s.build_report(self.meter.partial_report()))

    def _after_flow(self, args: Any, state: Any, control: Any) -> None:
        s = self.session
        if s is None:
            return
        if control.should_evaluate:
            s.set_mode("eval")
        elif control.should_save and not self._best_save:
            s.set_mode("checkpoint")
            self._store_state(args, state)

    def _store_state(self, args: Any, state: Any) -> None:
        """Put the run's figures so far into the TrainerState the Trainer is about to save."""
        s = self.session
        if s is not None and s.running:
            self._state_step = store_figures(s, args, state)

    def _progress(self, s: FinetuneSession, state: Any) -> None:
        """Record the last known activity next to the report (for a resumed run's lost energy)."""
        self._last_progress_ns = self.meter.clock.monotonic_ns()
        if self._report_path is None or s.run_id is None or not s.running:
            return
        try:
            record_progress(s, self._report_path, state)
        except OSError as err:
            self._problem("on_log (progress file)", err)

    def _resume(self, s: FinetuneSession, args: Any, state: Any, start_step: int) -> Any:
        """The earlier sessions' figures the checkpoint carries (see :mod:`.resume`)."""
        return continue_from_checkpoint(s, args, state, start_step, self._report_path)

    def _gather_job(self, args: Any, state: Any, control: Any) -> None:
        """Distributed runs: every rank's report to rank 0, which logs job-level ``energy/job_*``
        figures (through the Trainer's callback handler, so ``report_to`` sees them)."""
        from bertwatt.distributed.binding import gather_for_callback
        from bertwatt.distributed.job import job_log_metrics

        self.job_report = gather_for_callback(self.meter, self._report)
        if self.job_report is None or not self.log_metrics:
            return
        logs = job_log_metrics(self.job_report)
        history = getattr(state, "log_history", None)
        if isinstance(history, list):
            history.append({**logs, "step": getattr(state, "global_step", 0)})
        if self._handler is not None:  # attached: every callback's on_log, reporters included
            self._handler.on_log(args, state, control, logs)

    def _back(self) -> str | None:
        return "train" if self._in_train else None

    # ------------------------------------------------------------------ events
    @_guarded
    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Start the meter (unless running), watch the model, open ``train``."""
        callbacks = self._handler.callbacks if self._handler is not None else None
        if callbacks is not None:
            self._run_before_reporters(callbacks)
        else:
            self._tell_attach(args)
        self._report = None
        self._report_path = self._path(args)
        self._best_save = str(getattr(args.save_strategy, "value", args.save_strategy)) == "best"
        self._logged_step = None
        if self._given is not None:
            s = self._given
        else:
            s = FinetuneSession(self.meter, auto_eval=True, **self._session_options)
        self.session = s
        if not self.meter.running:
            from bertwatt.distributed.binding import prepare_for_callback

            prepare_for_callback(self.meter, self._report_path)  # rank files; gather at end
            self.meter.start()
            self._owns_meter = self._given is None
        self._last_progress_ns = self.meter.clock.monotonic_ns()
        plan = trainer_plan(args, state, kwargs.get("processing_class"))
        model = kwargs.get("model")
        if model is not None and not s.watching:
            s.watch(model)
        facts: dict[str, Any] = {}
        try:
            facts = trainer_facts(args, model, kwargs.get("train_dataloader"), state)
        except Exception as err:  # facts are a courtesy; measuring goes on
            s.warn(f"reading the run's set-up failed: {type(err).__name__}: {err}")
        self._state_step = None
        previous = None
        if plan.start_step > 0:
            previous = self._resume(s, args, state, plan.start_step)
        self._start_live(args, callbacks)
        self._in_train = True
        s.begin_train(dataclasses.replace(plan, run_facts=facts, previous=previous))
        if getattr(args, "eval_on_start", False):
            s.set_mode("eval")
        self._last_write = time.monotonic()

    @_guarded
    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Open ``epoch-N``."""
        if self.session is not None:
            self.session.epoch_begin(f"epoch-{math.floor(state.epoch or 0) + 1}")

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Close the optimizer step; pause training if an evaluation or save follows.

        The hot path (guarded inline, not by a wrapper): the session's step end (integers and
        one clock read), two flags of ``control``, and about once a second a progress record.
        """
        s = self.session
        if s is None:
            return
        try:
            now = s.step_end(state.global_step)
            if control.should_evaluate or control.should_save:
                self._after_flow(args, state, control)
            if now - self._last_progress_ns >= _PROGRESS_PERIOD_NS:
                self._progress(s, state)
        except Exception as err:
            self._problem("on_step_end", err)

    @_guarded
    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Close ``epoch-N``; pause training if an evaluation or save follows."""
        if self.session is not None:
            self.session.epoch_end()
            self._after_flow(args, state, control)

    @_guarded
    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Close ``eval``; go on to the checkpoint or back to training."""
        s = self.session
        if s is None:
            return
        s.note_eval_size(kwargs.get("eval_dataloader"))
        if s.mode != "eval":
            return
        if self._in_train and control.should_save and not self._best_save:
            s.set_mode("checkpoint")
            self._store_state(args, state)
        else:
            s.set_mode(self._back())
            if self._in_train and self._best_save:  # the Trainer saves if this one is the best
                self._store_state(args, state)

    @_guarded
    def on_predict(
        self, args: Any, state: Any, control: Any, metrics: Any = None, **kwargs: Any
    ) -> None:
        """Close ``predict`` (or an automatically opened ``eval``)."""
        s = self.session
        if s is not None and s.mode in ("eval", "predict"):
            s.set_mode(self._back())

    @_guarded
    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Write the report so far; close ``checkpoint``."""
        s = self.session
        if s is None:
            return
        step = int(state.global_step or 0)
        if self._state_step != step:
            s.warn(
                f"the checkpoint at step {step} was saved without bertwatt's figures (the save "
                "was decided after EnergyCallback's events): resuming from it starts the totals "
                "afresh"
            )
        self._write_partial()
        if s.mode == "checkpoint":
            s.set_mode(self._back())
        else:
            s.restart_chain()

    @_guarded
    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        """Add ``energy/...`` figures to the log (and to ``state.log_history``)."""
        s = self.session
        if s is None or not s.running:
            return
        step = int(getattr(state, "global_step", 0) or 0)
        if self.log_keys and isinstance(logs, dict) and step != self._logged_step:
            # one point per step: a second log line at the same step (evaluation, the train
            # summary) gets no energy keys, so TensorBoard & co. plot each step once
            self._logged_step = step
            history = getattr(state, "log_history", None)
            last = history[-1] if history and isinstance(history[-1], dict) else None
            # Trainer.log appended a copy of these logs (plus "step") just before on_log
            same = last is not None and all(
                k == "step" or (k in logs and logs[k] is v) for k, v in last.items()
            )
            keys = self.log_keys
            figures = {k: v for k, v in s.live_metrics().items() if k in keys}
            logs.update(figures)
            if same and last is not None:
                last.update(figures)
        self._progress(s, state)
        interval = self.meter.config.checkpoint_interval_s
        if time.monotonic() - self._last_write >= interval:
            self._write_partial()

    @_guarded
    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Close the phases; stop the meter (if this callback started it) and write the report."""
        s = self.session
        self._in_train = False
        self._stop_live()
        if s is None:
            return
        s.end_train()
        if self._given is not None:  # its owner builds the report
            return
        s.mark_ended("completed")
        s.unwatch()
        if self._owns_meter and self.meter.running:
            self._owns_meter = False
            base = self.meter.stop(warn=False)
            self._report = s.build_report(base)
            self._write(self._report)
            self._gather_job(args, state, control)
            # Last, once the report is kept and written: with warnings turned into errors this
            # may raise out of trainer.train(), but training is over and nothing is lost.
            emit_warnings(self._report, stacklevel=2)
