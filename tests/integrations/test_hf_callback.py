"""EnergyCallback on a real Trainer (tiny BERT), with fake sensors on a fake clock.

The fake clock advances only inside forward calls, so every energy is known exactly (see
hf_helpers). Token counts are checked against counts made independently from the data set.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import pytest
from hf_helpers import EVAL_J, POWER_W, TRAIN_J, fake_sensor

from bertwatt.errors import ConfigError, MeasurementWarning
from bertwatt.integrations.report import FinetuneReport
from bertwatt.integrations.transformers import EnergyCallback
from bertwatt.testing import FakeBackend, FakeChannel, FakeClock


def expected_counts(dataset: list[dict[str, Any]], batch: int) -> tuple[int, int, int, list[int]]:
    """(examples, padded tokens, non-padding tokens, padded tokens per batch), sequential order,
    each batch padded to its longest example."""
    padded = nonpad = 0
    per_batch = []
    for i in range(0, len(dataset), batch):
        chunk = dataset[i : i + batch]
        longest = max(len(x["input_ids"]) for x in chunk)
        per_batch.append(longest * len(chunk))
        padded += longest * len(chunk)
        nonpad += sum(sum(x["attention_mask"]) for x in chunk)
    return len(dataset), padded, nonpad, per_batch


def callback(clock: FakeClock, **options: Any) -> EnergyCallback:
    return EnergyCallback(backends=[fake_sensor(clock)], clock=clock, **options)


def test_exact_counts_with_dynamic_padding(make_trainer):
    clock = FakeClock()
    cb = callback(clock)
    trainer = make_trainer(callbacks=[cb], clock=clock, num_train_epochs=2, eval_strategy="epoch")
    trainer.train()
    r = cb.report
    n, padded, nonpad, per_batch = expected_counts(trainer.train_dataset, 8)
    assert (r.examples, r.tokens_padded, r.tokens_nonpadding) == (2 * n, 2 * padded, 2 * nonpad)
    assert r.steps == 2 * len(per_batch)
    for epoch in ("epoch-1", "epoch-2"):
        m = r.phase_metrics[epoch]
        assert (m.examples, m.tokens_padded, m.tokens_nonpadding) == (n, padded, nonpad)
        assert m.steps == len(per_batch)
    en, epadded, enonpad, _ = expected_counts(trainer.eval_dataset, 8)
    ev = r.phase_metrics["eval"]
    assert (ev.examples, ev.tokens_padded, ev.tokens_nonpadding) == (
        2 * en,
        2 * epadded,
        2 * enonpad,
    )
    assert r.step_energy is not None
    assert r.step_energy.tokens_padded == per_batch * 2
    assert r.padding is not None and r.padding.fixed_padded_length is None
    assert r.padding_share == pytest.approx(1 - nonpad / padded)


def test_exact_counts_with_padding_to_max_length(make_trainer):
    clock = FakeClock()
    cb = callback(clock)
    trainer = make_trainer(callbacks=[cb], clock=clock, padding="max_length", max_length=64)
    trainer.train()
    r = cb.report
    n, _, nonpad, _ = expected_counts(trainer.train_dataset, 8)
    assert (r.examples, r.tokens_padded, r.tokens_nonpadding) == (n, n * 64, nonpad)
    pad = r.padding
    assert pad is not None and pad.fixed_padded_length == 64 and pad.large
    assert any("DataCollatorWithPadding" in x for x in pad.remedies)
    assert pad.energy_j == pytest.approx(
        pad.tokens_padding * r.phase_metrics["train"].j_per_token_padded
    )


def test_gradient_accumulation_counts_per_optimizer_step(make_trainer):
    clock = FakeClock()
    cb = callback(clock)
    trainer = make_trainer(callbacks=[cb], clock=clock, gradient_accumulation_steps=3)
    trainer.train()
    r = cb.report
    n, padded, _, per_batch = expected_counts(trainer.train_dataset, 8)  # 6 micro-batches
    assert r.steps == 2 and r.examples == n and r.tokens_padded == padded
    se = r.step_energy
    assert se is not None and se.steps == [1, 1]
    assert se.tokens_padded == [sum(per_batch[:3]), sum(per_batch[3:])]
    assert se.examples == [24, 24]
    assert se.energy_j == pytest.approx([3 * TRAIN_J, 3 * TRAIN_J])


def test_step_energies_sum_to_phase_and_run_totals(make_trainer):
    clock = FakeClock()
    cb = callback(clock)
    trainer = make_trainer(
        callbacks=[cb],
        clock=clock,
        num_train_epochs=2,
        eval_strategy="steps",
        eval_steps=4,
        save_strategy="steps",
        save_steps=5,
    )
    trainer.train()
    r = cb.report
    train_calls, eval_calls = trainer.clocked.train_calls, trainer.clocked.eval_calls
    se = r.step_energy
    assert se is not None and len(se.energy_j) == r.steps == 12
    assert se.energy_j == pytest.approx([TRAIN_J] * 12)
    train = r.phases["train"].energy_j
    assert train == pytest.approx(train_calls * TRAIN_J)
    assert se.total_energy_j == pytest.approx(train)
    assert se.between_steps_j == pytest.approx(0.0, abs=1e-9)
    assert r.phases["eval"].energy_j == pytest.approx(eval_calls * EVAL_J)
    assert r.phases["eval"].count == 3  # steps 4, 8, 12
    assert r.phases["checkpoint"].count == 3  # steps 5, 10, 12 (the end)
    parts = sum(r.phases[p].energy_j for p in ("train", "eval", "checkpoint"))
    assert parts + r.outside_phases_j == pytest.approx(r.energy_j)
    assert r.outside_phases_j == pytest.approx(0.0, abs=1e-9)
    epochs = r.phases["epoch-1"].energy_j + r.phases["epoch-2"].energy_j
    assert epochs == pytest.approx(train)


def test_energy_keys_reach_log_history_and_reporters(make_trainer):
    from transformers import TrainerCallback

    seen: list[dict[str, Any]] = []

    class Reporter(TrainerCallback):  # stands in for a report_to integration, listed before us
        def on_log(self, args, state, control, logs=None, **kwargs):
            seen.append(dict(logs or {}))

    clock = FakeClock()
    trainer = make_trainer(callbacks=[Reporter()], clock=clock, logging_steps=2)
    cb = callback(clock).attach(trainer)  # the documented way: right after DefaultFlowCallback
    trainer.train()
    first = trainer.state.log_history[0]
    assert first["step"] == 2
    assert first["energy/kwh"] == pytest.approx(2 * TRAIN_J / 3.6e6)
    assert "energy/j_per_step" not in first  # on request (log_metrics="all" or by name)
    assert first["energy/mean_power_w"] == pytest.approx(POWER_W)
    assert "energy/j_per_token_padded" in first
    for key in ("energy/j_per_token_nonpadding", "energy/padding_share"):  # on request only
        assert key not in first
    assert cb.report.steps == 6
    assert seen and all("energy/kwh" in logs for logs in seen if "loss" in logs)
    assert seen[0]["energy/kwh"] == first["energy/kwh"]


def test_an_unattached_callback_says_once_that_reporters_miss_the_keys(make_trainer, caplog):
    """Given in Trainer(callbacks=[...]) the callback runs after the report_to integrations and
    nothing transformers hands it leads to the Trainer's list: it says so, with the fix."""
    from transformers import TrainerCallback

    seen: list[dict[str, Any]] = []

    class Reporter(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            seen.append(dict(logs or {}))

    clock = FakeClock()
    cb = callback(clock)
    trainer = make_trainer(callbacks=[Reporter(), cb], clock=clock, logging_steps=2)
    trainer.args.report_to = ["tensorboard"]  # as the Trainer saw it (not installed here)
    with caplog.at_level(logging.WARNING, logger="bertwatt"):
        trainer.train()
    told = [r.getMessage() for r in caplog.records if "attach(trainer)" in r.getMessage()]
    assert len(told) == 1 and "tensorboard" in told[0]
    assert trainer.state.log_history[0]["energy/kwh"] > 0  # the logs still get the keys
    assert seen and not any("energy/kwh" in logs for logs in seen)  # the reporter ran before


def test_training_results_are_identical_with_and_without_the_callback(make_trainer):
    def run(callbacks: list[Any], subdir: str) -> tuple[list[float], Any]:
        trainer = make_trainer(callbacks=callbacks, subdir=subdir, logging_steps=1, seed=3)
        trainer.train()
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        return losses, trainer.model.state_dict()

    backend = FakeBackend(channels=[FakeChannel("cpu:0", 10.0, kind="counter", domain="cpu")])
    with_cb, params_a = run([EnergyCallback(backends=[backend])], "a")
    without, params_b = run([], "b")
    assert with_cb == without and len(with_cb) == 6
    assert all((params_a[k] == params_b[k]).all() for k in params_a)


def test_a_sensor_failing_mid_training_does_not_stop_training(make_trainer):
    clock = FakeClock()
    backend = fake_sensor(clock).fail(at_s=1.2, kind="raise")
    cb = EnergyCallback(backends=[backend], clock=clock)
    trainer = make_trainer(callbacks=[cb], clock=clock)
    trainer.train()
    assert trainer.state.global_step == 6
    r = cb.report
    ch = r.channel("cpu:0")
    assert ch.failed_reads > 0 and ch.coverage < 0.5
    assert any("covered only" in w for w in r.warnings)
    assert r.steps == 6 and r.examples == 48


def test_a_sensor_that_cannot_be_probed_leaves_an_explained_empty_report(make_trainer):
    class Broken(FakeBackend):
        def probe(self):
            raise RuntimeError("driver went away")

    cb = EnergyCallback(backends=[Broken()])
    trainer = make_trainer(callbacks=[cb])
    with pytest.warns(MeasurementWarning, match="no energy was measured"):
        trainer.train()
    r = cb.report
    assert r.energy_j is None and r.examples == 48
    assert r.phase_metrics["train"].j_per_token_padded is None
    assert any("driver went away" in u.reason for u in r.unavailable)
    assert r.figures.startswith("no energy was measured")
    assert "no energy was measured" in r.summary()


def test_a_failing_report_write_does_not_stop_training(make_trainer, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a directory is needed")
    clock = FakeClock()
    cb = callback(clock, output=blocker / "report.json")
    trainer = make_trainer(callbacks=[cb], clock=clock)
    trainer.train()
    assert trainer.state.global_step == 6
    assert any("EnergyCallback.write failed" in w for w in cb.report.warnings)


def test_report_written_on_checkpoints_and_at_the_end(make_trainer, tmp_path):
    from transformers import TrainerCallback

    snapshots: list[dict[str, Any]] = []

    class Peek(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            path = tmp_path / "out" / "bertwatt" / "report.json"
            snapshots.append(json.loads(path.read_text()))

    clock = FakeClock()
    cb = callback(clock)
    trainer = make_trainer(callbacks=[cb, Peek()], clock=clock, save_strategy="steps", save_steps=2)
    trainer.train()
    assert [s["status"] for s in snapshots] == ["running"] * 3
    assert [s["steps"] for s in snapshots] == [2, 4, 6]
    path = tmp_path / "out" / "bertwatt" / "report.json"
    final = FinetuneReport.load(path)
    assert final.status == "complete" and final.steps == 6
    assert final.energy_j == pytest.approx(cb.report.energy_j)
    assert "fine-tuning figures are measured" in (path.parent / "report-summary.txt").read_text()


def test_prediction_matches_the_actual_energy_for_uniform_steps(make_trainer):
    clock = FakeClock()
    cb = callback(clock, predict_after_steps=4)
    trainer = make_trainer(
        callbacks=[cb], clock=clock, num_train_epochs=2, eval_strategy="steps", eval_steps=2
    )
    trainer.train()
    p = cb.report.prediction
    assert p is not None and p.at_step == 4 and p.total_steps == 12
    assert p.actual_energy_j == pytest.approx(12 * TRAIN_J + trainer.clocked.eval_calls * EVAL_J)
    assert p.predicted_energy_j == pytest.approx(p.actual_energy_j)
    assert abs(p.error) < 1e-9
    assert "evaluation" in p.basis
    # one point per step: the last step's training log line carries it, not the summary after
    last = [h for h in trainer.state.log_history if "energy/predicted_kwh" in h][-1]
    assert last["step"] == 12 and "loss" in last
    assert last["energy/predicted_kwh"] == pytest.approx(p.actual_energy_j / 3.6e6)


def test_eval_on_start_is_an_eval_phase(make_trainer):
    clock = FakeClock()
    cb = callback(clock)
    trainer = make_trainer(callbacks=[cb], clock=clock, eval_strategy="epoch", eval_on_start=True)
    trainer.train()
    r = cb.report
    assert r.phases["eval"].count == 2
    assert r.phases["train"].energy_j == pytest.approx(6 * TRAIN_J)


def test_a_meter_started_by_the_user_is_left_running(make_trainer):
    from bertwatt.meter import EnergyMeter

    clock = FakeClock()
    meter = EnergyMeter(backends=[fake_sensor(clock)], clock=clock)
    cb = EnergyCallback(meter=meter)
    trainer = make_trainer(callbacks=[cb], clock=clock)
    with meter:
        clock.advance(3.0)  # before training: outside every phase
        trainer.train()
        assert meter.running
        with pytest.raises(ConfigError, match="no report yet"):
            cb.report  # noqa: B018
    r = cb.report
    assert r.phases["train"].energy_j == pytest.approx(6 * TRAIN_J)
    assert r.outside_phases_j == pytest.approx(3.0 * POWER_W)


def test_options_are_validated_when_the_callback_is_built():
    from bertwatt.meter import EnergyMeter

    with pytest.raises(ConfigError, match="not both"):
        EnergyCallback(meter=EnergyMeter(), interval_s=1.0)
    with pytest.raises(ConfigError, match="interval_s"):
        EnergyCallback(interval_s=-1)
    with pytest.raises(ConfigError, match="max_step_records"):
        EnergyCallback(max_step_records=1)
    with pytest.raises(ConfigError, match="predict_after_steps"):
        EnergyCallback(predict_after_steps=-1)
    with pytest.raises(ConfigError, match="output"):
        EnergyCallback(output=True)
    with pytest.raises(ConfigError, match="pretraining_energy_kwh"):
        EnergyCallback(pretraining_energy_kwh=-5)


def test_emissions_in_logs_and_report_when_carbon_is_configured(make_trainer):
    intensity = pytest.importorskip("bertwatt.carbon.intensity")
    carbon = intensity.CarbonIntensity.constant(250.0, source="test utility", year=2024)
    clock = FakeClock()
    cb = callback(clock, carbon=carbon, pue=1.2)
    trainer = make_trainer(callbacks=[cb], clock=clock, logging_steps=3)
    trainer.train()
    first = trainer.state.log_history[0]
    assert first["energy/gco2e"] == pytest.approx(3 * TRAIN_J / 3.6e6 * 250.0 * 1.2)
    r = cb.report
    assert r.emissions_g == pytest.approx(r.energy_j / 3.6e6 * 250.0 * 1.2)
    assert r.phase_metrics["run"].emissions_g == pytest.approx(r.emissions_g)
    assert "gCO2e" in r.summary()


def test_report_json_round_trip(make_trainer, tmp_path):
    clock = FakeClock()
    cb = callback(clock)
    make_trainer(callbacks=[cb], clock=clock).train()
    path = tmp_path / "copy.json"
    cb.report.to_json(path)
    again = FinetuneReport.load(path)
    assert again == cb.report
    assert math.isclose(again.phase_metrics["train"].j_per_example, 6 * TRAIN_J / 48)


def test_a_resumed_run_counts_and_predicts_only_the_steps_it_runs(make_trainer, tmp_path):
    first = make_trainer(save_strategy="steps", save_steps=3, subdir="run")
    first.train()
    clock = FakeClock()
    cb = callback(clock, predict_after_steps=1)
    resumed = make_trainer(callbacks=[cb], clock=clock, subdir="run", save_strategy="no")
    resumed.train(resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-3"))
    r = cb.report
    assert r.steps == 3 and r.examples == 24
    assert r.step_energy.first_step == [4, 5, 6]
    assert r.prediction.total_steps == 3
    assert r.prediction.predicted_energy_j == pytest.approx(3 * TRAIN_J)
    assert r.extra["trainer"]["start_step"] == 3
