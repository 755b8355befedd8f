"""Integrations with training frameworks.

=========================== =====================================================================
module                      what it gives
=========================== =====================================================================
``transformers``            :class:`EnergyCallback` (a ``TrainerCallback``)
``finetune``                :func:`measure_finetune`: a Trainer or a plain training function
``inference``               :func:`measure_inference`: J per query and per token
``report``                  :class:`FinetuneReport`, :class:`InferenceReport` (re-exported from
                            :mod:`bertwatt.report.finetune`)
``session``                 :class:`FinetuneSession`: phases, steps, tokens (plain loops' tracker)
``resume``                  a resumed Trainer run: the figures a checkpoint carries
``runinfo``                 ``report.run``: model, sizes, precision, batching, FLOPs estimate
``tokens``, ``steps``       token accounting, per-step energies in bounded memory
``padding``, ``predict``,   padding analysis and remedies, run prediction, perspective,
``perspective``, ``build``  report assembly, text rendering
``render``
``demo``                    a small offline workload: tiny BERT, generated vocabulary and data set
=========================== =====================================================================

Importing this package loads nothing heavy: names resolve lazily, and only
``bertwatt.integrations.transformers`` (and ``demo``, and ``measure_finetune`` when given a
Trainer) import ``transformers``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bertwatt._lazy import lazy_names

if TYPE_CHECKING:
    from bertwatt.integrations.finetune import measure_finetune
    from bertwatt.integrations.inference import measure_inference
    from bertwatt.integrations.report import FinetuneReport, InferenceReport
    from bertwatt.integrations.session import FinetuneSession
    from bertwatt.integrations.transformers import EnergyCallback

__all__ = [
    "EnergyCallback",
    "FinetuneReport",
    "FinetuneSession",
    "InferenceReport",
    "measure_finetune",
    "measure_inference",
]

_LAZY = {
    "EnergyCallback": "bertwatt.integrations.transformers",
    "measure_finetune": "bertwatt.integrations.finetune",
    "measure_inference": "bertwatt.integrations.inference",
    "FinetuneReport": "bertwatt.report.finetune",
    "InferenceReport": "bertwatt.report.finetune",
    "FinetuneSession": "bertwatt.integrations.session",
}


__getattr__, __dir__ = lazy_names(__name__, globals(), _LAZY)
