"""``measure_finetune``: a fine-tuning run (a Trainer, or a plain callable) under a meter.

The Trainer path attaches an :class:`~bertwatt.integrations.transformers.EnergyCallback` that
drives a :class:`~bertwatt.integrations.session.FinetuneSession` owned here, then evaluates in an
``eval`` phase; the callable path hands the session to the function as its ``tracker``. Only the
Trainer path imports ``transformers``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bertwatt.errors import ConfigError
from bertwatt.integrations.session import FinetuneSession
from bertwatt.meter import EnergyMeter
from bertwatt.report.checks import emit_warnings

if TYPE_CHECKING:
    from bertwatt.integrations.report import FinetuneReport, InferenceReport

__all__ = ["measure_finetune"]

logger = logging.getLogger(__name__)


def _jsonable(metrics: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in (metrics or {}).items():
        if isinstance(v, bool | int | str) or v is None:
            out[str(k)] = v
        else:
            try:
                out[str(k)] = float(v)
            except (TypeError, ValueError):
                out[str(k)] = str(v)
    return out


def _takes_tracker(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return any(p.kind in kinds or p.kind == inspect.Parameter.VAR_POSITIONAL for p in params)


def measure_finetune(
    target: Any,
    *,
    evaluate: bool | Callable[[], Any] = True,
    meter: EnergyMeter | None = None,
    output: str | PathLike[str] | bool | None = None,
    total_steps: int | None = None,
    train_kwargs: Mapping[str, Any] | None = None,
    max_step_records: int = 2048,
    predict_after_steps: int | None = None,
    inference: InferenceReport | float | None = None,
    pretraining_energy_kwh: float | None = None,
    pretraining_source: str | None = None,
    **meter_options: Any,
) -> FinetuneReport:
    """Run a fine-tuning (and its evaluation) under a meter and return its :class:`FinetuneReport`.

    Args:
        target: a ``transformers.Trainer`` (``train()`` then, if it has an ``eval_dataset``,
            ``evaluate()``), or a plain callable: ``fn()`` or ``fn(tracker)``, where ``tracker``
            is a :class:`~bertwatt.integrations.session.FinetuneSession` (``tracker.step()``,
            ``tracker.watch(model)``, ``tracker.phase("eval")``).
        evaluate: for a Trainer, whether to evaluate after training; for a callable, a function
            run in an ``eval`` phase after it (True: nothing more).
        meter: a meter to use instead of building one from ``meter_options``.
        output: report path; None: ``<output_dir>/bertwatt/report.json`` for a Trainer, nothing
            for a callable; False: never write.
        total_steps: optimizer steps of a plain loop, for the prediction (a Trainer knows).
        train_kwargs: keyword arguments for ``trainer.train()`` (e.g. ``resume_from_checkpoint``).
        max_step_records, predict_after_steps, inference, pretraining_energy_kwh,
            pretraining_source: as for :class:`EnergyCallback`.
        **meter_options: :class:`~bertwatt.EnergyMeter` options (``backends``, ``interval_s``,
            ``carbon``, ``pue``, ...).

    Returns:
        The report. If training raises, the report up to that point is written (when there is
        an output path) and the exception propagates.
    """
    if meter is None:
        meter = EnergyMeter(**meter_options)
    elif meter_options:
        raise ConfigError(
            "give either meter= or meter options (backends, interval_s, ...), not both"
        )
    session = FinetuneSession(
        meter,
        max_step_records=max_step_records,
        predict_after_steps=predict_after_steps,
        total_steps=total_steps,
        auto_eval=hasattr(target, "callback_handler"),
        inference=inference,
        pretraining_energy_kwh=pretraining_energy_kwh,
        pretraining_source=pretraining_source,
    )
    if hasattr(target, "callback_handler") and hasattr(target, "train"):
        report = _measure_trainer(target, session, evaluate, output, train_kwargs)
    elif callable(target):
        report = _measure_callable(target, session, evaluate, output)
    else:
        raise ConfigError(
            f"measure_finetune needs a transformers.Trainer or a callable, got {target!r}"
        )
    emit_warnings(report, stacklevel=2)
    return report


def _ended_by(err: BaseException) -> str:
    """How a session that raised ended: stopped from outside, or failed."""
    return "interrupted" if isinstance(err, KeyboardInterrupt | SystemExit) else "error"


def _finish(session: FinetuneSession, owns: bool, path: Path | None) -> FinetuneReport:
    meter = session.meter
    base = meter.stop(warn=False) if owns and meter.running else meter.partial_report()
    report = session.build_report(base)
    if path is not None:
        report.to_json(path)
    return report


def _measure_trainer(
    trainer: Any,
    session: FinetuneSession,
    evaluate: bool | Callable[[], Any],
    output: str | PathLike[str] | bool | None,
    train_kwargs: Mapping[str, Any] | None,
) -> FinetuneReport:
    from bertwatt.integrations.transformers import EnergyCallback

    meter = session.meter
    callback = EnergyCallback(output=output, session=session)
    callback.attach(trainer)
    path = callback.report_path(trainer.args)
    owns = not meter.running
    if owns:
        meter.start()
    try:
        out = trainer.train(**dict(train_kwargs or {}))
        session.add_extra("train_metrics", _jsonable(getattr(out, "metrics", None)))
        if evaluate and getattr(trainer, "eval_dataset", None) is not None:
            session.set_mode("eval")
            metrics = trainer.evaluate()
            session.set_mode(None)
            session.add_extra("eval_metrics", _jsonable(metrics))
        if callable(evaluate):
            with session.phase("eval"):
                evaluate()
    except BaseException as err:
        session.warn(f"training raised {type(err).__name__}: {err}; the report stops there")
        session.mark_ended(_ended_by(err))
        try:
            session.set_mode(None)
            _finish(session, owns, path)
        except Exception as inner:
            logger.warning("bertwatt: writing the report after the failure failed: %s", inner)
        raise
    finally:
        session.unwatch()
        trainer.remove_callback(callback)
    session.mark_ended("completed")
    report = _finish(session, owns, path)
    if path is not None:
        from bertwatt.report.io import write_text_atomic

        write_text_atomic(path.with_name(path.stem + "-summary.txt"), report.summary() + "\n")
    return report


def _measure_callable(
    fn: Callable[..., Any],
    session: FinetuneSession,
    evaluate: bool | Callable[[], Any],
    output: str | PathLike[str] | bool | None,
) -> FinetuneReport:
    meter = session.meter
    path = Path(output) if output not in (None, False, True) else None  # type: ignore[arg-type]
    owns = not meter.running
    if owns:
        meter.start()
    try:
        session.begin_train()
        result = fn(session) if _takes_tracker(fn) else fn()
        if callable(evaluate):
            with session.phase("eval"):
                evaluate()
        session.end_train()
    except BaseException as err:
        session.warn(f"the training function raised {type(err).__name__}: {err}")
        session.mark_ended(_ended_by(err))
        try:
            session.end_train()
            _finish(session, owns, path)
        except Exception as inner:
            logger.warning("bertwatt: writing the report after the failure failed: %s", inner)
        raise
    finally:
        session.unwatch()
    if result is not None:
        session.add_extra(
            "result", _jsonable(result) if isinstance(result, Mapping) else repr(result)
        )
    session.mark_ended("completed")
    return _finish(session, owns, path)
