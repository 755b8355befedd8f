"""What was fine-tuned: the facts behind ``report.run`` (model, sizes, precision, batches, FLOPs).

Every field is a fact read from the objects themselves (the model's parameters and dtype, the
``TrainingArguments``, the data loaders, the forward calls bertwatt counted), or one the user
states with :meth:`FinetuneSession.describe`; a fact that is not known stays unset. The one
derived figure, ``flops_estimate``, is labelled as an estimate in ``flops_basis``.

=============================== ===========================================================
field                           source
=============================== ===========================================================
``model_class``                 ``type(model).__name__``
``model_name``                  ``model.name_or_path`` (``config._name_or_path``); unset for a
                                model built from a config
``parameters_total/trainable``  ``sum(p.numel())`` over ``model.parameters()`` (shared tensors
                                once), trainable: ``requires_grad``
``max_seq_length``              the longest padded sequence of a training forward call, observed
``precision``                   ``bf16-mixed``/``fp16-mixed`` (``TrainingArguments.bf16/fp16``),
                                else the dtype of the weights (``fp32``, ``bf16``, ...)
``batch_size``                  examples per device per forward call: ``per_device_train_batch_
                                size`` (Trainer), the most frequent training batch (plain loop)
``gradient_accumulation_steps`` ``TrainingArguments``; plain loop: only when stated (forward
                                calls per step are not always micro-batches)
``world_size``                  ``TrainingArguments.world_size``; plain loop: torch.distributed
``dataset_sizes``               ``len()`` of the training / evaluation data sets
``flops_estimate``              6 x ``parameters_total`` x training tokens processed (padding
                                included), see ``flops_basis``
=============================== ===========================================================
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from typing import Any

from bertwatt.errors import ConfigError

__all__ = [
    "RUN_FIELDS",
    "dataset_size",
    "flops_fields",
    "model_facts",
    "observed_batching",
    "trainer_facts",
    "validate_run_fields",
]

#: RunInfo fields a fine-tuning run may state (``describe``), with their types.
RUN_FIELDS: dict[str, type] = {
    "model_class": str,
    "model_name": str,
    "parameters_total": int,
    "parameters_trainable": int,
    "max_seq_length": int,
    "precision": str,
    "batch_size": int,
    "gradient_accumulation_steps": int,
    "world_size": int,
    "dataset_sizes": dict,
}

_DTYPES = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16", "float64": "fp64"}


def validate_run_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Check user-stated run facts (names, types, counts); ConfigError names the bad one."""
    out: dict[str, Any] = {}
    for name, value in fields.items():
        kind = RUN_FIELDS.get(name)
        if kind is None:
            raise ConfigError(
                f"unknown run field {name!r}; known: {', '.join(sorted(RUN_FIELDS))} "
                "(flops_estimate is computed, not stated)"
            )
        if value is None:
            continue
        if kind is int:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"run field {name} must be an int >= 1, got {value!r}")
        elif kind is str:
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"run field {name} must be a non-empty string, got {value!r}")
        else:
            if not isinstance(value, Mapping) or not all(
                isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0
                for k, v in value.items()
            ):
                raise ConfigError(
                    f"run field {name} must map names to example counts >= 0, got {value!r}"
                )
            value = dict(value)
        out[name] = value
    return out


def model_facts(model: Any) -> dict[str, Any]:
    """Class, name or path, parameter counts and weight precision of a ``torch.nn.Module``."""
    out: dict[str, Any] = {"model_class": type(model).__name__}
    name = getattr(model, "name_or_path", None)
    if not name:
        name = getattr(getattr(model, "config", None), "_name_or_path", None)
    if isinstance(name, str) and name.strip():
        out["model_name"] = name
    parameters = getattr(model, "parameters", None)
    if callable(parameters):
        total = trainable = 0
        dtypes: dict[str, int] = {}
        for p in parameters():
            n = int(p.numel())
            total += n
            if getattr(p, "requires_grad", False):
                trainable += n
            d = str(getattr(p, "dtype", "")).removeprefix("torch.")
            dtypes[d] = dtypes.get(d, 0) + n
        if total:
            out["parameters_total"] = total
            out["parameters_trainable"] = trainable
            main = max(dtypes, key=lambda k: dtypes[k])
            out["precision"] = _DTYPES.get(main, main)
    return out


