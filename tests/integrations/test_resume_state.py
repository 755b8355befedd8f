"""The checkpoint state of a resumed run and the lost-energy bound, without a Trainer."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bertwatt.integrations.resume import (
    STATE_FORMAT,
    STATE_KEY,
    previous_from_state,
    read_state,
    store_state,
    write_progress,
)

T1 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def state(**changes: Any) -> dict[str, Any]:
    """Checkpoint figures of a session that ran 100 s at 50 W (5,000 J) up to step 10."""
    data: dict[str, Any] = {
        "format": STATE_FORMAT,
        "run_id": "a" * 32,
        "saved_at": T1.isoformat(),
        "step": 10,
        "energy_j": 5000.0,
        "emissions_g": None,
        "examples": 80,
        "steps": 10,
        "tokens_padded": 800,
        "tokens_nonpadding": 600,
        "step_records": {"steps": 10, "energy_j": 4900.0},
        "phases": {"train": {"energy_j": 4900.0, "duration_s": 98.0, "steps": 10}},
        "segments": [
            {
                "index": 0,
                "run_id": "a" * 32,
                "started_at": (T1 - timedelta(seconds=100)).isoformat(),
                "ended_at": T1.isoformat(),
                "steps": 10,
                "energy_j": 5000.0,
                "ended_by": "running",
            }
        ],
        "session_energy_j": 5000.0,
        "session_duration_s": 100.0,
        "run": {"model_class": "Bert"},
    }
    data.update(changes)
    return data


def report_file(tmp_path: Path, *, seconds: float, energy_j: float, **changes: Any) -> Path:
    """The interrupted session's last report, written ``seconds`` after the checkpoint."""
    path = tmp_path / "bertwatt" / "report.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "run_id": "a" * 32,
        "status": "running",
        "ended_at": (T1 + timedelta(seconds=seconds)).isoformat(),
        "energy_j": energy_j,
        "segments": [{"ended_by": "running"}],
    }
    data.update(changes)
    path.write_text(json.dumps(data))
    return path


def test_state_round_trips_per_rank():
    holder = SimpleNamespace(stateful_callbacks={"TrainerControl": {"args": {}}})
    store_state(holder, 0, state())
    store_state(holder, 1, state(step=10, energy_j=1.0))
    assert holder.stateful_callbacks["TrainerControl"] == {"args": {}}
    data, why = read_state(holder, 1)
    assert why is None and data["energy_j"] == 1.0
    assert read_state(holder, 0)[0]["energy_j"] == 5000.0
    assert "no bertwatt figures for process 2" in read_state(holder, 2)[1]
    assert "carries no bertwatt figures" in read_state(SimpleNamespace(), 0)[1]
    future = SimpleNamespace(stateful_callbacks={STATE_KEY: {"format": 99, "ranks": {}}})
    assert "format 99" in read_state(future, 0)[1]
    broken = SimpleNamespace(stateful_callbacks={STATE_KEY: {"format": 1, "ranks": {"0": {}}}})
    assert "incomplete" in read_state(broken, 0)[1]


def test_bound_uses_the_larger_of_mean_and_measured_tail_power(tmp_path):
    # 10 s after the checkpoint the report says 800 J more: 80 W, above the mean 50 W
    path = report_file(tmp_path, seconds=10, energy_j=5800.0)
    prev, problems = previous_from_state(state(), path)
    assert problems == []
    assert prev.lost_energy_upper_j == pytest.approx(800.0)
    assert "10.0 s x 80.00 W" in prev.lost_basis and "mean power 50.00 W" in prev.lost_basis
    # a quieter tail (200 J in 10 s, 20 W) is bounded by the mean power instead
    path = report_file(tmp_path, seconds=10, energy_j=5200.0)
    prev, _ = previous_from_state(state(), path)
    assert prev.lost_energy_upper_j == pytest.approx(500.0)
    assert prev.segments[-1]["ended_by"] == "interrupted"
    assert prev.segments[-1]["ended_at"] == T1.isoformat()
    assert (prev.from_step, prev.energy_j, prev.steps, prev.examples) == (10, 5000.0, 10, 80)


def test_progress_later_than_the_report_is_the_last_known_activity(tmp_path):
    path = report_file(tmp_path, seconds=2, energy_j=5100.0)
    write_progress(path, run_id="a" * 32, at=T1 + timedelta(seconds=30), step=14, energy_j=6500.0)
    prev, _ = previous_from_state(state(), path)
    assert prev.lost_energy_upper_j == pytest.approx(1500.0)  # 30 s x 50 W (tail: 50 W)
    assert "last Trainer log (step 14)" in prev.lost_basis
    # progress of another run does not count
    write_progress(path, run_id="b" * 32, at=T1 + timedelta(seconds=30), step=14, energy_j=1.0)
    prev, _ = previous_from_state(state(), path)
    assert prev.lost_energy_upper_j == pytest.approx(100.0)  # 2 s x 50 W


def test_a_completed_session_resumed_to_train_further(tmp_path):
    path = report_file(
        tmp_path,
        seconds=5,
        energy_j=5250.0,
        status="complete",
        segments=[{"ended_by": "completed"}],
    )
    prev, _ = previous_from_state(state(), path)
    assert prev.segments[-1]["ended_by"] == "completed"
    assert prev.lost_energy_upper_j == pytest.approx(250.0)
    kept = path.parent / "segments" / f"0-{'a' * 32}.json"
    assert json.loads(kept.read_text())["status"] == "complete"


def test_no_energy_measured_leaves_the_bound_unknown(tmp_path):
    path = report_file(tmp_path, seconds=5, energy_j=None)
    prev, _ = previous_from_state(state(session_energy_j=None, energy_j=None), path)
    assert prev.lost_energy_upper_j is None and "measured no energy" in prev.lost_basis
    assert prev.energy_j is None and "previous_energy_j: unknown" in prev.basis


def test_trainer_facts_from_arguments_and_state():
    from bertwatt.integrations.runinfo import trainer_facts

    args = SimpleNamespace(
        bf16=True,
        per_device_train_batch_size=64,
        gradient_accumulation_steps=4,
        world_size=8,
        auto_find_batch_size=True,
        n_gpu=1,
    )
    loader = SimpleNamespace(dataset=list(range(1000)))
    facts = trainer_facts(args, None, loader, SimpleNamespace(train_batch_size=16))
    assert facts == {
        "precision": "bf16-mixed",
        "batch_size": 16,  # what auto_find_batch_size settled on, not the 64 asked for
        "gradient_accumulation_steps": 4,
        "world_size": 8,
        "dataset_sizes": {"train": 1000},
    }
    streamed = SimpleNamespace(dataset=iter(()))  # an iterable data set has no length
    assert "dataset_sizes" not in trainer_facts(args, None, streamed)
