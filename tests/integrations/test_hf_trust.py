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
        session.step(examples=1, tokens_padded=8, tokens_nonpadding=6)
    session.end_train()
    report = session.build_report(meter.stop(warn=False))
    se = report.step_energy
    assert se is not None and sum(se.steps) == 60 and report.steps == 60
    assert se.records <= 10
    assert se.total_energy_j == pytest.approx(report.phases["train"].energy_j, rel=1e-6)
    assert sum(se.tokens_padded) == 60 * 8


def test_measure_inference_states_batch_size_lengths_and_what_was_included() -> None:
    torch = pytest.importorskip("torch")
    from hf_helpers import TINY

    from bertwatt.integrations.demo import sentences, tiny_bert, tokenizer
    from bertwatt.integrations.inference import measure_inference

    tok = tokenizer()
    model = tiny_bert(len(tok), **TINY)
    texts = [t for t, _ in sentences(12, seed=3)]
    clock = FakeClock()
    with_tok = measure_inference(
        model, texts, tokenizer=tok, batch_size=4, backends=[fake_sensor(clock)], clock=clock
    )
    assert with_tok.tokenization_included is True
    assert with_tok.sequence_length_mean == pytest.approx(with_tok.tokens_padded / 12)
    assert with_tok.sequence_length_max is not None
    assert "batch size 4" in with_tok.setting and "tokenisation and model forward" in (
        with_tok.setting
    )
    batches = [
        {
            "input_ids": torch.ones(4, 6, dtype=torch.long),
            "attention_mask": torch.ones(4, 6, dtype=torch.long),
        }
    ] * 2
    pre = measure_inference(
        model, batches, warmup_batches=0, backends=[fake_sensor(clock)], clock=clock
    )
    assert pre.tokenization_included is False
    assert pre.sequence_length_mean == 6 and pre.sequence_length_max == 6
    assert "tokenisation not included" in pre.setting
    assert "setting:" in pre.summary()


def test_the_queries_comparison_states_its_setting() -> None:
    torch = pytest.importorskip("torch")
    model = _tiny_bert()
    clock = FakeClock()
    ids = torch.tensor([[2, 3, 4, 0], [5, 6, 0, 0]])

    def train(tracker: Any) -> None:
        tracker.watch(model)
        model(input_ids=ids, attention_mask=(ids != 0).long())
        clock.advance(1.0)
        tracker.step()
        with tracker.phase("eval"):
            model.eval()
            model(input_ids=ids, attention_mask=(ids != 0).long())
            clock.advance(0.5)

    report = measure_finetune(train, backends=[fake_sensor(clock)], clock=clock)
    pv = report.perspective
    assert pv is not None and pv.inference_queries == pytest.approx(1.5 / (0.25))
    assert pv.inference_setting is not None
    assert "batch size 2" in pv.inference_setting and "4 tokens per query" in pv.inference_setting
    assert "tokenisation not included" in pv.inference_setting
    assert "at this setting only" in report.summary()
    other = report.with_perspective(0.5)
    assert other.perspective is not None and "stated by the user" in (
        other.perspective.inference_setting or ""
    )


def _callback(clock: FakeClock, **options: Any) -> Any:
    from bertwatt.integrations.transformers import EnergyCallback

    return EnergyCallback(backends=[fake_sensor(clock)], clock=clock, **options)


def test_trainer_logs_a_short_default_set_once_per_step(make_trainer: Any) -> None:
    from transformers import TrainerCallback

    from bertwatt.integrations.logkeys import DEFAULT_LOG_KEYS

    seen: list[tuple[int, dict[str, Any]]] = []

    class Reporter(TrainerCallback):  # a report_to integration (TensorBoard) listed before us
        def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[no-untyped-def]
            seen.append((state.global_step, dict(logs or {})))

    clock = FakeClock()
    trainer = make_trainer(
        callbacks=[Reporter()], clock=clock, logging_steps=2, eval_strategy="steps",
        eval_steps=2,
    )  # fmt: skip
    cb = _callback(clock, predict_after_steps=2).attach(trainer)
    trainer.train()
    with_energy = [(n, logs) for n, logs in seen if any(k.startswith("energy/") for k in logs)]
    steps = [step for step, _ in with_energy]
    assert steps and len(steps) == len(set(steps))  # one point per step
    # a train line, an eval line (and at the end the summary) share a step: only the first counts
    assert len(seen) > len(with_energy)
    for _, logs in with_energy:
        keys = {k for k in logs if k.startswith("energy/")}
        assert keys <= set(DEFAULT_LOG_KEYS) and len(keys) <= 5
        assert "energy/j_per_token_padded" in keys and "energy/j_per_token" not in keys
    # the log key and the report field share one name
    r = cb.report
    assert r.phase_metrics["train"].j_per_token_padded is not None


