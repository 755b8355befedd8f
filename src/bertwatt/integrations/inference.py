"""``measure_inference``: energy per query and per token of a model, a pipeline or a Trainer.

::

    report = bertwatt.measure_inference(model, texts, tokenizer=tokenizer, batch_size=32)
    report.j_per_query, report.j_per_token_nonpadding

The first ``warmup_batches`` batches run first in a ``warmup`` phase (lazy initialisation, first
call costs) and are then processed again with everything else in the ``inference`` phase, which
alone gives the per-query figures. Tokens are counted from the tensors the model receives (a
forward pre-hook), so pipelines' own batching and padding are counted as they really happen.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from bertwatt.errors import ConfigError, ReportError
from bertwatt.integrations.report import InferenceReport, figures_basis
from bertwatt.integrations.tokens import TokenCounter, WorkCounts
from bertwatt.report.checks import emit_warnings

if TYPE_CHECKING:
    from bertwatt.meter import EnergyMeter
    from bertwatt.report.models import EnergyReport

__all__ = ["measure_inference"]

logger = logging.getLogger(__name__)


def _is_pipeline(obj: Any) -> bool:
    return hasattr(obj, "model") and hasattr(obj, "preprocess") and callable(obj)


def _is_trainer(obj: Any) -> bool:
    return hasattr(obj, "predict") and hasattr(obj, "callback_handler")


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _to_device(batch: Mapping[str, Any], device: Any) -> dict[str, Any]:
    return {k: (v.to(device) if hasattr(v, "to") else v) for k, v in batch.items()}


def measure_inference(
    model_or_pipeline: Any,
    inputs: Iterable[Any],
    *,
    batch_size: int = 8,
    tokenizer: Any = None,
    max_length: int | None = None,
    padding: bool | str = True,
    warmup_batches: int = 1,
    meter: EnergyMeter | None = None,
    **meter_options: Any,
) -> InferenceReport:
    """Measure inference and return energy per query and per token.

    Args:
        model_or_pipeline: a ``torch.nn.Module`` (e.g. a ``PreTrainedModel``), a
            ``transformers`` pipeline, or a ``Trainer`` (``trainer.predict(inputs)``).
        inputs: texts (a model then needs ``tokenizer``), pre-tokenised batches (mappings of
            tensors, each one batch), a pipeline's inputs, or a Trainer's dataset.
        batch_size: texts per batch (models and pipelines).
        tokenizer: tokenises texts for a model: ``tokenizer(texts, padding=padding,
            truncation=True, max_length=max_length, return_tensors="pt")``.
        max_length, padding: tokenisation options for texts.
        warmup_batches: batches run first in a separate ``warmup`` phase (0: none).
        meter: a meter to use (left running if it already runs) instead of ``meter_options``.
        **meter_options: :class:`~bertwatt.EnergyMeter` options.

    Raises:
        ConfigError: bad arguments (e.g. texts for a model without a tokenizer).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if (
        isinstance(warmup_batches, bool)
        or not isinstance(warmup_batches, int)
        or warmup_batches < 0
    ):
        raise ConfigError(f"warmup_batches must be an int >= 0, got {warmup_batches!r}")
    from bertwatt.meter import EnergyMeter

    if meter is None:
        meter = EnergyMeter(**meter_options)
    elif meter_options:
        raise ConfigError("give either meter= or meter options, not both")
    target = model_or_pipeline
    if _is_trainer(target):
        model = target.model
        run, warm, queries = _trainer_runner(target, inputs)
        included = (
            "Trainer.predict: data loading and collation included, tokenisation done beforehand",
            False,
        )
    elif _is_pipeline(target):
        model = target.model
        run, warm, queries = _pipeline_runner(target, inputs, batch_size, warmup_batches)
        included = ("pipeline: tokenisation, model forward and post-processing included", True)
    elif hasattr(target, "register_forward_pre_hook"):
        model = target
        run, warm, queries = _model_runner(
            target, inputs, batch_size, tokenizer, max_length, padding, warmup_batches
        )
        included = (
            ("texts: tokenisation and model forward included", True)
            if queries is not None
            else ("pre-tokenised batches: model forward only, tokenisation not included", False)
        )
    else:
        raise ConfigError(
            f"measure_inference needs a torch model, a transformers pipeline or a Trainer, "
            f"got {type(target).__name__}"
        )
    pad = getattr(getattr(model, "config", None), "pad_token_id", None)
    counter = TokenCounter(pad if isinstance(pad, int) else None)

    def hook(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            counter.observe(args, kwargs)
        except Exception as err:  # counting must never break inference
            logger.debug("token counting failed: %s", err)

    handle = model.register_forward_pre_hook(hook, with_kwargs=True)
    owns = not meter.running
    if owns:
        meter.start()
    try:
        warm_counts = WorkCounts()
        if warm is not None:
            with meter.phase("warmup"):
                warm()
            warm_counts = counter.take()
        with meter.phase("inference"):
            run()
        counts = counter.take()
    finally:
        handle.remove()
        base = meter.stop(warn=False) if owns and meter.running else meter.partial_report()
    report = _report(base, counts, warm_counts, queries, batch_size, _is_trainer(target))
    report = _with_setting(report, counter, included)
    output = meter.config.output
    if owns and output is not None:  # the meter wrote its energy report there: keep this one
        try:
            report.to_json(output)
        except ReportError as err:
            report.warnings.append(f"the inference report was not written: {err}")
    emit_warnings(report, stacklevel=2)
    return report


def _report(
    base: EnergyReport,
    counts: WorkCounts,
    warm: WorkCounts,
    queries: int | None,
    batch_size: int,
    trainer: bool,
) -> InferenceReport:
    phase = base.phases.get("inference")
    energy = phase.energy_j if phase is not None else None
    n = queries if queries is not None else counts.examples

    def ratio(count: int) -> float | None:
        return energy / count if energy is not None and count > 0 else None

    data = base.model_dump()
    data.update(
        queries=n,
        batches=counts.batches,
        batch_size=None if trainer else batch_size,
        warmup_queries=warm.examples,
        tokens_padded=counts.tokens_padded,
        tokens_nonpadding=counts.tokens_nonpadding,
        j_per_query=ratio(n),
        j_per_token_padded=ratio(counts.tokens_padded),
        j_per_token_nonpadding=ratio(counts.tokens_nonpadding),
        figures=figures_basis(base),
    )
    return InferenceReport.model_validate(data)


def _with_setting(
    report: InferenceReport, counter: TokenCounter, included: tuple[str, bool]
) -> InferenceReport:
    """State the setting J per query holds for: batch size, sequence lengths, what was timed."""
    what, tokenises = included
    padded = counter.lengths.padded_lengths
    longest = max(padded) if padded else None
    per_query = report.tokens_padded / report.queries if report.queries else None
    sizes = counter.lengths.batch_examples
    if report.batch_size is not None:
        batch = f"batch size {report.batch_size}"
    elif sizes:
        batch = f"batch size {max(sizes, key=lambda k: sizes[k])} (most frequent)"
    else:
        batch = "batch size unknown"
    lengths = (
        f"{per_query:.3g} tokens per query on average (padding included)"
        + (f", longest batch {longest} tokens" if longest is not None else "")
        if per_query is not None
        else "sequence lengths unknown"
    )
    warm = f"{report.warmup_queries} warm-up queries excluded" if report.warmup_queries else ""
    setting = "; ".join(x for x in (batch, lengths, what, warm) if x)
    return report.model_copy(
        update={
            "sequence_length_mean": per_query,
            "sequence_length_max": longest,
            "tokenization_included": tokenises,
            "setting": setting,
        }
    )


def _no_grad() -> contextlib.AbstractContextManager[Any]:
    import torch

    return torch.inference_mode()


def _model_runner(
    model: Any,
    inputs: Iterable[Any],
    batch_size: int,
    tokenizer: Any,
    max_length: int | None,
    padding: bool | str,
    warmup_batches: int,
) -> tuple[Any, Any, int | None]:
    items = list(inputs)
    if not items:
        raise ConfigError("measure_inference got no inputs")
    if all(isinstance(x, str) for x in items):
        if tokenizer is None:
            raise ConfigError(
                "texts need a tokenizer: measure_inference(model, texts, tokenizer=tokenizer)"
            )
        groups: list[Any] = list(_batches(items, batch_size))
        queries: int | None = len(items)
        texts = True
    elif all(isinstance(x, Mapping) for x in items):
        groups = items
        queries = None
        texts = False
    else:
        raise ConfigError(
            "inputs for a model must be texts (with tokenizer=) or batches (mappings of tensors)"
        )

    def prepare(group: Any) -> Mapping[str, Any]:
        if not texts:
            return group
        encoded: Mapping[str, Any] = tokenizer(
            list(group),
            padding=padding,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        return encoded

    try:
        device = next(model.parameters()).device
    except (StopIteration, AttributeError):
        device = None

    def run_groups(selected: Sequence[Any]) -> None:
        was_training = bool(getattr(model, "training", False))
        model.eval()
        try:
            with _no_grad():
                for g in selected:
                    batch = prepare(g)
                    if device is not None:
                        batch = _to_device(batch, device)
                    model(**batch)
        finally:
            if was_training:
                model.train()

    warm = (lambda: run_groups(groups[:warmup_batches])) if warmup_batches else None
    return (lambda: run_groups(groups)), warm, queries


def _pipeline_runner(
    pipe: Any, inputs: Iterable[Any], batch_size: int, warmup_batches: int
) -> tuple[Any, Any, int | None]:
    items = list(inputs)
    if not items:
        raise ConfigError("measure_inference got no inputs")

    def call(selected: list[Any]) -> None:
        model = pipe.model
        was_training = bool(getattr(model, "training", False))
        model.eval()  # inference never runs with dropout, whatever state the model was left in
        try:
            for _ in pipe(selected, batch_size=batch_size):
                pass
        finally:
            if was_training:
                model.train()

    warm = None
    if warmup_batches:
        head = items[: warmup_batches * batch_size]

        def warm() -> None:
            call(head)

    return (lambda: call(items)), warm, len(items)


def _trainer_runner(trainer: Any, dataset: Any) -> tuple[Any, Any, int | None]:
    def run() -> None:
        trainer.predict(dataset)

    try:
        n: int | None = len(dataset)
    except TypeError:
        n = None
    return run, None, n
