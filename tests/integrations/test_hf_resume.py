"""A Trainer run stopped after a checkpoint and resumed from it continues its report.

Each run is a real Trainer on a tiny BERT with a fake counter on a fake clock that moves only in
forward calls (see hf_helpers), so every energy is known exactly: a training step is TRAIN_J.
The interrupted run is stopped by a callback raising after step 5 (or, in a subprocess, by
SIGKILL); checkpoints are every 3 steps; the resumed run is compared with an uninterrupted run of
the same steps.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hf_helpers import TRAIN_J, fake_sensor

import bertwatt
from bertwatt.integrations.finetune import measure_finetune
from bertwatt.integrations.report import FinetuneReport
from bertwatt.integrations.resume import STATE_KEY
from bertwatt.integrations.transformers import EnergyCallback
from bertwatt.testing import FakeClock

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

SAVE = {"save_strategy": "steps", "save_steps": 3}


class StopAfter:
    """A TrainerCallback that raises after optimizer step ``step`` (a crash after a checkpoint)."""

    def __new__(cls, step: int) -> Any:
        from transformers import TrainerCallback

        class _Stop(TrainerCallback):
            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                if state.global_step == step:
                    raise RuntimeError(f"stopped after step {step}")

        return _Stop()


def measured(clock: FakeClock) -> EnergyCallback:
    return EnergyCallback(backends=[fake_sensor(clock)], clock=clock)


def interrupted(make_trainer: Any, stop: int, resume: str | None = None, **options: Any) -> Any:
    """Run (or resume) in ``run/`` until a crash after step ``stop``; return the callback."""
    clock = FakeClock()
    cb = measured(clock)
    trainer = make_trainer(
        callbacks=[cb, StopAfter(stop)], clock=clock, subdir="run", **SAVE, **options
    )
    with pytest.raises(RuntimeError, match="stopped after step"):
        trainer.train(resume_from_checkpoint=resume)
    cb.meter.stop(warn=False)  # the process "died": nothing more is measured or written
    return cb


def finished(make_trainer: Any, subdir: str, resume: str | None = None, **options: Any) -> Any:
    clock = FakeClock()
    cb = measured(clock)
    trainer = make_trainer(callbacks=[cb], clock=clock, subdir=subdir, **SAVE, **options)
    trainer.train(resume_from_checkpoint=resume)
    return cb, trainer


def test_checkpoint_carries_the_figures_at_its_step(make_trainer, tmp_path):
    interrupted(make_trainer, stop=5)
    state = json.loads((tmp_path / "run" / "checkpoint-3" / "trainer_state.json").read_text())
    figures = state["stateful_callbacks"][STATE_KEY]["ranks"]["0"]
    assert figures["step"] == 3 and figures["steps"] == 3 and figures["examples"] == 24
    assert figures["energy_j"] == pytest.approx(3 * TRAIN_J)
    assert figures["segments"][0]["ended_by"] == "running"


def test_resumed_run_equals_an_uninterrupted_one(make_trainer, tmp_path):
    first = interrupted(make_trainer, stop=5)
    cb, trainer = finished(make_trainer, "run", resume=str(tmp_path / "run" / "checkpoint-3"))
    full, full_trainer = finished(make_trainer, "full")
    r, u = cb.report, full.report
    assert (r.steps, r.examples, r.tokens_padded, r.tokens_nonpadding) == (
        u.steps,
        u.examples,
        u.tokens_padded,
        u.tokens_nonpadding,
    )
    assert r.steps == 6
    assert r.energy_j == pytest.approx(u.energy_j) == pytest.approx(6 * TRAIN_J)
    # this session's own window measured only the 3 steps it ran
    assert r.channel("cpu:0").energy_j == pytest.approx(3 * TRAIN_J)
    assert r.phase_metrics["train"].energy_j == pytest.approx(u.phase_metrics["train"].energy_j)
    assert r.phase_metrics["train"].j_per_token_padded == pytest.approx(
        u.phase_metrics["train"].j_per_token_padded
    )
    assert r.phase_metrics["run"].examples == u.phase_metrics["run"].examples

    assert [s.ended_by for s in r.segments] == ["interrupted", "completed"]
    assert [s.index for s in r.segments] == [0, 1]
    assert [s.steps for s in r.segments] == [3, 3]
    assert sum(s.energy_j for s in r.segments) == pytest.approx(r.energy_j)
    assert r.segments[0].run_id != r.segments[1].run_id == r.run_id
    assert r.status == "complete"

    resume = r.resume
    assert resume is not None and resume.from_step == 3
    assert resume.previous_energy_j == pytest.approx(3 * TRAIN_J)
    # the interrupted run logged step 4 (logging_steps=2) then died after step 5: the last known
    # activity is step 4's log, one training step after the checkpoint
    assert resume.lost_energy_upper_j == pytest.approx(TRAIN_J)
    assert "upper bound" in resume.basis and "step 4" in resume.basis
    assert "resumed at step 3" in r.summary()

    # the logged cumulative energy continues where the interrupted run's checkpoint left it
    def logged(t: Any) -> dict[int, float]:
        return {h["step"]: h["energy/kwh"] for h in t.state.log_history if "energy/kwh" in h}

    resumed_logs, full_logs = logged(trainer), logged(full_trainer)
    assert set(resumed_logs) == set(full_logs) == {2, 4, 6}  # step 2: history from the checkpoint
    for step in (2, 4, 6):
        assert resumed_logs[step] == pytest.approx(full_logs[step])

    # the file continues the interrupted run's report; that one's last version is kept aside
    path = tmp_path / "run" / "bertwatt" / "report.json"
    loaded = bertwatt.load_report(path)
    assert isinstance(loaded, FinetuneReport) and loaded.kind == "finetune"
    assert len(loaded.segments) == 2 and loaded.energy_j == pytest.approx(6 * TRAIN_J)
    kept = list((path.parent / "segments").glob("*.json"))
    assert [p.name for p in kept] == [f"0-{first.session.run_id}.json"]
    old = bertwatt.load_report(kept[0])
    assert old.run_id == r.segments[0].run_id and old.status == "running"


def test_resumed_twice_lists_three_segments(make_trainer, tmp_path):
    ck = tmp_path / "run"
    interrupted(make_trainer, stop=5, num_train_epochs=2)
    interrupted(make_trainer, stop=8, resume=str(ck / "checkpoint-3"), num_train_epochs=2)
    cb, _ = finished(make_trainer, "run", resume=str(ck / "checkpoint-6"), num_train_epochs=2)
    full, _ = finished(make_trainer, "full", num_train_epochs=2)
    r, u = cb.report, full.report
    assert (r.steps, r.examples, r.tokens_padded) == (u.steps, u.examples, u.tokens_padded)
    assert r.energy_j == pytest.approx(u.energy_j) == pytest.approx(12 * TRAIN_J)
    assert [s.steps for s in r.segments] == [3, 3, 6]
    assert [s.ended_by for s in r.segments] == ["interrupted", "interrupted", "completed"]
    assert len({s.run_id for s in r.segments}) == 3
    assert r.resume.from_step == 6
    assert r.resume.previous_energy_j == pytest.approx(6 * TRAIN_J)
    assert r.phase_metrics["epoch-1"].steps == 6 and r.phase_metrics["epoch-2"].steps == 6
    assert r.run.flops_estimate == pytest.approx(6 * r.run.parameters_total * u.tokens_padded)


@pytest.mark.slow
def test_resume_after_sigkill(make_trainer, tmp_path):
    """The interrupted run is a real process killed with SIGKILL after step 5."""
    script = tmp_path / "killed.py"
    script.write_text(
        f"""