def test_more_log_keys_on_request_and_unknown_names_refused(make_trainer: Any) -> None:
    from bertwatt.errors import ConfigError
    from bertwatt.integrations.logkeys import ALL_LOG_KEYS, log_keys

    clock = FakeClock()
    cb = _callback(clock, log_metrics=["j_per_step", "energy/padding_share"])
    trainer = make_trainer(callbacks=[cb], clock=clock, logging_steps=2)
    trainer.train()
    first = next(h for h in trainer.state.log_history if "loss" in h)
    assert {k for k in first if k.startswith("energy/")} == {
        "energy/j_per_step",
        "energy/padding_share",
    }
    assert log_keys("all") == frozenset(ALL_LOG_KEYS) and not log_keys(False)
    with pytest.raises(ConfigError, match="unknown log_metrics key 'j_per_token'"):
        _callback(clock, log_metrics=["j_per_token"])


def test_the_callback_takes_a_session_and_hands_it_a_plan(make_trainer: Any) -> None:
    from bertwatt.integrations.plan import RunPlan
    from bertwatt.integrations.session import FinetuneSession
    from bertwatt.integrations.transformers import EnergyCallback
    from bertwatt.meter import EnergyMeter

    clock = FakeClock()
    meter = EnergyMeter(backends=[fake_sensor(clock)], clock=clock)
    session = FinetuneSession(meter, auto_eval=True)
    cb = EnergyCallback(session=session, output=False)
    assert cb.meter is meter and not hasattr(cb, "_external")
    trainer = make_trainer(clock=clock, eval_strategy="steps", eval_steps=2, save_strategy="no")
    cb.attach(trainer)
    meter.start()
    trainer.train()
    report = session.build_report(meter.stop(warn=False))
    assert report.steps == session.steps_done > 0
    snap = session.snapshot()
    assert snap.expected_evals is not None and snap.expected_saves == 0
    assert snap.extra["trainer"]["start_step"] == 0
    assert snap.run_facts["batch_size"] == 8  # the Trainer's facts came in the plan
    plan = RunPlan(
        total_steps=10,
        expected_evals=2,
        pad_token_id=3,
        trainer={"x": 1},
        run_facts={"model_name": "tiny"},
    )
    other = FinetuneSession(EnergyMeter(backends=[fake_sensor(clock)], clock=clock))
    other.meter.start()
    other.begin_train(plan)
    torch = pytest.importorskip("torch")
    other.step({"input_ids": torch.tensor([[5, 3, 3]])})  # no mask: the plan's pad id counts
    snap = other.snapshot()
    assert (snap.total_steps, snap.expected_evals) == (10, 2)
    assert snap.counts["train"].tokens_nonpadding == 1 and snap.extra["trainer"] == {"x": 1}
    assert snap.run_facts["model_name"] == "tiny"
    other.end_train()
    other.meter.stop(warn=False)


def test_integrations_have_no_import_cycles() -> None:
    import ast
    from pathlib import Path

    import bertwatt

    src = Path(bertwatt.__file__).parent
    graph: dict[str, set[str]] = {}
    for path in src.rglob("*.py"):
        name = ".".join(("bertwatt", *path.relative_to(src).with_suffix("").parts))
        name = name.removesuffix(".__init__")

        class Imports(ast.NodeVisitor):
            found: set[str]

            def visit_If(self, node: ast.If) -> None:
                if "TYPE_CHECKING" in ast.unparse(node.test):
                    for child in node.orelse:
                        self.visit(child)
                    return
                self.generic_visit(node)

            def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
                if node.module and node.level == 0:
                    self.found.add(node.module)
                    self.found.update(f"{node.module}.{a.name}" for a in node.names)

        visitor = Imports()
        visitor.found = set()
        visitor.visit(ast.parse(path.read_text()))
        found = visitor.found
        graph[name] = {m for m in found if m.startswith("bertwatt")}

    def reaches(start: str, goal: str) -> bool:
        todo, seen = [start], set()
        while todo:
            m = todo.pop()
            if m == goal:
                return True
            if m in seen:
                continue
            seen.add(m)
            todo.extend(graph.get(m, ()))
        return False

    ours = [m for m in graph if m.startswith("bertwatt.integrations.")]
    cycles = [m for m in ours if any(reaches(d, m) for d in graph[m] if d in graph)]
    assert cycles == []


