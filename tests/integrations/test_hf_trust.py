"""Fine-tuning figures a reviewer can trust: eval inside a plain loop, unknown padding, remedies."""

from __future__ import annotations

from typing import Any

import pytest
from hf_helpers import POWER_W, fake_sensor

from bertwatt.integrations import measure_finetune
from bertwatt.integrations.padding import padding_report
from bertwatt.integrations.tokens import LengthStats, WorkCounts
from bertwatt.testing import FakeClock


def _tiny_bert(pad_token_id: int | None = 0) -> Any:
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=30,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        pad_token_id=pad_token_id,
    )
    return BertForSequenceClassification(config)


def test_evaluation_inside_a_plain_loop_is_not_counted_as_training(caplog: Any) -> None:
    torch = pytest.importorskip("torch")
    model = _tiny_bert()
    clock = FakeClock()
    ids = torch.tensor([[2, 3, 4, 0], [5, 6, 0, 0]])
    batch = {"input_ids": ids, "attention_mask": (ids != 0).long()}

    def train(tracker: Any) -> None:
        tracker.watch(model)
        for step in range(1, 5):
            model.train()
            model(**batch, labels=torch.tensor([0, 1])).loss.backward()
            clock.advance(1.0)
            tracker.step()
            if step % 2 == 0:  # evaluate inside the loop, no tracker.phase("eval")
                model.eval()
                with torch.no_grad():
                    for _ in range(3):
                        model(**batch)
                clock.advance(0.5)

    report = measure_finetune(train, backends=[fake_sensor(clock)], clock=clock)
    logged = [r.getMessage() for r in caplog.records if "eval mode" in r.getMessage()]
    assert len(logged) == 1  # said once, at the first such call
    # 4 steps x 2 examples of training; 2 evaluations x 3 calls x 2 examples kept apart
    assert (report.steps, report.examples, report.tokens_padded) == (4, 8, 32)
    assert report.tokens_nonpadding == 4 * 5
    assert report.extra["eval_in_train"] == {
        "examples": 12,
        "batches": 6,
        "tokens_padded": 48,
        "tokens_nonpadding": 30,
    }
    assert report.phase_metrics["train"].examples == 8
    assert any('tracker.phase("eval")' in w for w in report.warnings)


def test_evaluation_in_a_phase_is_counted_there_without_a_warning() -> None:
    torch = pytest.importorskip("torch")
    model = _tiny_bert()
    clock = FakeClock()
    ids = torch.tensor([[2, 3, 4, 0], [5, 6, 0, 0]])

    def train(tracker: Any) -> None:
        tracker.watch(model)
        model.train()
        model(input_ids=ids, attention_mask=(ids != 0).long())
        clock.advance(1.0)
        tracker.step()
        with tracker.phase("eval"):
            model.eval()
            model(input_ids=ids, attention_mask=(ids != 0).long())
            clock.advance(0.5)

    report = measure_finetune(train, backends=[fake_sensor(clock)], clock=clock)
    assert report.examples == 2 and report.phase_metrics["eval"].examples == 2
    assert "eval_in_train" not in report.extra
    assert report.phase_metrics["eval"].energy_j == pytest.approx(0.5 * POWER_W)


def test_without_a_mask_or_pad_id_padding_is_unknown_never_zero() -> None:
    torch = pytest.importorskip("torch")
    model = _tiny_bert(pad_token_id=None)
    clock = FakeClock()
    ids = torch.tensor([[2, 3, 4, 1], [5, 6, 1, 1]])

    def train(tracker: Any) -> None:
        tracker.watch(model)
        for _ in range(2):
            model(input_ids=ids)  # no attention_mask, config.pad_token_id is None
            clock.advance(1.0)
            tracker.step()

    report = measure_finetune(train, backends=[fake_sensor(clock)], clock=clock)
    assert any(w.startswith("padding unknown for 16 of 16 tokens") for w in report.warnings)
    assert report.tokens_unknown == 16 and report.tokens_padded == 16
    assert report.padding_share is None
    assert report.padding is None
    assert report.phase_metrics["train"].padding_share is None
    assert report.phase_metrics["train"].padding_energy_j is None
    text = report.summary()
    assert "padding 0.0%" not in text and "padding unknown" in text


