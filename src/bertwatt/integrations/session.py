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
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from bertwatt.errors import ConfigError
from bertwatt.integrations.steps import StepLog
from bertwatt.integrations.tokens import TokenCounter, WorkCounts

if TYPE_CHECKING:
    from bertwatt.integrations.plan import RunPlan
    from bertwatt.integrations.predict import Prediction
    from bertwatt.integrations.report import FinetuneReport
    from bertwatt.integrations.resume import Previous
    from bertwatt.meter import EnergyMeter
    from bertwatt.report.models import EnergyReport

__all__ = ["FinetuneSession"]

logger = logging.getLogger(__name__)

_J_PER_KWH = 3.6e6
_EVAL_IN_TRAIN_FIX = (
    "the watched model ran forward calls in eval mode (model.eval()) inside training, outside "
    'tracker.phase("eval"): their examples and tokens are counted apart from training, but their '
    'energy stays in the train phase. Fix: wrap the evaluation in `with tracker.phase("eval"):`'
)
#: A step record covers at least this many times the cost of one meter mark (marks then take
#: at most ~0.1 % of training time) ...
_MARK_SHARE_INV = 1000
#: ... but never waits longer than this for its closing mark.
_MAX_RECORD_WAIT_NS = 1_000_000_000
#: Modes a non-training forward call may leave for an automatically opened ``eval``.
_EVAL_FROM = (None, "train", "checkpoint")


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
    """

    def __init__(
        self,
        meter: EnergyMeter,
        *,
        max_step_records: int = 2048,
        predict_after_steps: int | None = None,
        total_steps: int | None = None,
        pad_token_id: int | None = None,
        auto_eval: bool = False,
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
        self.meter = meter
        self.step_log = StepLog(max_step_records)
        self.train_tokens = TokenCounter(pad_token_id)
        self.other_tokens = TokenCounter(pad_token_id)
        #: forward calls in eval mode (``model.eval()``) while training, outside any phase
        self.eval_in_train_tokens = TokenCounter(pad_token_id)
        self._eval_in_train = WorkCounts()
        self.auto_eval = auto_eval
        self.predict_after_steps = predict_after_steps
        self.total_steps = total_steps
        self.expected_evals: int | None = None
        self.expected_saves: int | None = None
        self.counts: dict[str, WorkCounts] = {}
        self.phase_steps: dict[str, int] = {}
        self.mode_energies: dict[str, list[float]] = {}
        self.modes_used: list[str] = []
        self.mode: str | None = None
        self.epoch: str | None = None
        self.steps_done = 0
        self.warnings: list[str] = []
        self.prediction: Prediction | None = None
        self.train_start_mark: int | None = None
        self.train_end_mark: int | None = None
        self.extra: dict[str, Any] = {}
        self.grouped_by_length: bool | None = None
        self.grouping_hint: str | None = None
        self.perspective: dict[str, Any] = {}
        #: run facts for ``report.run`` (model, batching, data set sizes): see ``runinfo``
        self.run_facts: dict[str, Any] = {}
        #: the earlier sessions of a resumed run (None: not resumed, or nothing carried over)
        self.previous: Previous | None = None
        #: how this session ended: "running" until the caller says "completed", "error" or
        #: "interrupted"
        self.ended_by = "running"
        #: run id of the meter window this session measures (pinned at the first report built)
        self.run_id: str | None = None
        self._stated: dict[str, Any] = {}
        self._chain: int | None = None
        self._chain_ns = 0  # meter clock time of the last mark
        self._mark_cost_ns = 0.0  # smoothed time one meter mark takes (meter clock)
        self._hooks: list[Any] = []
        from bertwatt.integrations.predict import IntensityNow

        self.intensity_now = IntensityNow(meter)

    # ------------------------------------------------------------------ state
    @property
    def watching(self) -> bool:
        """True while forward hooks installed by :meth:`watch` are in place."""
        return bool(self._hooks)

    @property
    def running(self) -> bool:
        """True while the meter runs."""
        return self.meter.running

    def warn(self, message: str) -> None:
        """Record a problem for the report (once per message)."""
        if message not in self.warnings:
            self.warnings.append(message)
            logger.warning("bertwatt: %s", message)

    def _count(self, names: tuple[str | None, ...], counts: WorkCounts, steps: int) -> None:
        for name in names:
            if name is None:
                continue
            self.counts.setdefault(name, WorkCounts()).add(counts)
            self.phase_steps[name] = self.phase_steps.get(name, 0) + steps

    # ------------------------------------------------------------------ modes
    def begin_train(self, plan: RunPlan | None = None) -> None:
        """Training starts: take the run ``plan`` (what the run will do, as far as known),
        remember the edge and enter the ``train`` mode."""
        if plan is not None:
            self._apply(plan)
        self.train_start_mark = self._mark()
        self.train_end_mark = None
        self.set_mode("train")

    def _apply(self, plan: RunPlan) -> None:
        if plan.total_steps is not None:
            self.total_steps = plan.total_steps
        self.expected_evals = plan.expected_evals
        self.expected_saves = plan.expected_saves
        self.grouped_by_length = plan.grouped_by_length
        self.grouping_hint = plan.grouping_hint
        if plan.pad_token_id is not None:
            for counter in (self.train_tokens, self.other_tokens, self.eval_in_train_tokens):
                counter.pad_token_id = plan.pad_token_id
        if plan.trainer:
            self.extra.setdefault("trainer", {}).update(plan.trainer)

    def end_train(self) -> None:
        """Training ends: close every phase and remember the edge."""
        if self.epoch is not None:
            self.epoch_end()
        self.set_mode(None)
        if self.running:
            self.train_end_mark = self._mark()

    def set_mode(self, mode: str | None) -> None:
        """Leave the current mode and enter ``mode`` (None: no phase open)."""
        if mode == self.mode or not self.running:
            if not self.running:
                self.mode = mode
            return
        self._leave()
        self.mode = mode
        if mode is None:
            return
        if mode not in self.modes_used:
            self.modes_used.append(mode)
        if mode != "train":
            self.meter.begin(mode)
            return
        m = self._mark()  # one edge shared by the phases and the first step record
        self.meter.begin(mode, at=m)
        if self.epoch is not None:
            self.meter.begin(self.epoch, at=m)
        self._chain = m

    def _leave(self) -> None:
        mode = self.mode
        if mode is None:
            return
        if mode == "train":
            m = self._close_block()
            rest = self.train_tokens.take()
            if rest.batches:  # forward calls after the last step (no optimizer step)
                self._count(("train", self.epoch), rest, 0)
            if self.epoch is not None:
                self.meter.end(self.epoch, at=m)
            self.meter.end("train", at=m)
            self._chain = None
            return
        counts = self.other_tokens.take()
        self._count((mode,), counts, counts.batches)
        we = self.meter.end(mode)
        if we.energy_j is not None:
            self.mode_energies.setdefault(mode, []).append(we.energy_j)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Run a block as mode ``name`` (training pauses), then return to the previous mode."""
        if not isinstance(name, str) or not name.strip() or name.startswith("epoch-"):
            raise ConfigError(
                f"a phase name must be a non-empty string not starting with 'epoch-', got {name!r}"
            )
        previous = self.mode
        self.set_mode(name)
        try:
            yield
        finally:
            self.set_mode(previous)

    def epoch_begin(self, name: str) -> None:
        """An epoch starts (phase ``name``, e.g. ``epoch-1``)."""
        if self.epoch is not None:
            self.epoch_end()
        self.epoch = name
        if self.mode == "train" and self.running:
            m = self._close_block()
            self.meter.begin(name, at=m)
            self._chain = m

    def epoch_end(self) -> None:
        """The current epoch ends."""
        if self.epoch is None:
            return
        if self.mode == "train" and self.running:
            m = self._close_block()
            rest = self.train_tokens.take()
            if rest.batches:
                self._count(("train", self.epoch), rest, 0)
            self.meter.end(self.epoch, at=m)
        self.epoch = None

    def restart_chain(self) -> None:
        """Start the next step's record here (leaves work just done, e.g. a save, out of steps)."""
        if self.mode == "train" and self.running and self.step_log.pending_steps == 0:
            self._chain = self._mark()

    # ------------------------------------------------------------------ steps and tokens
    def _mark(self) -> int:
        """A meter mark, timed: the step records' length adapts to what a mark costs."""
        clock = self.meter.clock
        t0 = clock.monotonic_ns()
        m = self.meter.mark()
        t1 = clock.monotonic_ns()
        self._mark_cost_ns += (t1 - t0 - self._mark_cost_ns) * 0.2
        self._chain_ns = t1
        return m

    def _record_due(self) -> bool:
        """True when the open step record is long enough to close: it covers at least
        ``_MARK_SHARE_INV`` times what a mark costs (at most 1 s), so marks take at most about
        0.1 % of training time. With a fake clock marks cost nothing: every step is closed."""
        cost = self._mark_cost_ns
        if cost <= 0:
            return True
        elapsed = self.meter.clock.monotonic_ns() - self._chain_ns
        return elapsed >= min(cost * _MARK_SHARE_INV, _MAX_RECORD_WAIT_NS)

    def chain_point(self) -> tuple[int, int]:
        """``(mark, optimizer steps done at that mark)``: the latest edge that closed a step
        record while training runs, else a new mark now (for predictions)."""
        if self._chain is not None and self.mode == "train":
            return self._chain, self.steps_done - self.step_log.pending_steps
        return self._mark(), self.steps_done

    def _close_block(self) -> int:
        """Mark an edge now; close the pending step records there. Returns the mark."""
        m = self._mark()
        if self.step_log.pending_steps and self._chain is not None:
            self.step_log.close(self._chain, m, self.meter)
            self._chain = m
        return m

    def step_end(self, step: int | None = None) -> None:
        """One optimizer step ended (its forward calls have been observed or counted)."""
        if not self.running:
            return
        if self.mode != "train":
            self.set_mode("train")
        counts = self.train_tokens.take()
        self.steps_done += 1
        self._count(("train", self.epoch), counts, 1)
        if self.step_log.add_step(step if step is not None else self.steps_done, counts) and (
            self._record_due()
        ):
            self._close_block()
        self._maybe_predict()

    def observe(self, args: tuple[Any, ...], kwargs: Mapping[str, Any], *, training: bool) -> None:
        """Queue one forward call of the watched model."""
        if not self.running:
            return
        if self.auto_eval:
            if training:
                self.train_tokens.observe(args, kwargs)
                return
            if self.mode in _EVAL_FROM:
                self.set_mode("eval")
            self.other_tokens.observe(args, kwargs)
            return
        if self.mode in (None, "train"):
            if not training:  # evaluation inside the loop without tracker.phase("eval")
                if not self.eval_in_train_tokens.pending and not self._eval_in_train.batches:
                    logger.warning("bertwatt: %s", _EVAL_IN_TRAIN_FIX)
                self.eval_in_train_tokens.observe(args, kwargs)
                return
            self.train_tokens.observe(args, kwargs)
        else:
            self.other_tokens.observe(args, kwargs)

    def watch(self, model: Any) -> None:
        """Count the tokens of every forward call of ``model`` (a ``torch.nn.Module``)."""
        session = self

        def hook(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            try:
                session.observe(args, kwargs, training=bool(getattr(module, "training", True)))
            except Exception as err:  # counting must never break a forward call
                session.warn(f"token counting failed and was skipped: {type(err).__name__}: {err}")

        if "model_class" not in self.run_facts:
            from bertwatt.integrations.runinfo import model_facts

            try:
                self.run_facts.update(model_facts(model))
            except Exception as err:  # facts are a courtesy; counting goes on
                self.warn(f"reading the model's size failed: {type(err).__name__}: {err}")
        if self.train_tokens.pad_token_id is None:
            pad = getattr(getattr(model, "config", None), "pad_token_id", None)
            if isinstance(pad, int):
                self.train_tokens.pad_token_id = pad
                self.other_tokens.pad_token_id = pad
                self.eval_in_train_tokens.pad_token_id = pad
        self._hooks.append(model.register_forward_pre_hook(hook, with_kwargs=True))

    def unwatch(self) -> None:
        """Remove the forward hooks installed by :meth:`watch`."""
        for h in self._hooks:
            try:
                h.remove()
            except Exception as err:  # pragma: no cover - defensive
                logger.debug("removing a forward hook failed: %s", err)
        self._hooks.clear()

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

    @property
    def stated_facts(self) -> dict[str, Any]:
        """The run facts given to :meth:`describe`."""
        return dict(self._stated)

    def count(self, batch: Mapping[str, Any]) -> None:
        """Count a batch now (plain loops that do not :meth:`watch` the model)."""
        target = self.train_tokens if self.mode in (None, "train") else self.other_tokens
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
        if batch is not None:
            self.count(batch)
        if examples is not None or tokens_padded is not None or tokens_nonpadding is not None:
            padded = int(tokens_padded or 0)
            nonpad = int(tokens_nonpadding if tokens_nonpadding is not None else padded)
            self.train_tokens.add_counts(WorkCounts(int(examples or 0), 1, padded, nonpad), [])
        self.step_end()

    def eval_in_train(self) -> WorkCounts:
        """Work of forward calls made in eval mode during training outside any phase (a plain
        loop evaluating without ``tracker.phase("eval")``): kept out of the training counts."""
        self._eval_in_train.add(self.eval_in_train_tokens.take())
        out = WorkCounts()
        out.add(self._eval_in_train)
        return out

    # ------------------------------------------------------------------ prediction and live figures
    def _maybe_predict(self) -> None:
        total = self.total_steps
        if self.prediction is not None or not total or self.predict_after_steps == 0:
            return
        after = self.predict_after_steps
        if after is None:
            after = max(10, math.ceil(0.1 * total))
        if self.steps_done < after or self.steps_done >= total:
            return
        from bertwatt.integrations.predict import predict_run

        self.prediction = predict_run(self)
        if self.prediction is not None:
            logger.info("bertwatt: %s", self.prediction.message())

    def live_metrics(self) -> dict[str, float]:
        """``energy/...`` figures for the Trainer's log (cheap: no report is built).

        Cumulative over the segments of a resumed run: the earlier sessions' checkpointed
        figures are added to this session's.
        """
        from bertwatt.integrations.predict import predict_run

        out: dict[str, float] = {}
        prev = self.previous
        snap = self.meter.snapshot()
        energy_now = snap.energy_j
        if prev is not None and energy_now is not None:
            energy_now = None if prev.energy_j is None else prev.energy_j + energy_now
        if energy_now is not None:
            out["energy/kwh"] = energy_now / _J_PER_KWH
        if snap.energy_j is not None and snap.duration_s > 0:
            out["energy/mean_power_w"] = snap.energy_j / snap.duration_s
        self.step_log.resolve(self.meter)
        steps, energy, counts, _ = self.step_log.totals()
        if prev is not None:
            r = prev.step_records
            steps += int(r.get("steps", 0))
            energy += r.get("energy_j", 0.0)
            counts = WorkCounts(
                examples=counts.examples + int(r.get("examples", 0)),
                tokens_padded=counts.tokens_padded + int(r.get("tokens_padded", 0)),
                tokens_nonpadding=counts.tokens_nonpadding + int(r.get("tokens_nonpadding", 0)),
            )
        if steps:
            out["energy/j_per_step"] = energy / steps
        if counts.examples:
            out["energy/j_per_example"] = energy / counts.examples
        if counts.tokens_padded:
            out["energy/j_per_token_padded"] = energy / counts.tokens_padded
        if counts.tokens_nonpadding:
            out["energy/j_per_token_nonpadding"] = energy / counts.tokens_nonpadding
        train = WorkCounts()
        train.add(self.counts.get("train", WorkCounts()))
        if prev is not None:
            train.tokens_padded += prev.tokens_padded
            train.tokens_nonpadding += prev.tokens_nonpadding
        if train.padding_share is not None:
            out["energy/padding_share"] = train.padding_share
        factor = self.intensity_now()
        if factor is not None and snap.energy_j is not None:
            grams = snap.energy_j / _J_PER_KWH * factor
            if prev is None:
                out["energy/gco2e"] = grams
            elif prev.emissions_g is not None:
                out["energy/gco2e"] = prev.emissions_g + grams
        if self.prediction is not None:
            now = predict_run(self) or self.prediction
            predicted: float | None = now.energy_j
            if prev is not None and predicted is not None:
                predicted = None if prev.energy_j is None else prev.energy_j + predicted
            if predicted is not None:
                out["energy/predicted_kwh"] = predicted / _J_PER_KWH
                if factor is not None:
                    out["energy/predicted_gco2e"] = predicted / _J_PER_KWH * factor
        return out

    def step_record_totals(self) -> dict[str, float]:
        """Per-step record totals (steps, energy_j, examples, tokens), earlier segments included."""
        self.step_log.resolve(self.meter)
        steps, energy, counts, _ = self.step_log.totals()
        out = {
            "steps": float(steps),
            "energy_j": energy,
            "examples": float(counts.examples),
            "tokens_padded": float(counts.tokens_padded),
            "tokens_nonpadding": float(counts.tokens_nonpadding),
        }
        if self.previous is not None:
            for k, v in self.previous.step_records.items():
                out[k] = out.get(k, 0.0) + v
        return out

    # ------------------------------------------------------------------ report
    def build_report(self, base: EnergyReport) -> FinetuneReport:
        """The :class:`FinetuneReport` of this session on top of the meter's report ``base``."""
        from bertwatt.integrations.build import build_finetune_report

        return build_finetune_report(self, base)