def test_numbers_people_read() -> None:
    from bertwatt.integrations.render import render_finetune, render_inference
    from bertwatt.report.finetune import FinetuneReport, InferenceReport, PhaseMetrics
    from bertwatt.units import fmt_count, fmt_g, fmt_j, fmt_num

    assert fmt_g(0.000237) == "237 ugCO2e" and "0.000" not in fmt_g(0.000237)
    assert fmt_j(-0.001) == "-1 mJ" and fmt_j(-1e-12) != "-0 J"
    assert fmt_num(-0.0000001) == "-1e-7" and fmt_num(-0.0) == "0"
    assert fmt_j(1507 * 3.6e6) == "5.425 GJ"  # never '1,507.0000 kWh'
    assert fmt_count(1, "batch") == "1 batch" and fmt_count(2, "batch") == "2 batches"
    metrics = PhaseMetrics(
        name="train", energy_j=12.5, duration_s=1.0, mean_power_w=12.5, emissions_g=0.000237
    )
    clock = FakeClock()

    def train(tracker: Any) -> None:
        clock.advance(1.0)
        tracker.step(examples=1, tokens_padded=8)

    measured = measure_finetune(train, backends=[fake_sensor(clock)], clock=clock)
    report = measured.model_copy(
        update={"phase_metrics": {"train": metrics}, "outside_phases_j": -0.0001}
    )
    assert isinstance(report, FinetuneReport)
    text = render_finetune(report)
    assert "1 optimizer step," in text and "1 example," in text
    assert "237 ugCO2e" in text and "0.000 g" not in text
    assert "-0.00" not in text
    base = {k: v for k, v in measured.model_dump().items() if k in InferenceReport.model_fields}
    inference = InferenceReport.model_validate(
        {**base, "kind": "inference", "queries": 1, "batches": 1}
    )
    assert "1 query in 1 batch" in render_inference(inference)


def test_the_early_prediction_includes_scheduled_evaluations(make_trainer: Any) -> None:
    # 20 steps, an evaluation every 5: asked for at step 2, the prediction waits for the first
    # evaluation (step 5) and counts the ones to come; it then equals the actual energy
    clock = FakeClock()
    cb = _callback(clock, predict_after_steps=2)
    trainer = make_trainer(
        callbacks=[cb], clock=clock, max_steps=20, eval_strategy="steps", eval_steps=5,
        save_strategy="no",
    )  # fmt: skip
    trainer.train()
    p = cb.report.prediction
    assert p is not None and p.at_step == 5 and p.total_steps == 20
    assert "evaluation" in p.basis
    assert p.predicted_energy_j == pytest.approx(p.actual_energy_j, rel=1e-6)


def test_run_plan_from_training_arguments(tmp_path: Any) -> None:
    from transformers import TrainerState, TrainingArguments

    from bertwatt.integrations.plan import trainer_plan

    args = TrainingArguments(
        output_dir=str(tmp_path), eval_strategy="steps", eval_steps=50, save_strategy="steps",
        save_steps=80, report_to=[],
    )  # fmt: skip
    state = TrainerState(max_steps=200, eval_steps=50, save_steps=80, num_train_epochs=1)
    plan = trainer_plan(args, state)
    assert (plan.total_steps, plan.expected_evals, plan.expected_saves) == (200, 4, 3)
    assert (plan.first_eval_step, plan.first_save_step) == (50, 80)
    state.global_step = 120  # resumed
    plan = trainer_plan(args, state)
    assert (plan.total_steps, plan.expected_evals, plan.first_eval_step) == (80, 2, 30)


def test_small_emissions_are_not_printed_as_zero() -> None:
    clock = FakeClock()

    def train(tracker: Any) -> None:
        clock.advance(0.1)
        tracker.step(examples=1, tokens_padded=8)

    report = measure_finetune(train, backends=[fake_sensor(clock)], clock=clock, carbon="FR")
    assert report.emissions_g is not None and 0 < report.emissions_g < 0.001
    text = report.summary()
    assert "0.000 gCO2e" not in text and "emissions: " in text
    assert "ugCO2e" in text or "mgCO2e" in text


def test_the_callback_keeps_to_its_own_state() -> None:
    import inspect

    from bertwatt.integrations import finetune, predict, transformers

    for module in (finetune, predict, transformers):
        source = inspect.getsource(module)
        assert "_getframe" not in source
        assert "._external" not in source and "._chain" not in source