def trainer_facts(
    args: Any, model: Any, train_dataloader: Any = None, state: Any = None
) -> dict[str, Any]:
    """Run facts of a ``Trainer`` run: the model's, then the ``TrainingArguments``' and the
    training data set's size. With ``auto_find_batch_size``, the batch size the Trainer settled
    on (``TrainerState.train_batch_size`` per device)."""
    out = model_facts(model) if model is not None else {}
    if getattr(args, "bf16", False):
        out["precision"] = "bf16-mixed"
    elif getattr(args, "fp16", False):
        out["precision"] = "fp16-mixed"
    for field, attr in (
        ("batch_size", "per_device_train_batch_size"),
        ("gradient_accumulation_steps", "gradient_accumulation_steps"),
        ("world_size", "world_size"),
    ):
        value = getattr(args, attr, None)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            out[field] = value
    found = getattr(state, "train_batch_size", None)
    if getattr(args, "auto_find_batch_size", False) and isinstance(found, int) and found >= 1:
        out["batch_size"] = max(1, found // max(1, int(getattr(args, "n_gpu", 1) or 1)))
    size = dataset_size(getattr(train_dataloader, "dataset", None))
    if size is not None:
        out["dataset_sizes"] = {"train": size}
    return out


def dataset_size(dataset: Any) -> int | None:
    """``len(dataset)``, or None for data sets without a length (iterable data sets)."""
    if dataset is None:
        return None
    try:
        n = len(dataset)
    except Exception:
        return None
    return n if isinstance(n, int) and n >= 0 else None


def observed_batching(batch_examples: Mapping[int, int]) -> dict[str, Any]:
    """Batch size and world size of a plain loop, from the forward calls counted.

    ``batch_size`` is the most frequent number of examples per training forward call (the last
    batch of an epoch is often smaller); ``world_size`` is torch.distributed's when a process
    group is initialised, else 1.
    """
    out: dict[str, Any] = {}
    if batch_examples:
        out["batch_size"] = max(batch_examples, key=lambda k: (batch_examples[k], k))
    torch: Any = sys.modules.get("torch")
    dist = getattr(torch, "distributed", None)
    try:
        if dist is not None and dist.is_available() and dist.is_initialized():
            out["world_size"] = int(dist.get_world_size())
        else:
            out["world_size"] = 1
    except Exception:  # a broken process group must not break the report
        pass
    return out


def flops_fields(parameters_total: int | None, tokens_padded: int) -> dict[str, Any]:
    """``flops_estimate`` and ``flops_basis`` for a training run (empty when not computable)."""
    if not parameters_total or tokens_padded <= 0:
        return {}
    flops = 6.0 * parameters_total * tokens_padded
    if not math.isfinite(flops):
        return {}
    return {
        "flops_estimate": flops,
        "flops_basis": (
            f"ESTIMATE, not measured: 6 x {parameters_total:,} parameters (all of them, "
            f"embeddings included) x {tokens_padded:,} training tokens processed (padding "
            "included, every segment of a resumed run); 6 = 2 FLOPs per parameter per token "
            "forward + 4 backward (Kaplan et al., 2020, section 2.1). It leaves out attention "
            "scores (which grow with sequence length), evaluation and recomputation, and counts "
            "weight gradients of frozen parameters too."
        ),
    }


def note_eval_size(run_facts: dict[str, Any], loader: Any) -> None:
    """Add the size of an evaluation data set to ``run_facts["dataset_sizes"]`` (``eval``, then
    ``eval-2``, ... for further data sets of other sizes)."""
    size = dataset_size(getattr(loader, "dataset", None))
    if size is None:
        return
    sizes = run_facts.setdefault("dataset_sizes", {})
    evals = [k for k in sizes if k == "eval" or k.startswith("eval-")]
    if not any(sizes[k] == size for k in evals):
        sizes["eval" if not evals else f"eval-{len(evals) + 1}"] = size
