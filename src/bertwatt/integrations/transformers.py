"""Hugging Face ``Trainer`` integration: :class:`EnergyCallback` and :func:`measure_finetune`.

::

    from bertwatt import EnergyCallback

    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=dev,
                      callbacks=[EnergyCallback(carbon="FR")])
    trainer.train()
    print(trainer.callback_handler.callbacks[-1].report.summary())

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
- adds ``energy/...`` keys (kWh so far, mean W, J per step / example / token, padding share,
  gCO2e when a carbon intensity is configured, the predicted total) to every Trainer log, so they
  reach TensorBoard, W&B, MLflow and the rest through ``report_to``;
- writes the report (``report.json`` and ``summary.txt``) to ``<output_dir>/bertwatt/`` at the end
  and on every checkpoint;
- never raises into the training loop (every event is guarded; problems go to the report's
  warnings) and never touches tensors' values, random state or the control flow, so training
  results are identical with and without it.

The Trainer calls ``report_to`` integrations before user callbacks. So that they see the energy
keys, the callback moves itself right after ``DefaultFlowCallback`` in the Trainer's callback list
at train begin (:meth:`EnergyCallback.attach` does it explicitly).
"""

from __future__ import annotations

import functools
import gc
import importlib
import logging
import math
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from os import PathLike
from pathlib import Path
from typing import Any, TypeVar

from transformers import TrainerCallback

from bertwatt.errors import ConfigError
from bertwatt.integrations.logkeys import log_keys
from bertwatt.integrations.plan import trainer_plan
from bertwatt.integrations.report import FinetuneReport, InferenceReport
from bertwatt.integrations.resume import (
    checkpoint_state,
    previous_from_state,
    read_state,
    store_state,
    write_progress,
)
from bertwatt.integrations.runinfo import dataset_size, trainer_facts
from bertwatt.integrations.session import FinetuneSession
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


