"""report.run for fine-tuning (Trainer and plain loops), report kinds, and the run's status.

Expected values are computed independently: parameter counts from the model's tensors, sequence
lengths from the data set, FLOPs from 6 x parameters x tokens.
"""

from __future__ import annotations

from typing import Any

import pytest
from hf_helpers import fake_sensor

import bertwatt
from bertwatt.cli import main as cli_main
from bertwatt.errors import ConfigError
from bertwatt.integrations.finetune import measure_finetune
from bertwatt.integrations.report import FinetuneReport, InferenceReport
from bertwatt.integrations.transformers import EnergyCallback
from bertwatt.testing import FakeClock


def longest_batch(dataset: list[dict[str, Any]], batch: int) -> int:
    return max(
        max(len(x["input_ids"]) for x in dataset[i : i + batch])
        for i in range(0, len(dataset), batch)
    )


def test_trainer_run_info(make_trainer, tmp_path):
    clock = FakeClock()
    cb = EnergyCallback(backends=[fake_sensor(clock)], clock=clock)
    trainer = make_trainer(
        callbacks=[cb], clock=clock, eval_strategy="epoch", gradient_accumulation_steps=2
    )
    trainer.train()
    run = cb.report.run
    model = trainer.model
    total = sum(p.numel() for p in model.parameters())
    assert run.model_class == "BertForSequenceClassification"
    assert run.model_name is None  # built from a config: no name or path to give
    assert run.parameters_total == total
    assert run.parameters_trainable == total
    assert run.precision == "fp32"
    assert run.batch_size == 8 and run.gradient_accumulation_steps == 2 and run.world_size == 1
    assert run.dataset_sizes == {"train": 48, "eval": 16}
    assert run.max_seq_length == longest_batch(trainer.train_dataset, 8)
    assert run.flops_estimate == pytest.approx(6 * total * cb.report.tokens_padded)
    assert run.flops_basis.startswith("ESTIMATE")
    assert "6 x" in run.flops_basis and f"{total:,} parameters" in run.flops_basis
    summary = cb.report.summary()
    assert "BertForSequenceClassification" in summary and "training FLOPs" in summary
    assert bertwatt.load_report(tmp_path / "out" / "bertwatt" / "report.json").run == run


def test_frozen_parameters_and_padding_to_max_length(make_trainer):
    clock = FakeClock()
    cb = EnergyCallback(backends=[fake_sensor(clock)], clock=clock)
    trainer = make_trainer(callbacks=[cb], clock=clock, padding="max_length", max_length=48)
    frozen = 0
    for p in trainer.model.bert.embeddings.parameters():
        p.requires_grad_(False)
        frozen += p.numel()
    trainer.train()
    run = cb.report.run
    assert run.parameters_trainable == run.parameters_total - frozen
    assert run.max_seq_length == 48
    assert "trainable" in cb.report.summary()


def test_plain_loop_run_info_observed_and_stated():
    torch = pytest.importorskip("torch")

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(10, 4)
            self.head = torch.nn.Linear(4, 2)
            self.head.bias.requires_grad_(False)

        def forward(self, input_ids: Any, attention_mask: Any = None) -> Any:
            return self.head(self.emb(input_ids)).sum()

    model = Tiny()
    clock = FakeClock()
    big = torch.ones(4, 7, dtype=torch.long)
    small = torch.ones(2, 5, dtype=torch.long)

    def train(tracker: Any) -> None:
        tracker.watch(model)
        tracker.describe(model_name="my-tiny", dataset_sizes={"train": 10})
        for batch in (big, big, small):
            model(input_ids=batch)
            clock.advance(1.0)
            tracker.step()

    report = measure_finetune(train, backends=[fake_sensor(clock)], clock=clock)
    run = report.run
    assert run.model_class == "Tiny" and run.model_name == "my-tiny"
    assert run.parameters_total == 10 * 4 + 4 * 2 + 2
    assert run.parameters_trainable == run.parameters_total - 2
    assert run.precision == "fp32"
    assert run.batch_size == 4  # the most frequent training batch
    assert run.max_seq_length == 7
    assert run.world_size == 1
    assert run.gradient_accumulation_steps is None  # not stated, not guessed
    assert run.dataset_sizes == {"train": 10}
    assert run.flops_estimate == pytest.approx(6 * run.parameters_total * (2 * 28 + 10))


