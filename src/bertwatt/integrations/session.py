"""The bookkeeping behind :class:`~bertwatt.EnergyCallback` and ``measure_finetune``.

A :class:`FinetuneSession` drives meter phases from training events and attributes work to them.
The run is partitioned into *modes*, one at a time: ``train`` (optimizer steps, data loading,
logging), ``eval``, ``checkpoint``, ``predict`` (or any name a plain loop uses). Training pauses
while another mode runs, so the ``train`` phase is training alone; ``epoch-N`` phases pause with
it. Optimizer steps are tiled by meter marks into :class:`~bertwatt.integrations.steps.StepLog`
records. Forward calls of the watched model are counted (:mod:`~bertwatt.integrations.tokens`)
into the current step (training) or the current mode.

Plain training loops get a session as their ``tracker``::

    def train(tracker):
        tracker.watch(model)                 # count tokens of every forward call
        for batch in loader:
            loss = model(**batch).loss
            loss.backward(); opt.step(); opt.zero_grad()
            tracker.step()                   # one optimizer step ends here
        with tracker.phase("eval"):
            evaluate(model)

    report = measure_finetune(train)

The session keeps its state to itself: it is changed only by its own methods, fed by the
Trainer callback (one typed entry, :meth:`FinetuneSession.begin_train` with a
:class:`~bertwatt.integrations.plan.RunPlan`), by ``measure_finetune`` and by a plain loop's
calls; the modules that read it (report builder, live figures, prediction, checkpoint figures)
get a frozen :class:`~bertwatt.integrations.snapshot.SessionSnapshot`.

Per optimizer step the Trainer path costs a few dozen nanoseconds-to-microseconds of plain
Python: the forward pre-hook keeps references to the batch's ``input_ids`` and
``attention_mask`` in preallocated slots, and :meth:`FinetuneSession.step_end` adds to a few
integers and reads the clock once. Token counts, phase figures and step energies are worked out
when a step record closes (once it covers ``_MARK_SHARE_INV`` times what a meter mark costs, at
most 1 s), at a log, at a mode change or for a report.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from bertwatt.clock import SystemClock
from bertwatt.errors import ConfigError
from bertwatt.integrations.predict import IntensityNow
from bertwatt.integrations.snapshot import Prediction, SessionSnapshot
from bertwatt.integrations.steps import StepLog
from bertwatt.integrations.tokens import TokenCounter, WorkCounts

if TYPE_CHECKING:
    from bertwatt.integrations.plan import RunPlan
    from bertwatt.integrations.report import FinetuneReport, InferenceReport
    from bertwatt.integrations.resume import Previous
    from bertwatt.meter import EnergyMeter
    from bertwatt.report.models import EnergyReport

__all__ = ["FinetuneSession"]

logger = logging.getLogger(__name__)

_EVAL_IN_TRAIN_FIX = (
    "the watched model ran forward calls in eval mode (model.eval()) inside training, outside "
    'tracker.phase("eval"): their examples and tokens are counted apart from training, but their '
    'energy stays in the train phase. Fix: wrap the evaluation in `with tracker.phase("eval"):`'
)
#: A step record covers at least this many times the cost of one meter mark (marks then take
#: at most ~0.01 % of training time, a few µs per step) ...
_MARK_SHARE_INV = 10_000
#: ... but never waits longer than this for its closing mark.
_MAX_RECORD_WAIT_NS = 2_000_000_000
#: Modes a non-training forward call may leave for an automatically opened ``eval``.
_EVAL_FROM = (None, "train", "checkpoint")
#: How a session may end.
_ENDINGS = ("running", "completed", "error", "interrupted")
_NEVER = sys.maxsize


def _clock_reader(meter: EnergyMeter) -> Callable[[], int]:
    """The meter clock's ``monotonic_ns`` (the system clock's C function itself: no frame)."""
    clock = meter.clock
    return time.monotonic_ns if type(clock) is SystemClock else clock.monotonic_ns


def _copy(counts: WorkCounts) -> WorkCounts:
    out = WorkCounts()
    out.add(counts)
    return out


class FinetuneSession:
    """Phases, optimizer steps and tokens of one fine-tuning run, measured on ``meter``.

    Args:
        meter: the meter (started by the caller before :meth:`begin_train`).
        max_step_records: per-step records kept before neighbours are merged (memory bound).
        predict_after_steps: predict the whole run's energy after this many optimizer steps
            (None: 10% of the run, at least 10 steps; 0: never).
        total_steps: optimizer steps of the whole run, for the prediction.
        pad_token_id: padding id, used only for batches without an attention mask.
        auto_eval: route forward calls by ``module.training`` and open an ``eval`` phase when the
            model runs in eval mode outside one (the Trainer path). False: attribute forward
            calls to the current mode (plain loops).
        inference: reference for "the run equals N inference queries" (an ``InferenceReport``
            or J per query; None: the run's own evaluation).
        pretraining_energy_kwh, pretraining_source: a pre-training run's energy and its source,
            for ``report.perspective``.
    """

    #: every attribute is private: the session is changed only through its methods
    __slots__ = (
        "_auto_eval",
        "_block",
        "_block_first",
        "_block_steps",
        "_chain",
        "_chain_ns",
        "_counts",
        "_due_ns",
        "_ended_by",
        "_epoch",
        "_eval_in_train",
        "_eval_in_train_tokens",
        "_expected_evals",
        "_expected_saves",
        "_extra",
        "_first_event_steps",
        "_grouped_by_length",
        "_grouping_hint",
        "_hooks",
        "_intensity_now",
        "_log",
        "_mark_cost_ns",
        "_meter",
        "_mode",
        "_mode_energies",
        "_modes_used",
        "_now",
        "_other_tokens",
        "_perspective",
        "_phase_steps",
        "_predict_after",
        "_predict_at",
        "_predict_retry",
        "_prediction",
        "_previous",
        "_run_facts",
        "_run_id",
        "_stated",
        "_steps_accounted",
        "_steps_done",
        "_stride",
        "_total_steps",
        "_train_end_mark",
        "_train_start_mark",
        "_train_tokens",
        "_warnings",
    )

    def __init__(
        self,
        meter: EnergyMeter,
        *,
        max_step_records: int = 2048,
        predict_after_steps: int | None = None,
        total_steps: int | None = None,
        pad_token_id: int | None = None,
        auto_eval: bool = False,
        inference: InferenceReport | float | None = None,
        pretraining_energy_kwh: float | None = None,
        pretraining_source: str | None = None,
    ) -> None:
        if isinstance(max_step_records, bool) or not isinstance(max_step_records, int):
            raise ConfigError(f"max_step_records must be an int >= 2, got {max_step_records!r}")
        if max_step_records < 2:
            raise ConfigError(f"max_step_records must be >= 2, got {max_step_records!r}")
        if predict_after_steps is not None and (
            isinstance(predict_after_steps, bool)
            or not isinstance(predict_after_steps, int)
            or predict_after_steps < 0
        ):
            raise ConfigError(
                f"predict_after_steps must be an int >= 0 or None, got {predict_after_steps!r}"
            )
        self._meter = meter
        self._log = StepLog(max_step_records)
        self._train_tokens = TokenCounter(pad_token_id)
        self._other_tokens = TokenCounter(pad_token_id)
        #: forward calls in eval mode (``model.eval()``) while training, outside any phase
        self._eval_in_train_tokens = TokenCounter(pad_token_id)
        self._eval_in_train = WorkCounts()
        self._auto_eval = auto_eval
        self._predict_after = predict_after_steps
        self._total_steps = total_steps
        self._expected_evals: int | None = None
        self._expected_saves: int | None = None
        #: steps before the first evaluation / checkpoint (the prediction waits for them)
        self._first_event_steps: dict[str, int] = {}
        self._counts: dict[str, WorkCounts] = {}
        self._phase_steps: dict[str, int] = {}
        self._mode_energies: dict[str, list[float]] = {}
        self._modes_used: list[str] = []
        self._mode: str | None = None
        self._epoch: str | None = None
        self._steps_done = 0
        self._warnings: list[str] = []
        self._prediction: Prediction | None = None
        self._train_start_mark: int | None = None
        self._train_end_mark: int | None = None
        self._extra: dict[str, Any] = {}
        self._grouped_by_length: bool | None = None
        self._grouping_hint: str | None = None
        self._perspective: dict[str, Any] = {
            "inference": inference,
            "pretraining_energy_kwh": pretraining_energy_kwh,
            "pretraining_source": pretraining_source,
        }
        #: run facts for ``report.run`` (model, batching, data set sizes): see ``runinfo``
        self._run_facts: dict[str, Any] = {}
        self._stated: dict[str, Any] = {}
        #: the earlier sessions of a resumed run (None: not resumed, or nothing carried over)
        self._previous: Previous | None = None
        self._ended_by = "running"
        #: run id of the meter window this session measures (pinned at the first report built)
        self._run_id: str | None = None
        self._hooks: list[Any] = []
        self._intensity_now = IntensityNow(meter)
        # step records: the open block (steps since the last closing mark) and the chain of marks
        self._chain: int | None = None
        self._chain_ns = 0  # meter clock time of the last mark
        self._due_ns = 0  # the open record may close from this clock time on
        self._mark_cost_ns = 0.0  # smoothed time one meter mark takes (meter clock)
        self._block = WorkCounts()
        self._block_steps = 0
        self._block_first = 0
        self._steps_accounted = 0  # steps already added to the train/epoch phase steps
        self._stride = 1  # steps per record (the step log's, cached for step_end)
        self._predict_at = _NEVER
        #: a prediction found no measured step record yet: retry when the next one closes
        self._predict_retry = False
        self._now: Callable[[], int] = _clock_reader(meter)
        self._plan_prediction()

    # ------------------------------------------------------------------ read-only views
    @property
    def meter(self) -> EnergyMeter:
        """The meter this session records on."""
        return self._meter

    @property
    def mode(self) -> str | None:
        """The current mode (``train``, ``eval``, ...; None: no phase open)."""
        return self._mode

    @property
    def steps_done(self) -> int:
        """Optimizer steps ended in this session."""
        return self._steps_done

    @property
    def run_id(self) -> str | None:
        """Run id of the meter window this session measures (None until a report is built)."""
        return self._run_id

    @property
    def previous(self) -> Previous | None:
        """The earlier sessions of a resumed run (None: not resumed)."""
        return self._previous

    @property
    def warnings(self) -> tuple[str, ...]:
        """Problems recorded for the report."""
        return tuple(self._warnings)

    @property
    def watching(self) -> bool:
        """True while forward hooks installed by :meth:`watch` are in place."""
        return bool(self._hooks)

    @property
    def running(self) -> bool:
        """True while the meter runs."""
        return self._meter.running

    @property
    def stated_facts(self) -> dict[str, Any]:
        """The run facts given to :meth:`describe`."""
        return dict(self._stated)

    def snapshot(self, *, for_prediction: bool = False) -> SessionSnapshot:
        """The session's figures now, for the modules that read them (report, log figures,
        checkpoint figures). ``for_prediction`` also pins the latest step-record edge (a new
        mark when training is not running)."""
        self._flush_train()
        self._account_steps()
        chain_mark: int | None = None
        chain_steps = self._steps_done
        if for_prediction and self._meter.running:
            chain_mark, chain_steps = self._chain_point()
        return SessionSnapshot(
            meter=self._meter,
            step_log=self._log,
            counts={k: _copy(v) for k, v in self._counts.items()},
            phase_steps=dict(self._phase_steps),
            modes_used=tuple(self._modes_used),
            steps_done=self._steps_done,
            chain_mark=chain_mark,
            chain_steps=chain_steps,
            train_start_mark=self._train_start_mark,
            train_end_mark=self._train_end_mark,
            total_steps=self._total_steps,
            expected_evals=self._expected_evals,
            expected_saves=self._expected_saves,
            mode_energies={k: tuple(v) for k, v in self._mode_energies.items()},
            prediction=self._prediction,
            previous=self._previous,
            train_lengths=self._train_tokens.lengths,
            eval_in_train=self.eval_in_train(),
            auto_eval=self._auto_eval,
            run_facts=dict(self._run_facts),
            stated_facts=dict(self._stated),
            extra=dict(self._extra),
            warnings=tuple(self._warnings),
            grouped_by_length=self._grouped_by_length,
            grouping_hint=self._grouping_hint,
            perspective=dict(self._perspective),
            ended_by=self._ended_by,
            run_id=self._run_id,
            intensity_g_per_kwh=self._intensity_now(),
        )

    # ------------------------------------------------------------------ what callers tell it
    def warn(self, message: str) -> None:
        """Record a problem for the report (once per message)."""
        if message not in self._warnings:
            self._warnings.append(message)
            logger.warning("bertwatt: %s", message)

    def add_extra(self, key: str, value: Any) -> None:
        """Keep ``value`` under ``key`` in the report's ``extra`` (e.g. the Trainer's metrics)."""
        self._extra[key] = value

    def mark_ended(self, how: str) -> None:
        """Say how this session ended: ``completed``, ``error`` or ``interrupted``.

        Raises:
            ConfigError: another value.
        """
        if how not in _ENDINGS:
            raise ConfigError(f"a session ends as one of {', '.join(_ENDINGS)}, got {how!r}")
        self._ended_by = how

    def note_eval_size(self, loader: Any) -> None:
        """Add the size of an evaluation data loader's data set to the run facts."""
        from bertwatt.integrations.runinfo import note_eval_size

        note_eval_size(self._run_facts, loader)

    def describe(self, **facts: Any) -> None:
        """State facts of the run for ``report.run`` that bertwatt cannot see in a plain loop.

        Keyword arguments are :class:`~bertwatt.report.models.RunInfo` fields: ``model_class``,
        ``model_name``, ``parameters_total``, ``parameters_trainable``, ``max_seq_length``,
        ``precision``, ``batch_size``, ``gradient_accumulation_steps``, ``world_size``,
        ``dataset_sizes`` (e.g. ``{"train": 6000, "eval": 600}``). What you state wins over what
        bertwatt observes.

        Raises:
            ConfigError: an unknown field or a value of the wrong type.
        """
        from bertwatt.integrations.runinfo import validate_run_fields

        self._stated.update(validate_run_fields(facts))

    # ------------------------------------------------------------------ modes
    def begin_train(self, plan: RunPlan | None = None) -> None:
        """Training starts: take the run ``plan`` (what the run will do, as far as known: the
        one way a caller hands the session its facts), remember the edge, enter ``train``."""
        if plan is not None:
            self._apply(plan)
        self._now = _clock_reader(self._meter)
        self._train_start_mark = self._mark()
        self._train_end_mark = None
        self._plan_prediction()
        self.set_mode("train")

    def _apply(self, plan: RunPlan) -> None:
        if plan.total_steps is not None:
            self._total_steps = plan.total_steps
        self._expected_evals = plan.expected_evals
        self._expected_saves = plan.expected_saves
        self._first_event_steps = {
            mode: n
            for mode, n, expected in (
                ("eval", plan.first_eval_step, plan.expected_evals),
                ("checkpoint", plan.first_save_step, plan.expected_saves),
            )
            if n is not None and expected
        }
        self._grouped_by_length = plan.grouped_by_length
        self._grouping_hint = plan.grouping_hint
        if plan.pad_token_id is not None:
            for counter in (self._train_tokens, self._other_tokens, self._eval_in_train_tokens):
                counter.use_pad_token_id(plan.pad_token_id)
        if plan.trainer:
            self._extra.setdefault("trainer", {}).update(plan.trainer)
        self._run_facts.update(plan.run_facts)
        self._previous = plan.previous

    def end_train(self) -> None:
        """Training ends: close every phase and remember the edge."""
        if self._epoch is not None:
            self.epoch_end()
        self.set_mode(None)
        if self.running:
            self._train_end_mark = self._mark()

    def set_mode(self, mode: str | None) -> None:
        """Leave the current mode and enter ``mode`` (None: no phase open)."""
        if mode == self._mode or not self.running:
            if not self.running:
                self._leave_quietly()
                self._mode = mode
            return
        self._leave()
        self._mode = mode
        if mode is None:
            return
        if mode not in self._modes_used:
            self._modes_used.append(mode)
        if mode != "train":
            self._meter.begin(mode)
            return
        m = self._mark()  # one edge shared by the phases and the first step record
        self._meter.begin(mode, at=m)
        if self._epoch is not None:
            self._meter.begin(self._epoch, at=m)
        self._chain = m
        self._train_tokens.open(True)  # the forward hook's short path

    def _leave_quietly(self) -> None:
        """The meter stopped under the session: keep what was counted (forward calls kept
        until now included), close nothing, count nothing more."""
        if self._mode == "train":
            self._flush_train()
            self._account_steps()
        self._train_tokens.open(False)
        self._chain = None

    def _leave(self) -> None:
        mode = self._mode
        if mode is None:
            return
        if mode == "train":
            self._train_tokens.open(False)
            m = self._close_block()
            self._block = WorkCounts()  # forward calls after the last step: in no step record
            if self._epoch is not None:
                self._meter.end(self._epoch, at=m)
            self._meter.end("train", at=m)
            self._chain = None
            return
        counts = self._other_tokens.take()
        self._add_counts((mode,), counts)
        self._phase_steps[mode] = self._phase_steps.get(mode, 0) + counts.batches
        we = self._meter.end(mode)
        if we.energy_j is not None:
            self._mode_energies.setdefault(mode, []).append(we.energy_j)
            if self._prediction is None and self._steps_done:
                self._maybe_predict()

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Run a block as mode ``name`` (training pauses), then return to the previous mode."""
        if not isinstance(name, str) or not name.strip() or name.startswith("epoch-"):
            raise ConfigError(
                f"a phase name must be a non-empty string not starting with 'epoch-', got {name!r}"
            )
        previous = self._mode
        self.set_mode(name)
        try:
            yield
        finally:
            self.set_mode(previous)

    def epoch_begin(self, name: str) -> None:
        """An epoch starts (phase ``name``, e.g. ``epoch-1``)."""
        if self._epoch is not None:
            self.epoch_end()
        if self._mode == "train" and self.running:
            m = self._close_block()  # the steps so far belong to no epoch
            self._block = WorkCounts()
            self._epoch = name
            self._meter.begin(name, at=m)
            self._chain = m
        else:
            self._epoch = name

    def epoch_end(self) -> None:
        """The current epoch ends."""
        if self._epoch is None:
            return
        if self._mode == "train" and self.running:
            m = self._close_block()
            self._block = WorkCounts()
            self._meter.end(self._epoch, at=m)
        else:
            self._account_steps()
        self._epoch = None

    def restart_chain(self) -> None:
        """Start the next step's record here (leaves work just done, e.g. a save, out of steps)."""
        if self._mode == "train" and self.running and self._block_steps == 0:
            self._chain = self._mark()

    # ------------------------------------------------------------------ steps and tokens
    def _mark(self) -> int:
        """A meter mark, timed: the step records' length adapts to what a mark costs."""
        now = self._now
        t0 = now()
        m = self._meter.mark()
        t1 = now()
        cost = self._mark_cost_ns + (t1 - t0 - self._mark_cost_ns) * 0.2
        self._mark_cost_ns = cost
        self._chain_ns = t1
        self._due_ns = t1 + int(min(cost * _MARK_SHARE_INV, _MAX_RECORD_WAIT_NS))
        return m

    def _chain_point(self) -> tuple[int, int]:
        """``(mark, optimizer steps done at that mark)``: the latest edge that closed a step
        record while training runs, else a new mark now (for predictions)."""
        if self._chain is not None and self._mode == "train":
            return self._chain, self._steps_done - self._block_steps
        return self._mark(), self._steps_done

    def _add_counts(self, names: tuple[str | None, ...], counts: WorkCounts) -> None:
        if not counts.batches and not counts.examples and not counts.tokens_padded:
            return
        for name in names:
            if name is not None:
                self._counts.setdefault(name, WorkCounts()).add(counts)

    def _flush_train(self) -> None:
        """Count the training forward calls kept so far (into the open record and phases)."""
        counts = self._train_tokens.take()
        if counts.batches or counts.examples or counts.tokens_padded:
            self._block.add(counts)
            self._add_counts(("train", self._epoch), counts)

    def _account_steps(self) -> None:
        n = self._steps_done - self._steps_accounted
        if n:
            self._steps_accounted = self._steps_done
            for name in ("train", self._epoch):
                if name is not None:
                    self._phase_steps[name] = self._phase_steps.get(name, 0) + n

    def _close_block(self) -> int:
        """Mark an edge now; close the open step record there. Returns the mark."""
        m = self._mark()
        self._flush_train()
        self._account_steps()
        if self._block_steps and self._chain is not None:
            self._log.close(
                self._block_first, self._block_steps, self._block, self._chain, m, self._meter
            )
            self._block_steps = 0
            self._block = WorkCounts()
            self._chain = m
            self._stride = self._log.stride
            if self._predict_retry:  # a new record: the prediction may work now
                self._predict_retry = False
                self._predict_at = 0
        return m

    def step_end(self, step: int | None = None) -> int:
        """One optimizer step ended (its forward calls have been observed or counted).

        The hot path: a few integer updates and one clock read; the step record closes (a
        meter mark, token counts) only once it is long enough. Returns the meter clock's time
        read (ns; 0 when nothing was recorded).
        """
        if self._mode != "train" or not self._meter.running:
            if not self._meter.running:  # stopped under the session: its window is over
                self._leave_quietly()
                return 0
            self.set_mode("train")
        n = self._block_steps + 1
        done = self._steps_done + 1
        if n == 1:
            self._block_first = done if step is None else step
        self._block_steps = n
        self._steps_done = done
        now = self._now()
        if n >= self._stride and now >= self._due_ns:
            self._close_block()
        if done >= self._predict_at:
            self._maybe_predict()
        return now

    def observe(self, args: tuple[Any, ...], kwargs: Mapping[str, Any], *, training: bool) -> None:
        """Queue one forward call of the watched model."""
        if not self.running:
            return
        if self._auto_eval:
            if training:
                self._train_tokens.observe(args, kwargs)
                return
            if self._mode in _EVAL_FROM:
                self.set_mode("eval")
            self._other_tokens.observe(args, kwargs)
            return
        if self._mode in (None, "train"):
            if not training:  # evaluation inside the loop without tracker.phase("eval")
                if not self._eval_in_train_tokens.pending and not self._eval_in_train.batches:
                    logger.warning("bertwatt: %s", _EVAL_IN_TRAIN_FIX)
                self._eval_in_train_tokens.observe(args, kwargs)
                return
            self._train_tokens.observe(args, kwargs)
        else:
            self._other_tokens.observe(args, kwargs)

    def watch(self, model: Any) -> None:
        """Count the tokens of every forward call of ``model`` (a ``torch.nn.Module``)."""
        session = self

        def route(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            session.observe(args, kwargs, training=bool(getattr(module, "training", True)))

        def failed(err: Exception) -> None:
            session.warn(f"token counting failed and was skipped: {type(err).__name__}: {err}")

        # the short path (training calls while training runs) is the token counter's own
        hook = self._train_tokens.forward_hook(route, failed)

        if "model_class" not in self._run_facts:
            from bertwatt.integrations.runinfo import model_facts

            try:
                self._run_facts.update(model_facts(model))
            except Exception as err:  # facts are a courtesy; counting goes on
                self.warn(f"reading the model's size failed: {type(err).__name__}: {err}")
        if self._train_tokens.pad_token_id is None:
            pad = getattr(getattr(model, "config", None), "pad_token_id", None)
            if isinstance(pad, int):
                for counter in (
                    self._train_tokens,
                    self._other_tokens,
                    self._eval_in_train_tokens,
                ):
                    counter.use_pad_token_id(pad)
        self._hooks.append(model.register_forward_pre_hook(hook, with_kwargs=True))

    def unwatch(self) -> None:
        """Remove the forward hooks installed by :meth:`watch`."""
        for h in self._hooks:
            try:
                h.remove()
            except Exception as err:  # pragma: no cover - defensive
                logger.debug("removing a forward hook failed: %s", err)
        self._hooks.clear()

    def count(self, batch: Mapping[str, Any]) -> None:
        """Count a batch now (plain loops that do not :meth:`watch` the model)."""
        target = self._train_tokens if self._mode in (None, "train") else self._other_tokens
        target.observe((), batch)

    def step(
        self,
        batch: Mapping[str, Any] | None = None,
        *,
        examples: int | None = None,
        tokens_padded: int | None = None,
        tokens_nonpadding: int | None = None,
    ) -> None:
        """End one optimizer step of a plain loop.

        Args:
            batch: the step's batch (``input_ids``/``attention_mask``), counted now. Leave it out
                when the model is watched (its forward calls are already counted).
            examples, tokens_padded, tokens_nonpadding: explicit counts instead of a batch.
        """
        if not self.running:  # outside the meter's window: nothing to attribute it to
            return
        if batch is not None:
            self.count(batch)
        if examples is not None or tokens_padded is not None or tokens_nonpadding is not None:
            padded = int(tokens_padded or 0)
            nonpad = int(tokens_nonpadding if tokens_nonpadding is not None else padded)
            self._train_tokens.add_counts(WorkCounts(int(examples or 0), 1, padded, nonpad), [])
        self.step_end()

    def eval_in_train(self) -> WorkCounts:
        """Work of forward calls made in eval mode during training outside any phase (a plain
        loop evaluating without ``tracker.phase("eval")``): kept out of the training counts."""
        self._eval_in_train.add(self._eval_in_train_tokens.take())
        return _copy(self._eval_in_train)

    # ------------------------------------------------------------------ prediction and live figures
    def _plan_prediction(self) -> None:
        """The step from which :meth:`step_end` asks for a prediction."""
        total = self._total_steps
        if self._prediction is not None or not total or self._predict_after == 0:
            self._predict_at = _NEVER
            return
        after = self._predict_after
        self._predict_at = after if after is not None else max(10, math.ceil(0.1 * total))

    def _maybe_predict(self) -> None:
        total = self._total_steps
        if self._prediction is not None or not total or self._predict_after == 0:
            self._predict_at = _NEVER
            return
        after = self._predict_after
        if after is None:
            after = max(10, math.ceil(0.1 * total))
        if self._steps_done >= total:
            self._predict_at = _NEVER
            return
        if self._steps_done < after:
            return
        # Scheduled evaluations and checkpoints are part of the run: wait until the first of
        # each has been measured when it comes in the first half of the run (later ones are
        # named in the prediction's notes instead).
        for mode, first in self._first_event_steps.items():
            if first <= total // 2 and not self._mode_energies.get(mode):
                return
        from bertwatt.integrations.predict import predict_run

        self._prediction = predict_run(self.snapshot(for_prediction=True))
        self._predict_at = _NEVER
        if self._prediction is None:  # no step record measured yet: wait for the next one
            self._predict_retry = True
            return
        logger.info("bertwatt: %s", self._prediction.message())

    def live_metrics(self) -> dict[str, float]:
        """Every ``energy/...`` figure for the Trainer's log (cheap: no report is built);
        see :func:`bertwatt.integrations.figures.live_metrics`."""
        from bertwatt.integrations.figures import live_metrics

        return live_metrics(self.snapshot(for_prediction=self._prediction is not None))

    def step_record_totals(self) -> dict[str, float]:
        """Per-step record totals (steps, energy_j, examples, tokens), earlier segments included."""
        from bertwatt.integrations.figures import step_record_totals

        return step_record_totals(self.snapshot())

    # ------------------------------------------------------------------ report
    def build_report(self, base: EnergyReport) -> FinetuneReport:
        """The :class:`FinetuneReport` of this session on top of the meter's report ``base``."""
        from bertwatt.integrations.build import build_finetune_report

        if self._run_id is None:
            self._run_id = base.run_id
        return build_finetune_report(self.snapshot(), base)