def _add_emissions_so_far(s: FinetuneSession, data: dict[str, Any]) -> None:
    """Fill the emissions of checkpoint figures (a report built while running has none): the
    earlier segments' emissions plus this session's energy x the carbon intensity (x PUE) now,
    as in the ``energy/gco2e`` log key; left None without an intensity."""
    factor = s.intensity_now()
    if factor is None:
        return
    earlier = s.previous.phases if s.previous is not None else {}
    for name, figures in data["phases"].items():
        before = earlier.get(name, {})
        energy, energy_before = figures.get("energy_j"), before.get("energy_j") or 0.0
        grams_before = before.get("emissions_g") if before else 0.0
        if energy is None or grams_before is None:
            continue
        figures["emissions_g"] = grams_before + (energy - energy_before) / 3.6e6 * factor
    data["emissions_g"] = data["phases"].get("run", {}).get("emissions_g")


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
            whoever made it owns the meter and builds the report, the callback only feeds it.
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
        }
        FinetuneSession(self.meter, **self._session_options)  # validates the options now
        self._perspective = {
            "inference": inference,
            "pretraining_energy_kwh": pretraining_energy_kwh,
            "pretraining_source": pretraining_source,
        }
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
        self._state_step: int | None = None
        self._last_progress_ns = 0
        self._attached = False
        self._callbacks: list[Any] | None = None

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
        callbacks = trainer.callback_handler.callbacks
        if not any(cb is self for cb in callbacks):
            callbacks.append(self)
        self._run_before_reporters(callbacks)
        self._attached = True
        self._callbacks = callbacks
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

    def _find_callback_list(self) -> list[Any] | None:
        """The Trainer's callback list holding this callback (the lists that refer to it)."""
        for ref in gc.get_referrers(self):
            if isinstance(ref, list) and any(cb is self for cb in ref):
                return ref
        return None

    def _start_live(self, callbacks: list[Any] | None) -> None:
        if self.live is False or self._live is not None:
            return
        from transformers.trainer_callback import ProgressCallback

        progress = next((cb for cb in callbacks or [] if isinstance(cb, ProgressCallback)), None)

        def into_bar(text: str) -> None:
            bar = getattr(progress, "training_bar", None)
            if bar is not None:
                bar.set_postfix_str(text.removeprefix("bertwatt  "), refresh=False)

        self._live = LiveLine(
            self.meter, enabled=self.live, sink=into_bar if progress is not None else None
        ).start()

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
        if s is None or not s.running:
            return
        report = s.build_report(self.meter.partial_report())
        data = checkpoint_state(
            report, step=int(state.global_step or 0), step_records=s.step_record_totals()
        )
        if data["emissions_g"] is None:  # a report built while running has no carbon applied
            _add_emissions_so_far(s, data)
        store_state(state, int(getattr(args, "process_index", 0) or 0), data)
        self._state_step = int(state.global_step or 0)

    def _progress(self, s: FinetuneSession, state: Any) -> None:
        """Record the last known activity next to the report (for a resumed run's lost energy)."""
        self._last_progress_ns = self.meter.clock.monotonic_ns()
        if self._report_path is None or s.run_id is None or not s.running:
            return
        energy = self.meter.snapshot().energy_j
        if s.previous is not None and energy is not None:
            energy = None if s.previous.energy_j is None else s.previous.energy_j + energy
        at = datetime.fromtimestamp(self.meter.clock.time_ns() / 1e9, tz=UTC)
        try:
            write_progress(
                self._report_path,
                run_id=s.run_id,
                at=at,
                step=int(state.global_step or 0),
                energy_j=energy,
            )
        except OSError as err:
            self._problem("on_log (progress file)", err)

    def _resume(self, s: FinetuneSession, args: Any, state: Any, start_step: int) -> None:
        """Continue from the figures the checkpoint carries (see :mod:`.resume`)."""
        data, why = read_state(state, int(getattr(args, "process_index", 0) or 0))
        if data is not None and data.get("step") != start_step:
            why = (
                f"the checkpoint's bertwatt figures are for step {data.get('step')}, not for "
                f"step {start_step} (the save was decided after EnergyCallback's events)"
            )
            data = None
        if data is None:
            s.warn(
                f"resumed from step {start_step}, but {why}: the totals cover this session only "
                f"(steps after {start_step})"
            )
            return
        s.previous, problems = previous_from_state(data, self._report_path)
        for problem in problems:
            s.warn(problem)

    def _back(self) -> str | None:
        return "train" if self._in_train else None

    # ------------------------------------------------------------------ events
    @_guarded
    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Start the meter (unless running), watch the model, open ``train``."""
        callbacks = self._callbacks if self._attached else self._find_callback_list()
        if callbacks is not None and not self._attached:
            self._run_before_reporters(callbacks)
        self._report = None
        self._report_path = self._path(args)
        self._best_save = str(getattr(args.save_strategy, "value", args.save_strategy)) == "best"
        self._logged_step = None
        if self._given is not None:
            s = self._given
        else:
            s = FinetuneSession(self.meter, auto_eval=True, **self._session_options)
            s.perspective = dict(self._perspective)
        self.session = s
        if not self.meter.running:
            self.meter.start()
            self._owns_meter = self._given is None
        self._last_progress_ns = self.meter.clock.monotonic_ns()
        plan = trainer_plan(args, state, kwargs.get("processing_class"))
        model = kwargs.get("model")
        if model is not None and not s.watching:
            s.watch(model)
        try:
            s.run_facts.update(trainer_facts(args, model, kwargs.get("train_dataloader"), state))
        except Exception as err:  # facts are a courtesy; measuring goes on
            s.warn(f"reading the run's set-up failed: {type(err).__name__}: {err}")
        s.previous = None
        self._state_step = None
        if plan.start_step > 0:
            self._resume(s, args, state, plan.start_step)
        self._start_live(callbacks)
        self._in_train = True
        s.begin_train(plan)
        if getattr(args, "eval_on_start", False):
            s.set_mode("eval")
        self._last_write = time.monotonic()

    @_guarded
    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Open ``epoch-N``."""
        if self.session is not None:
            self.session.epoch_begin(f"epoch-{math.floor(state.epoch or 0) + 1}")

    @_guarded
    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Close the optimizer step; pause training if an evaluation or save follows."""
        s = self.session
        if s is not None:
            s.step_end(state.global_step)
            self._after_flow(args, state, control)
            if self.meter.clock.monotonic_ns() - self._last_progress_ns >= _PROGRESS_PERIOD_NS:
                self._progress(s, state)

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
        self._note_eval_size(s, kwargs.get("eval_dataloader"))
        if s.mode != "eval":
            return
        if self._in_train and control.should_save and not self._best_save:
            s.set_mode("checkpoint")
            self._store_state(args, state)
        else:
            s.set_mode(self._back())
            if self._in_train and self._best_save:  # the Trainer saves if this one is the best
                self._store_state(args, state)

    @staticmethod
    def _note_eval_size(s: FinetuneSession, loader: Any) -> None:
        size = dataset_size(getattr(loader, "dataset", None))
        if size is None:
            return
        sizes = s.run_facts.setdefault("dataset_sizes", {})
        evals = [k for k in sizes if k == "eval" or k.startswith("eval-")]
        if not any(sizes[k] == size for k in evals):
            sizes["eval" if not evals else f"eval-{len(evals) + 1}"] = size

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
        s.ended_by = "completed"
        s.unwatch()
        if self._owns_meter and self.meter.running:
            self._owns_meter = False
            base = self.meter.stop(warn=False)
            self._report = s.build_report(base)
            self._write(self._report)
            # Last, once the report is kept and written: with warnings turned into errors this
            # may raise out of trainer.train(), but training is over and nothing is lost.
            emit_warnings(self._report, stacklevel=2)
