"""measure_finetune(): a Trainer (train then evaluate), and plain callables with a tracker."""

from __future__ import annotations

from typing import Any

import pytest
from hf_helpers import EVAL_J, POWER_W, TRAIN_J, fake_sensor

from bertwatt.errors import ConfigError
from bertwatt.integrations.report import FinetuneReport
from bertwatt.integrations.transformers import EnergyCallback, measure_finetune
from bertwatt.testing import FakeClock


def test_trainer_is_trained_then_evaluated(make_trainer, tmp_path):
    clock = FakeClock()
    trainer = make_trainer(clock=clock)
    report = measure_finetune(trainer, backends=[fake_sensor(clock)], clock=clock)
    assert isinstance(report, FinetuneReport)
    assert report.phases["train"].energy_j == pytest.approx(6 * TRAIN_J)
    ev = report.phase_metrics["eval"]
    assert ev.examples == 16 and ev.batches == 2
    assert ev.energy_j == pytest.approx(2 * EVAL_J)
    assert ev.j_per_example == pytest.approx(2 * EVAL_J / 16)
    assert "eval_loss" in report.extra["eval_metrics"]
    assert report.extra["train_metrics"]["train_loss"] > 0
    assert not any(isinstance(cb, EnergyCallback) for cb in trainer.callback_handler.callbacks)
    pv = report.perspective
    assert pv is not None and pv.inference_queries == pytest.approx(
        report.energy_j / ev.j_per_example
    )
    saved = FinetuneReport.load(tmp_path / "out" / "bertwatt" / "report.json")
    assert saved.phase_metrics["eval"].examples == 16
    assert (tmp_path / "out" / "bertwatt" / "report-summary.txt").exists()


def test_perspective_from_the_options(make_trainer):
    clock = FakeClock()
    trainer = make_trainer(clock=clock)
    report = measure_finetune(
        trainer,
        backends=[fake_sensor(clock)],
        clock=clock,
        output=False,
        inference=0.5,
        pretraining_energy_kwh=1.0,
        pretraining_source="a published estimate",
    )
    pv = report.perspective
    assert pv.inference_queries == pytest.approx(report.energy_j / 0.5)
    assert pv.pretraining_fraction == pytest.approx(report.energy_j / 3.6e6)
    assert pv.pretraining_source == "a published estimate"
    again = report.with_perspective(2.0)
    assert again.perspective.inference_queries == pytest.approx(report.energy_j / 2.0)
    assert "pre-training run" in report.summary()


def test_training_failure_propagates_and_the_report_is_written(make_trainer, tmp_path):
    from transformers import TrainerCallback

    class Boom(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise RuntimeError("out of memory (simulated)")

    clock = FakeClock()
    trainer = make_trainer(clock=clock, callbacks=[Boom()])
    with pytest.raises(RuntimeError, match="simulated"):
        measure_finetune(trainer, backends=[fake_sensor(clock)], clock=clock)
    saved = FinetuneReport.load(tmp_path / "out" / "bertwatt" / "report.json")
    assert saved.steps == 3
    assert any("training raised RuntimeError" in w for w in saved.warnings)


def test_plain_loop_with_a_tracker_counts_steps_and_tokens():
    torch = pytest.importorskip("torch")
    clock = FakeClock()

    def train(tracker: Any) -> None:
        for _ in range(4):
            clock.advance(2.0)
            tracker.step(
                {
                    "input_ids": torch.ones(2, 5, dtype=torch.long),
                    "attention_mask": torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]),
                }
            )
        with tracker.phase("eval"):
            clock.advance(1.0)
            tracker.count({"input_ids": torch.ones(3, 4, dtype=torch.long)})

    report = measure_finetune(train, backends=[fake_sensor(clock)], clock=clock, total_steps=4)
    assert (report.steps, report.examples, report.tokens_padded, report.tokens_nonpadding) == (
        4,
        8,
        40,
        32,
    )
    assert report.step_energy.energy_j == pytest.approx([2.0 * POWER_W] * 4)
    ev = report.phase_metrics["eval"]
    assert (ev.examples, ev.tokens_padded, ev.energy_j) == (3, 12, pytest.approx(POWER_W))
    assert report.padding.length_histogram == {3: 4, 5: 4}


def test_plain_loop_watching_a_model():
    torch = pytest.importorskip("torch")

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(10, 4)

        def forward(self, input_ids: Any, attention_mask: Any = None) -> Any:
            return self.emb(input_ids).sum()

    model = Tiny()
    clock = FakeClock()
    ids = torch.tensor([[1, 2, 0, 0], [3, 4, 5, 0]])

    def train(tracker: Any) -> None:
        tracker.watch(model)
        for _ in range(3):
            model(input_ids=ids, attention_mask=(ids != 0).long())
            model(ids)  # no mask and no config.pad_token_id: every position counts as real
            clock.advance(1.0)
            tracker.step()

    report = measure_finetune(train, backends=[fake_sensor(clock)], clock=clock)
    assert report.steps == 3 and report.examples == 12
    assert report.tokens_padded == 48 and report.tokens_nonpadding == 3 * (5 + 8)
    assert not model._forward_pre_hooks  # the hook is removed at the end


def test_plain_callable_without_tracker_and_with_evaluate():
    clock = FakeClock()
    calls = []
    report = measure_finetune(
        lambda: (clock.advance(3.0), calls.append("train")),
        evaluate=lambda: (clock.advance(1.0), calls.append("eval")),
        backends=[fake_sensor(clock)],
        clock=clock,
    )
    assert calls == ["train", "eval"]
    assert report.phases["train"].energy_j == pytest.approx(3 * POWER_W)
    assert report.phases["eval"].energy_j == pytest.approx(POWER_W)
    assert report.steps == 0 and report.step_energy is None and report.padding is None


def test_measure_finetune_rejects_what_it_cannot_run():
    with pytest.raises(ConfigError, match="Trainer or a callable"):
        measure_finetune(42)
    from bertwatt.meter import EnergyMeter

    with pytest.raises(ConfigError, match="not both"):
        measure_finetune(lambda: None, meter=EnergyMeter(), interval_s=1.0)