import os, signal, sys
sys.path.insert(0, {str(HERE)!r})
import torch
torch.set_num_threads(1)
from transformers import TrainerCallback
from hf_helpers import TINY, ClockedForward, fake_sensor
from bertwatt.integrations.demo import build_trainer
from bertwatt.integrations.transformers import EnergyCallback
from bertwatt.testing import FakeClock

class Kill(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 5:
            os.kill(os.getpid(), signal.SIGKILL)

clock = FakeClock()
trainer = build_trainer(
    {str(tmp_path / "run")!r}, train_examples=48, eval_examples=16, model_options=TINY,
    callbacks=[EnergyCallback(backends=[fake_sensor(clock)], clock=clock), Kill()],
    per_device_train_batch_size=8, per_device_eval_batch_size=8,
    train_sampling_strategy="sequential", logging_steps=2, save_strategy="steps", save_steps=3,
)
trainer.model.register_forward_pre_hook(ClockedForward(clock), with_kwargs=True)
trainer.train()
"""
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=240, env=env
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert (tmp_path / "run" / "checkpoint-3").is_dir()
    assert not (tmp_path / "run" / "checkpoint-6").exists()
    cb, _ = finished(make_trainer, "run", resume=str(tmp_path / "run" / "checkpoint-3"))
    full, _ = finished(make_trainer, "full")
    r, u = cb.report, full.report
    assert (r.steps, r.examples, r.tokens_padded) == (u.steps, u.examples, u.tokens_padded)
    assert r.energy_j == pytest.approx(u.energy_j)
    assert [s.ended_by for s in r.segments] == ["interrupted", "completed"]
    assert r.resume.lost_energy_upper_j == pytest.approx(TRAIN_J)


def test_resume_from_the_last_checkpoint_with_true(make_trainer, tmp_path):
    interrupted(make_trainer, stop=5)
    clock = FakeClock()
    cb = EnergyCallback(backends=[fake_sensor(clock)], clock=clock, predict_after_steps=1)
    trainer = make_trainer(callbacks=[cb], clock=clock, subdir="run", **SAVE)
    trainer.train(resume_from_checkpoint=True)
    r = cb.report
    assert r.resume.from_step == 3 and r.steps == 6
    # the prediction covers this session; the logged prediction adds the earlier segment
    assert r.prediction.predicted_energy_j == pytest.approx(3 * TRAIN_J)
    assert any("resumed run: predicted and actual" in n for n in r.prediction.notes)
    logged = [
        h["energy/predicted_kwh"]
        for h in trainer.state.log_history[-3:]
        if "energy/predicted_kwh" in h
    ]
    assert logged and logged[-1] * 3.6e6 == pytest.approx(6 * TRAIN_J)


def test_restoring_callback_states_keeps_the_callback(make_trainer, tmp_path):
    interrupted(make_trainer, stop=5)
    cb, trainer = finished(
        make_trainer,
        "run",
        resume=str(tmp_path / "run" / "checkpoint-3"),
        restore_callback_states_from_checkpoint=True,
    )
    assert any(c is cb for c in trainer.callback_handler.callbacks)
    assert cb.report.steps == 6 and cb.report.resume is not None


def test_checkpoint_without_bertwatt_figures_says_so(make_trainer, tmp_path):
    finished_plain = make_trainer(subdir="run", **SAVE)
    finished_plain.train()
    cb, _ = finished(make_trainer, "run", resume=str(tmp_path / "run" / "checkpoint-3"))
    r = cb.report
    assert r.resume is None and r.steps == 3 and len(r.segments) == 1
    assert any("carries no bertwatt figures" in w for w in r.warnings)


def test_figures_for_another_step_are_not_used(make_trainer, tmp_path):
    interrupted(make_trainer, stop=5)
    path = tmp_path / "run" / "checkpoint-3" / "trainer_state.json"
    state = json.loads(path.read_text())
    state["stateful_callbacks"][STATE_KEY]["ranks"]["0"]["step"] = 2
    path.write_text(json.dumps(state))
    cb, _ = finished(make_trainer, "run", resume=str(path.parent))
    r = cb.report
    assert r.resume is None and r.steps == 3
    assert any("are for step 2, not for step 3" in w for w in r.warnings)


def test_unknown_lost_energy_without_the_interrupted_report(make_trainer, tmp_path):
    interrupted(make_trainer, stop=5)
    (tmp_path / "run" / "bertwatt" / "report.json").unlink()
    cb, _ = finished(make_trainer, "run", resume=str(tmp_path / "run" / "checkpoint-3"))
    r = cb.report
    assert r.resume.previous_energy_j == pytest.approx(3 * TRAIN_J)
    assert r.resume.lost_energy_upper_j is None
    assert "unknown: no report of the interrupted session" in r.resume.basis
    assert r.energy_j == pytest.approx(6 * TRAIN_J)


def test_running_report_and_checkpoints_while_training(make_trainer, tmp_path):
    """The report written at a checkpoint is 'running' with a running segment; the final is not."""
    interrupted(make_trainer, stop=5)
    report = bertwatt.load_report(tmp_path / "run" / "bertwatt" / "report.json")
    assert report.status == "running"
    assert [s.ended_by for s in report.segments] == ["running"]
    progress = json.loads((tmp_path / "run" / "bertwatt" / "report.progress").read_text())
    assert progress["step"] == 4 and progress["run_id"] == report.run_id


def test_progress_at_step_ends_bounds_the_lost_energy_without_logs(make_trainer, tmp_path):
    """With no log after the checkpoint, the progress recorded at step ends (at most one per
    second of the meter's clock: steps 2 and 4 here) is the last known activity."""
    interrupted(make_trainer, stop=5, logging_steps=100)
    progress = json.loads((tmp_path / "run" / "bertwatt" / "report.progress").read_text())
    assert progress["step"] == 4
    cb, _ = finished(make_trainer, "run", resume=str(tmp_path / "run" / "checkpoint-3"))
    assert cb.report.resume.lost_energy_upper_j == pytest.approx(TRAIN_J)


def test_emissions_continue(make_trainer, tmp_path):
    intensity = pytest.importorskip("bertwatt.carbon.intensity")
    carbon = intensity.CarbonIntensity.constant(250.0, source="test utility", year=2024)

    def cb_with_carbon(clock: FakeClock) -> EnergyCallback:
        return EnergyCallback(backends=[fake_sensor(clock)], clock=clock, carbon=carbon, pue=1.2)

    clock = FakeClock()
    cb = cb_with_carbon(clock)
    trainer = make_trainer(
        callbacks=[cb, StopAfter(5)], clock=clock, subdir="run", logging_steps=3, **SAVE
    )
    with pytest.raises(RuntimeError):
        trainer.train()
    cb.meter.stop(warn=False)
    clock = FakeClock()
    cb = cb_with_carbon(clock)
    trainer = make_trainer(callbacks=[cb], clock=clock, subdir="run", logging_steps=3, **SAVE)
    trainer.train(resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-3"))
    r = cb.report
    grams = 6 * TRAIN_J / 3.6e6 * 250.0 * 1.2
    assert r.emissions_g == pytest.approx(grams)
    assert r.phase_metrics["run"].emissions_g == pytest.approx(grams)
    for name in ("train", "epoch-1", "checkpoint"):
        m = r.phase_metrics[name]
        assert m.emissions_g == pytest.approx(m.energy_j / 3.6e6 * 250.0 * 1.2, abs=1e-12), name
    assert "gCO2e" in r.resume.basis
    logged = {
        h["step"]: h["energy/gco2e"] for h in trainer.state.log_history if "energy/gco2e" in h
    }
    assert logged[6] == pytest.approx(grams)
    from bertwatt.report.merge import merge_paths

    merged = merge_paths([tmp_path / "run" / "bertwatt" / "report.json"]).report
    assert merged.emissions_g == pytest.approx(grams)
    assert merged.phase_metrics["train"].emissions_g == pytest.approx(
        r.phase_metrics["train"].emissions_g
    )


def test_evaluations_before_a_save_are_counted_once(make_trainer, tmp_path):
    """Epoch saves after epoch evaluations: the figures stored with a checkpoint include the
    evaluation that preceded it, so the resumed run neither loses nor repeats it."""
    options = {"num_train_epochs": 2, "eval_strategy": "epoch", "save_strategy": "epoch"}
    clock = FakeClock()
    cb = measured(clock)
    trainer = make_trainer(callbacks=[cb, StopAfter(8)], clock=clock, subdir="run", **options)
    with pytest.raises(RuntimeError):
        trainer.train()
    cb.meter.stop(warn=False)
    clock = FakeClock()
    cb = measured(clock)
    trainer = make_trainer(callbacks=[cb], clock=clock, subdir="run", **options)
    trainer.train(resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-6"))
    clock = FakeClock()
    full = measured(clock)
    make_trainer(callbacks=[full], clock=clock, subdir="full", **options).train()
    r, u = cb.report, full.report
    assert r.energy_j == pytest.approx(u.energy_j)
    for name in ("train", "eval", "epoch-1", "epoch-2", "run"):
        a, b = r.phase_metrics[name], u.phase_metrics[name]
        assert (a.examples, a.steps, a.tokens_padded) == (b.examples, b.steps, b.tokens_padded)
        assert a.energy_j == pytest.approx(b.energy_j), name
    assert r.phase_metrics["eval"].examples == 2 * 16
    assert [s.steps for s in r.segments] == [6, 6]


def test_best_model_saves_store_the_figures(make_trainer, tmp_path):
    options = {
        "eval_strategy": "steps",
        "eval_steps": 3,
        "save_strategy": "best",
        "metric_for_best_model": "eval_loss",
    }
    clock = FakeClock()
    cb = measured(clock)
    trainer = make_trainer(callbacks=[cb, StopAfter(5)], clock=clock, subdir="best", **options)
    with pytest.raises(RuntimeError):
        trainer.train()
    cb.meter.stop(warn=False)
    state = json.loads((tmp_path / "best" / "checkpoint-3" / "trainer_state.json").read_text())
    figures = state["stateful_callbacks"][STATE_KEY]["ranks"]["0"]
    assert figures["step"] == 3 and figures["phases"]["eval"]["examples"] == 16
    clock = FakeClock()
    cb = measured(clock)
    resumed = make_trainer(callbacks=[cb], clock=clock, subdir="best", **options)
    resumed.train(resume_from_checkpoint=str(tmp_path / "best" / "checkpoint-3"))
    assert cb.report.steps == 6 and cb.report.resume.from_step == 3
    assert not any("saved without bertwatt" in w for w in cb.report.warnings)


def test_measure_finetune_resumes_through_train_kwargs(make_trainer, tmp_path):
    interrupted(make_trainer, stop=5)
    clock = FakeClock()
    trainer = make_trainer(clock=clock, subdir="run", **SAVE)
    report = measure_finetune(
        trainer,
        backends=[fake_sensor(clock)],
        clock=clock,
        train_kwargs={"resume_from_checkpoint": str(tmp_path / "run" / "checkpoint-3")},
    )
    assert report.steps == 6 and report.resume.from_step == 3
    assert report.energy_j == pytest.approx(6 * TRAIN_J + report.phases["eval"].energy_j)
    assert [s.ended_by for s in report.segments] == ["interrupted", "completed"]


def test_a_resume_that_died_before_its_first_checkpoint(make_trainer, tmp_path):
    """Resumed from step 3, died at step 5 before saving again; resumed from step 3 once more:
    the dead session's report is kept as abandoned and its lost energy is stated unknown."""
    interrupted(make_trainer, stop=5)
    second = interrupted(make_trainer, stop=5, resume=str(tmp_path / "run" / "checkpoint-3"))
    # it wrote nothing after resuming (no checkpoint, no 60 s interval): write what it had
    second.session.build_report(second.meter.report).to_json(
        tmp_path / "run" / "bertwatt" / "report.json"
    )
    cb, _ = finished(make_trainer, "run", resume=str(tmp_path / "run" / "checkpoint-3"))
    r = cb.report
    assert r.steps == 6 and r.energy_j == pytest.approx(6 * TRAIN_J)
    assert r.resume.lost_energy_upper_j is None
    assert "not by the session that saved the checkpoint" in r.resume.basis
    names = sorted(p.name for p in (tmp_path / "run" / "bertwatt" / "segments").iterdir())
    assert f"abandoned-{second.session.run_id}.json" in names


def test_a_torn_progress_file_is_ignored(make_trainer, tmp_path):
    interrupted(make_trainer, stop=5)
    (tmp_path / "run" / "bertwatt" / "report.progress").write_text('{"run_id": "ab')
    cb, _ = finished(make_trainer, "run", resume=str(tmp_path / "run" / "checkpoint-3"))
    r = cb.report
    # the last known activity falls back to the report written at the checkpoint (on_save)
    assert r.resume.lost_energy_upper_j == pytest.approx(0.0, abs=1e-9)
    assert "its report written at" in r.resume.basis and "not known" in r.resume.basis
    assert r.energy_j == pytest.approx(6 * TRAIN_J)


def test_a_corrupt_interrupted_report_is_named_and_the_run_still_continues(make_trainer, tmp_path):
    interrupted(make_trainer, stop=5)
    (tmp_path / "run" / "bertwatt" / "report.json").write_text("{not json")
    cb, _ = finished(make_trainer, "run", resume=str(tmp_path / "run" / "checkpoint-3"))
    r = cb.report
    assert r.energy_j == pytest.approx(6 * TRAIN_J) and r.resume.lost_energy_upper_j is None
    assert any("report.json is not JSON" in w for w in r.warnings)


def test_merging_a_resumed_report_keeps_its_earlier_segments(make_trainer, tmp_path):
    from bertwatt.report.merge import merge_paths

    interrupted(make_trainer, stop=5)
    finished(make_trainer, "run", resume=str(tmp_path / "run" / "checkpoint-3"))
    path = tmp_path / "run" / "bertwatt" / "report.json"
    kept = next((path.parent / "segments").glob("*.json"))
    resumed = bertwatt.load_report(path)
    for files in ([path], [path, kept], [path.parent]):
        merged = merge_paths(files).report
        assert merged.energy_j == pytest.approx(6 * TRAIN_J), files
        assert merged.steps == 6 and merged.examples == 48
        assert merged.resume == resumed.resume
        assert "earlier segments" in merged.total_basis
        for name in ("train", "epoch-1", "run"):
            a, b = merged.phase_metrics[name], resumed.phase_metrics[name]
            assert a.energy_j == pytest.approx(b.energy_j), name
            assert a.j_per_token_padded == pytest.approx(b.j_per_token_padded), name
            assert a.duration_s == pytest.approx(b.duration_s), name
