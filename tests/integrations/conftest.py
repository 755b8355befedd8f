"""Fixtures of the Hugging Face integration tests: tiny offline Trainers, on a fake clock."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

pytest.importorskip("torch")
pytest.importorskip("transformers")

from hf_helpers import TINY, ClockedForward

from bertwatt.testing import FakeClock

TrainerFactory = Callable[..., Any]


@pytest.fixture(autouse=True)
def one_torch_thread() -> Any:
    """Run torch on one thread here: tiny models gain nothing from two, and on a busy 2-core
    machine two spinning OpenMP threads slow a step down twentyfold."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def make_trainer(tmp_path: Any) -> TrainerFactory:
    """``make_trainer(callbacks=[...], clock=None, **training_args)`` -> a tiny offline Trainer.

    With ``clock``, the model advances it in every forward call (see :class:`ClockedForward`;
    the hook is ``trainer.clocked``). Defaults: 48 training and 16 evaluation examples, batch 8,
    sequential sampling, 1 epoch, no checkpoints.
    """
    from bertwatt.integrations.demo import build_trainer

    def factory(
        *,
        callbacks: list[Any] | None = None,
        clock: FakeClock | None = None,
        train_examples: int = 48,
        eval_examples: int = 16,
        padding: str = "dynamic",
        max_length: int = 64,
        subdir: str = "out",
        **training_args: Any,
    ) -> Any:
        options: dict[str, Any] = {
            "per_device_train_batch_size": 8,
            "per_device_eval_batch_size": 8,
            "train_sampling_strategy": "sequential",
            "logging_steps": 2,
        }
        options.update(training_args)
        trainer = build_trainer(
            str(tmp_path / subdir),
            train_examples=train_examples,
            eval_examples=eval_examples,
            padding=padding,  # type: ignore[arg-type]
            max_length=max_length,
            callbacks=callbacks,
            model_options=TINY,
            **options,
        )
        trainer.clocked = None
        if clock is not None:
            trainer.clocked = ClockedForward(clock)
            trainer.model.register_forward_pre_hook(trainer.clocked, with_kwargs=True)
        return trainer

    return factory
