"""The run plan: what a training run will do, handed to :class:`FinetuneSession` in one piece.

The Trainer callback reads the plan from ``TrainingArguments``/``TrainerState`` at train begin
(:func:`trainer_plan`), adds the run facts it read and, for a resumed run, the earlier sessions'
figures from the checkpoint; a plain loop states what it knows
(``measure_finetune(total_steps=...)``). The session keeps its own state: it takes the plan in
:meth:`FinetuneSession.begin_train`, the one entry for what a caller knows about the run, instead
of having its attributes set from outside.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bertwatt.integrations.resume import Previous

__all__ = ["RunPlan", "trainer_plan"]


@dataclass(frozen=True, slots=True)
class RunPlan:
    """What the coming training will do, as far as known (None: unknown).

    Attributes:
        total_steps: optimizer steps this ``train()`` call will run (for the prediction).
        expected_evals: evaluations it will run (scheduled ones and the one at the end).
        expected_saves: checkpoints it will save.
        first_eval_step: steps (of this call) before the first scheduled evaluation.
        first_save_step: steps (of this call) before the first scheduled checkpoint.
        grouped_by_length: whether batches are grouped by length.
        grouping_hint: the exact setting that groups batches by length in this version.
        pad_token_id: the padding id (used for batches without an attention mask).
        start_step: the optimizer step training starts at (> 0: resumed from a checkpoint).
        trainer: the Trainer's settings kept in ``report.extra["trainer"]``.
        run_facts: facts for ``report.run`` read by the caller (model, batching, data sets).
        previous: the earlier sessions of a resumed run, from the checkpoint (None: a new run,
            or the checkpoint carries no bertwatt figures).
    """

    total_steps: int | None = None
    expected_evals: int | None = None
    expected_saves: int | None = None
    first_eval_step: int | None = None
    first_save_step: int | None = None
    grouped_by_length: bool | None = None
    grouping_hint: str | None = None
    pad_token_id: int | None = None
    start_step: int = 0
    trainer: dict[str, Any] = field(default_factory=dict)
    run_facts: Mapping[str, Any] = field(default_factory=dict)
    previous: Previous | None = None


def _value(x: Any) -> str:
    return str(getattr(x, "value", x))


def expected_events(args: Any, state: Any) -> tuple[int | None, int | None]:
    """Evaluations and checkpoints this ``train()`` call will run (None: unknown).

    Counted from the Trainer's strategies over the steps still to run (a resumed run starts at
    ``state.global_step``), including the evaluation and save the Trainer adds at the last step.
    """
    max_steps = int(getattr(state, "max_steps", 0) or 0)
    start = int(getattr(state, "global_step", 0) or 0)
    epochs = math.ceil(float(getattr(state, "num_train_epochs", 0) or 0))
    epochs_done = math.floor(float(getattr(state, "epoch", 0) or 0))

    def count(strategy: str, every: Any) -> int | None:
        if strategy == "steps":
            n = int(every or 0)
            if n <= 0 or max_steps <= 0:
                return None
            return max_steps // n - start // n + (1 if max_steps % n else 0)
        if strategy == "epoch":
            return max(0, epochs - epochs_done)
        if strategy == "no":
            return 0
        return None

    evals = count(_value(args.eval_strategy), getattr(state, "eval_steps", None))
    if evals is not None and getattr(args, "eval_on_start", False):
        evals += 1
    saves = count(_value(args.save_strategy), getattr(state, "save_steps", None))
    return evals, saves


def first_steps(args: Any, state: Any) -> tuple[int | None, int | None]:
    """Steps (of this ``train()`` call) before the first evaluation and the first checkpoint."""
    max_steps = int(getattr(state, "max_steps", 0) or 0)
    start = int(getattr(state, "global_step", 0) or 0)
    epochs = math.ceil(float(getattr(state, "num_train_epochs", 0) or 0))

    def first(strategy: str, every: Any) -> int | None:
        if max_steps <= 0:
            return None
        if strategy == "steps":
            n = int(every or 0)
            return None if n <= 0 else min(max_steps, (start // n + 1) * n) - start
        if strategy == "epoch" and epochs > 0:
            per_epoch = max(1, max_steps // epochs)
            return min(max_steps, (start // per_epoch + 1) * per_epoch) - start
        return None

    evals = first(_value(args.eval_strategy), getattr(state, "eval_steps", None))
    if evals is not None and getattr(args, "eval_on_start", False):
        evals = 0
    return evals, first(_value(args.save_strategy), getattr(state, "save_steps", None))


def grouping(args: Any) -> tuple[bool, str]:
    """Whether batches are grouped by length, and the setting that groups them in this version."""
    strategy = getattr(args, "train_sampling_strategy", None)
    if strategy is not None:
        return (
            strategy == "group_by_length",
            "TrainingArguments(train_sampling_strategy='group_by_length')",
        )
    return bool(getattr(args, "group_by_length", False)), "TrainingArguments(group_by_length=True)"


def trainer_plan(args: Any, state: Any, processing_class: Any = None) -> RunPlan:
    """The plan of a ``Trainer.train()`` call, from its arguments and state at train begin."""
    max_steps = int(getattr(state, "max_steps", 0) or 0)
    start_step = int(getattr(state, "global_step", 0) or 0)
    evals, saves = expected_events(args, state)
    first_eval, first_save = first_steps(args, state)
    grouped, hint = grouping(args)
    pad = getattr(processing_class, "pad_token_id", None)
    return RunPlan(
        # a resumed run starts at global_step: predict the steps this call will run
        total_steps=max(0, max_steps - start_step) or None,
        expected_evals=evals,
        expected_saves=saves,
        first_eval_step=first_eval,
        first_save_step=first_save,
        grouped_by_length=grouped,
        grouping_hint=hint,
        pad_token_id=pad if isinstance(pad, int) and not isinstance(pad, bool) else None,
        start_step=start_step,
        trainer={
            "per_device_train_batch_size": args.per_device_train_batch_size,
            "gradient_accumulation_steps": args.gradient_accumulation_steps,
            "max_steps": max_steps,
            "start_step": start_step,
            "world_size": int(getattr(args, "world_size", 1) or 1),
        },
    )
