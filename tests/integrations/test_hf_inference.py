"""measure_inference(): J per query and per token of a model, a pipeline and a Trainer."""

from __future__ import annotations

from typing import Any

import pytest
from hf_helpers import EVAL_J, EVAL_S, POWER_W, TINY, ClockedForward, fake_sensor

from bertwatt.errors import ConfigError
from bertwatt.integrations.demo import sentences, tiny_bert, tokenizer
from bertwatt.integrations.inference import measure_inference
from bertwatt.integrations.report import InferenceReport
from bertwatt.testing import FakeClock


@pytest.fixture(scope="module")
def tok() -> Any:
    return tokenizer()


def clocked_model(tok: Any, clock: FakeClock) -> tuple[Any, ClockedForward]:
    model = tiny_bert(len(tok), **TINY)
    hook = ClockedForward(clock)
    model.register_forward_pre_hook(hook, with_kwargs=True)
    return model, hook


def test_texts_through_a_model(tok):
    clock = FakeClock()
    model, hook = clocked_model(tok, clock)
    model.train()
    texts = [t for t, _ in sentences(20, seed=4)]
    report = measure_inference(
        model, texts, tokenizer=tok, batch_size=8, backends=[fake_sensor(clock)], clock=clock
    )
    assert isinstance(report, InferenceReport)
    assert hook.eval_calls == 3 + 1 and hook.train_calls == 0  # 3 batches + 1 warm-up batch
    assert model.training  # restored
    assert report.queries == 20 and report.batches == 3 and report.warmup_queries == 8
    assert report.phases["inference"].energy_j == pytest.approx(3 * EVAL_J)
    assert report.phases["warmup"].energy_j == pytest.approx(EVAL_J)
    assert report.j_per_query == pytest.approx(3 * EVAL_J / 20)
    enc = tok(texts)
    real = sum(len(x) for x in enc["input_ids"])
    assert report.tokens_nonpadding == real
    assert report.j_per_token_nonpadding == pytest.approx(3 * EVAL_J / real)
    assert "per query" in report.summary()


def test_pretokenised_batches_without_warmup(tok):
    torch = pytest.importorskip("torch")
    clock = FakeClock()
    model, _ = clocked_model(tok, clock)
    batches = [
        {
            "input_ids": torch.ones(4, 6, dtype=torch.long),
            "attention_mask": torch.ones(4, 6, dtype=torch.long),
        }
    ] * 3
    report = measure_inference(
        model, batches, warmup_batches=0, backends=[fake_sensor(clock)], clock=clock
    )
    assert report.queries == 12 and report.tokens_padded == 72 and "warmup" not in report.phases
    assert report.j_per_token_padded == pytest.approx(3 * EVAL_S * POWER_W / 72)


def test_a_pipeline(tok):
    from transformers import pipeline

    clock = FakeClock()
    model, _ = clocked_model(tok, clock)
    pipe = pipeline("text-classification", model=model, tokenizer=tok, device="cpu")
    texts = [t for t, _ in sentences(10, seed=5)]
    report = measure_inference(
        pipe, texts, batch_size=4, backends=[fake_sensor(clock)], clock=clock
    )
    assert report.queries == 10
    assert report.tokens_nonpadding == sum(len(x) for x in tok(texts)["input_ids"])
    assert report.phases["inference"].energy_j == pytest.approx(report.batches * EVAL_J)


def test_a_trainer(make_trainer):
    clock = FakeClock()
    trainer = make_trainer(clock=clock)
    report = measure_inference(
        trainer, trainer.eval_dataset, backends=[fake_sensor(clock)], clock=clock
    )
    assert report.queries == 16 and report.batch_size is None
    assert report.phases["inference"].energy_j == pytest.approx(2 * EVAL_J)


def test_bad_arguments(tok):
    model = tiny_bert(len(tok), **TINY)
    with pytest.raises(ConfigError, match="tokenizer"):
        measure_inference(model, ["a text"])
    with pytest.raises(ConfigError, match="batch_size"):
        measure_inference(model, ["a text"], tokenizer=tok, batch_size=0)
    with pytest.raises(ConfigError, match="no inputs"):
        measure_inference(model, [], tokenizer=tok)
    with pytest.raises(ConfigError, match="torch model"):
        measure_inference(object(), ["x"])
