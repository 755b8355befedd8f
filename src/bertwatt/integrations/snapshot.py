"""What a fine-tuning session hands to the modules that read it: one frozen, typed snapshot.

:class:`~bertwatt.integrations.session.FinetuneSession` keeps its state to itself. The report
builder (:mod:`~bertwatt.integrations.build`), the live log figures
(:mod:`~bertwatt.integrations.figures`), the prediction (:mod:`~bertwatt.integrations.predict`)
and the checkpoint figures (:mod:`~bertwatt.integrations.trainer_state`) read a
:class:`SessionSnapshot`, made by :meth:`FinetuneSession.snapshot` when they need one (at a log,
a checkpoint, a report; never per step). This module imports no other part of the integration
but the leaf modules of its value types, so none of those readers imports the session module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bertwatt.integrations.steps import StepLog
from bertwatt.integrations.tokens import LengthStats, WorkCounts

if TYPE_CHECKING:
    from bertwatt.integrations.resume import Previous
    from bertwatt.meter import EnergyMeter

__all__ = ["Prediction", "SessionSnapshot"]


@dataclass(frozen=True, slots=True)
class Prediction:
    """A whole-run energy prediction.

    Attributes:
        at_step: optimizer steps measured when it was made.
        total_steps: optimizer steps of the whole run.
        energy_j: predicted energy from train begin to train end (J).
        basis: how it was computed, in words and numbers.
        notes: what it leaves out.
    """

    at_step: int
    total_steps: int
    energy_j: float
    basis: str
    notes: tuple[str, ...] = ()

    def message(self) -> str:
        """A one-line log message."""
        return (
            f"predicted energy of the run after {self.at_step}/{self.total_steps} steps: "
            f"{self.energy_j:,.1f} J ({self.energy_j / 3.6e6:.6f} kWh)"
        )


@dataclass(frozen=True, slots=True)
class SessionSnapshot:
    """A fine-tuning session's figures at one moment (copies; the meter and step log by
    reference: their own modules own their state).

    Attributes:
        meter: the meter the session measures on.
        step_log: per-step records (closed records only).
        counts: work per phase (``train``, ``epoch-N``, ``eval``, ...).
        phase_steps: optimizer steps (training phases) or batches (others) per phase.
        modes_used: modes entered, in order (the phases that partition the run).
        steps_done: optimizer steps of this session.
        chain_mark: the latest mark that closed step records while training runs (else a mark
            made for the snapshot), and ``chain_steps`` the steps done at it.
        train_start_mark, train_end_mark: the edges of training (None: not there yet).
        total_steps, expected_evals, expected_saves: the run plan's figures (None: unknown).
        mode_energies: energies (J) of every completed evaluation, checkpoint, ... by mode.
        prediction: the prediction made during the run, if any.
        previous: the earlier sessions of a resumed run (None: not resumed).
        train_lengths: length statistics of the training forward calls.
        eval_in_train: work of eval-mode forward calls inside training outside any phase.
        auto_eval: forward calls routed by the model's mode (the Trainer path).
        run_facts: run facts observed (model, batching, data set sizes).
        stated_facts: run facts stated with ``describe`` (they win).
        extra: the session's entries for ``report.extra``.
        warnings: problems recorded for the report.
        grouped_by_length, grouping_hint: the run plan's batching facts.
        perspective: ``inference``, ``pretraining_energy_kwh``, ``pretraining_source``.
        ended_by: ``running``, ``completed``, ``error`` or ``interrupted``.
        run_id: run id of the meter window (None until the first report is built).
        intensity_g_per_kwh: carbon intensity x PUE now, for live figures (None: none).
    """

    meter: EnergyMeter
    step_log: StepLog
    counts: Mapping[str, WorkCounts]
    phase_steps: Mapping[str, int]
    modes_used: tuple[str, ...]
    steps_done: int
    chain_mark: int | None
    chain_steps: int
    train_start_mark: int | None
    train_end_mark: int | None
    total_steps: int | None
    expected_evals: int | None
    expected_saves: int | None
    mode_energies: Mapping[str, tuple[float, ...]]
    prediction: Prediction | None
    previous: Previous | None
    train_lengths: LengthStats
    eval_in_train: WorkCounts
    auto_eval: bool
    run_facts: Mapping[str, Any]
    stated_facts: Mapping[str, Any]
    extra: Mapping[str, Any]
    warnings: tuple[str, ...]
    grouped_by_length: bool | None
    grouping_hint: str | None
    perspective: Mapping[str, Any]
    ended_by: str
    run_id: str | None
    intensity_g_per_kwh: float | None

    def phase_counts(self, name: str) -> WorkCounts:
        """The work of phase ``name`` (zeros when none)."""
        return self.counts.get(name) or WorkCounts()