def test_stated_facts_win_and_are_checked():
    clock = FakeClock()

    def train(tracker: Any) -> None:
        tracker.describe(batch_size=32, gradient_accumulation_steps=4, precision="bf16-mixed")
        clock.advance(1.0)
        tracker.step(examples=32, tokens_padded=320)

    report = measure_finetune(train, backends=[fake_sensor(clock)], clock=clock)
    assert (report.run.batch_size, report.run.gradient_accumulation_steps) == (32, 4)
    assert report.run.precision == "bf16-mixed"
    assert report.run.flops_estimate is None  # no parameter count known: no estimate

    def bad(field: str, value: Any) -> Any:
        def train(tracker: Any) -> None:
            tracker.describe(**{field: value})

        return train

    for field, value, match in (
        ("batch", 3, "unknown run field 'batch'"),
        ("batch_size", 0, "batch_size must be an int >= 1"),
        ("batch_size", True, "batch_size must be an int >= 1"),
        ("precision", "", "precision must be a non-empty string"),
        ("dataset_sizes", {"train": -1}, "dataset_sizes must map"),
        ("flops_estimate", 1.0, "flops_estimate is computed"),
    ):
        with pytest.raises(ConfigError, match=match):
            measure_finetune(bad(field, value), backends=[fake_sensor(clock)], clock=clock)


def test_failed_training_is_interrupted_with_an_error_segment(make_trainer, tmp_path):
    from transformers import TrainerCallback

    class Boom(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == 2:
                raise RuntimeError("simulated failure")

    clock = FakeClock()
    trainer = make_trainer(clock=clock, callbacks=[Boom()])
    with pytest.raises(RuntimeError):
        measure_finetune(trainer, backends=[fake_sensor(clock)], clock=clock)
    saved = bertwatt.load_report(tmp_path / "out" / "bertwatt" / "report.json")
    assert isinstance(saved, FinetuneReport)
    assert saved.status == "interrupted"
    assert [s.ended_by for s in saved.segments] == ["error"]
    assert saved.segments[0].steps == 2


def test_keyboard_interrupt_in_a_plain_loop(tmp_path):
    clock = FakeClock()
    path = tmp_path / "r.json"

    def train(tracker: Any) -> None:
        clock.advance(1.0)
        tracker.step(examples=1, tokens_padded=4)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        measure_finetune(train, backends=[fake_sensor(clock)], clock=clock, output=path)
    saved = bertwatt.load_report(path)
    assert saved.status == "interrupted" and saved.segments[0].ended_by == "interrupted"


def test_completed_run_has_one_completed_segment(make_trainer):
    clock = FakeClock()
    report = measure_finetune(
        make_trainer(clock=clock), backends=[fake_sensor(clock)], clock=clock, output=False
    )
    assert report.status == "complete" and report.resume is None
    [seg] = report.segments
    assert (seg.index, seg.ended_by, seg.steps, seg.run_id) == (0, "completed", 6, report.run_id)
    assert seg.energy_j == pytest.approx(report.energy_j)


def test_every_written_kind_loads_and_shows(make_trainer, tmp_path, capsys):
    from bertwatt.integrations.demo import sentences, tiny_bert, tokenizer
    from bertwatt.integrations.inference import measure_inference

    clock = FakeClock()
    trainer = make_trainer(clock=clock)
    measure_finetune(trainer, backends=[fake_sensor(clock)], clock=clock)
    finetune_path = tmp_path / "out" / "bertwatt" / "report.json"

    tok = tokenizer()
    model = tiny_bert(len(tok), layers=1, hidden=32, heads=2, intermediate=64)
    clock = FakeClock()
    inference_path = tmp_path / "inference.json"
    measure_inference(
        model,
        [t for t, _ in sentences(12)],
        tokenizer=tok,
        batch_size=4,
        backends=[fake_sensor(clock)],
        clock=clock,
        output=inference_path,
    )
    for path, cls, kind in (
        (finetune_path, FinetuneReport, "finetune"),
        (inference_path, InferenceReport, "inference"),
    ):
        loaded = bertwatt.load_report(path)
        assert type(loaded) is cls and loaded.kind == kind
        assert cli_main(["show", str(path)]) == 0
        merged = tmp_path / f"merged-{kind}.json"
        assert cli_main(["merge", str(path), "-o", str(merged)]) == 0
        again = bertwatt.load_report(merged)
        assert type(again) is cls and again.energy_j == pytest.approx(loaded.energy_j)
    out = capsys.readouterr().out
    assert "fine-tuning figures" in out and "per query" in out


def test_the_guide_documents_every_fine_tuning_run_field():
    from pathlib import Path

    from bertwatt.report.models import RunInfo

    guide = (Path(__file__).resolve().parents[2] / "docs" / "huggingface.md").read_text()
    section = guide.split("## What was run: `report.run`", 1)[1].split("\n## ", 1)[0]
    cli_only = {"command", "cwd", "exit_code", "signal"}
    for name in set(RunInfo.model_fields) - cli_only:
        assert f"`{name}`" in section, name