def test_with_a_pad_id_and_no_mask_padding_is_counted() -> None:
    torch = pytest.importorskip("torch")
    model = _tiny_bert(pad_token_id=1)
    clock = FakeClock()
    ids = torch.tensor([[2, 3, 4, 1], [5, 6, 1, 1]])

    def train(tracker: Any) -> None:
        tracker.watch(model)
        model(input_ids=ids)
        clock.advance(1.0)
        tracker.step()

    report = measure_finetune(train, backends=[fake_sensor(clock)], clock=clock)
    assert report.tokens_unknown == 0
    assert report.padding_share == pytest.approx(3 / 8)


def _lengths(examples: dict[int, int], padded: dict[int, int], overpadded: int) -> LengthStats:
    stats = LengthStats()
    stats.lengths.update(examples)
    stats.padded_lengths.update(padded)
    stats.overpadded_batches = overpadded
    return stats


def _counts(stats: LengthStats) -> WorkCounts:
    real = sum(k * v for k, v in stats.lengths.items())
    padded = sum(k * v for k, v in stats.padded_lengths.items()) * 4  # 4 examples per batch
    return WorkCounts(examples=stats.examples, tokens_padded=padded, tokens_nonpadding=real)


def test_fixed_length_padding_that_truncates_gets_pad_per_batch() -> None:
    # max_length=32 with truncation: a quarter of the examples reach 32, every batch holds one,
    # so no batch is padded beyond its longest example
    stats = _lengths({6: 30, 10: 30, 32: 20}, {32: 20}, overpadded=0)
    pad = padding_report(
        _counts(stats), stats, j_per_token_padded=0.01, train_energy_j=100.0,
        grouped_by_length=False, grouping_hint="TrainingArguments(group_by_length=True)",
    )  # fmt: skip
    assert pad is not None and pad.large and pad.fixed_padded_length == 32
    text = " ".join(pad.remedies)
    assert "pad per batch" in text and "DataCollatorWithPadding" in text
    assert "truncated" in text
    assert "group" not in text.lower()
    assert "already grouped" not in text


def test_dynamic_padding_ungrouped_gets_group_by_length() -> None:
    stats = _lengths({5: 40, 30: 40}, {32: 10, 16: 5, 8: 5}, overpadded=0)
    pad = padding_report(
        _counts(stats), stats, j_per_token_padded=0.01, train_energy_j=100.0,
        grouped_by_length=False, grouping_hint="TrainingArguments(group_by_length=True)",
    )  # fmt: skip
    assert pad is not None and pad.large
    assert any("group_by_length=True" in r for r in pad.remedies)
    assert not any("pad per batch" in r for r in pad.remedies)


def test_dynamic_padding_already_grouped_names_what_is_left() -> None:
    stats = _lengths({5: 40, 30: 40}, {32: 10, 16: 5, 8: 5}, overpadded=0)
    pad = padding_report(
        _counts(stats), stats, j_per_token_padded=0.01, train_energy_j=100.0,
        grouped_by_length=True,
    )  # fmt: skip
    assert pad is not None
    assert len(pad.remedies) == 1 and "within a batch" in pad.remedies[0]


def test_step_records_adapt_to_what_a_mark_costs() -> None:
    # real clock, every backend read sleeps 2 ms: a mark costs >= 2 ms, so a record covers up to
    # 1 s of steps instead of one 5 ms step (marks stay a small share of training time)
    import time

    from bertwatt.integrations.session import FinetuneSession
    from bertwatt.meter import EnergyMeter
    from bertwatt.testing import FakeBackend, FakeChannel

    backend = FakeBackend(
        channels=[FakeChannel("cpu:0", POWER_W, kind="counter")], read_delay_s=0.002
    )
    meter = EnergyMeter(backends=[backend])
    session = FinetuneSession(meter)
    meter.start()
    session.begin_train()
    for _ in range(60):
        time.sleep(0.005)
        session.train_tokens.add_counts(WorkCounts(1, 1, 8, 6), [])
        session.step_end()
    session.end_train()
    report = session.build_report(meter.stop(warn=False))
    se = report.step_energy
    assert se is not None and sum(se.steps) == 60 and report.steps == 60
    assert se.records <= 10
    assert se.total_energy_j == pytest.approx(report.phases["train"].energy_j, rel=1e-6)
    assert sum(se.tokens_padded) == 60 * 8
