"""Resuming a Trainer run: the figures a checkpoint carries, and how the report continues from them.

Where the state lives
---------------------
In the Trainer's own checkpoint. Just before the Trainer writes a checkpoint (when it has decided
to save, after the evaluation that precedes the save), :class:`EnergyCallback` puts the run's
figures so far into ``TrainerState.stateful_callbacks["bertwatt"]``, which the Trainer writes to
``checkpoint-N/trainer_state.json`` and loads back on ``trainer.train(resume_from_checkpoint=...)``
before ``on_train_begin``. So the figures travel with the checkpoint (copied, moved, or chosen by
``resume_from_checkpoint=True``) and always belong to the step the run resumes from. The key is
not a callback class name, so ``restore_callback_states_from_checkpoint`` never rebuilds the
callback from it. Each process keeps its own entry (``ranks``), but only the main process writes
``trainer_state.json``: other ranks of a resumed distributed run start their totals afresh and
say so.

The state (format 1) is a small JSON object: the cumulative totals (energy, emissions, examples,
steps, tokens), per-phase figures, per-step record totals (for the live ``energy/...`` ratios),
the run facts, the segments so far, and when and at which step it was taken.

The interrupted session's last report (``<output_dir>/bertwatt/report.json``, written at every
checkpoint and every ``checkpoint_interval_s`` at a log) tells how far it got: the time between
the checkpoint and that last write, times the larger of the session's mean power and the power
measured in that interval, is the stated upper bound of the energy lost after the checkpoint
(spent, then redone by the resumed run; not in the totals). Before the resumed session replaces
that file, it is kept as ``<output_dir>/bertwatt/segments/<index>-<run_id>.json``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bertwatt.report.finetune import FinetuneReport

__all__ = [
    "STATE_FORMAT",
    "STATE_KEY",
    "Previous",
    "checkpoint_state",
    "previous_from_state",
    "progress_path",
    "read_state",
    "store_state",
    "write_progress",
]

logger = logging.getLogger(__name__)

#: Key of bertwatt's entry in ``TrainerState.stateful_callbacks``.
STATE_KEY = "bertwatt"
#: Version of that entry's layout.
STATE_FORMAT = 1

_PHASE_FIELDS = (
    "energy_j",
    "duration_s",
    "examples",
    "steps",
    "batches",
    "tokens_padded",
    "tokens_nonpadding",
    "emissions_g",
)
_RECORD_FIELDS = ("steps", "energy_j", "examples", "tokens_padded", "tokens_nonpadding")


@dataclass(slots=True)
class Previous:
    """The earlier sessions of a resumed run, as of the checkpoint it resumed from.

    Attributes:
        from_step: the checkpoint's optimizer step (``TrainerState.global_step``).
        run_id: run id of the session that saved the checkpoint.
        saved_at: when the figures were taken (just before the checkpoint was written).
        energy_j, emissions_g: cumulative totals then (None: not measured / no carbon).
        examples, steps, tokens_padded, tokens_nonpadding: cumulative training work then.
        step_records: cumulative per-step record totals (steps, energy_j, examples, tokens).
        phases: cumulative per-phase figures (``phase_metrics`` inputs), ``run`` included.
        segments: the earlier segments; the last one ends at the checkpoint.
        run: run facts known then (``report.run`` fields).
        lost_energy_upper_j, lost_basis: energy spent after the checkpoint and lost, and how
            that bound was found.
    """

    from_step: int
    run_id: str
    saved_at: datetime
    energy_j: float | None
    emissions_g: float | None
    examples: int = 0
    steps: int = 0
    tokens_padded: int = 0
    tokens_nonpadding: int = 0
    step_records: dict[str, float] = field(default_factory=dict)
    phases: dict[str, dict[str, Any]] = field(default_factory=dict)
    segments: list[dict[str, Any]] = field(default_factory=list)
    run: dict[str, Any] = field(default_factory=dict)
    lost_energy_upper_j: float | None = None
    lost_basis: str = ""

    @property
    def basis(self) -> str:
        """How ``previous_energy_j`` and the lost-energy bound were found, in words."""
        n = len(self.segments)
        which = "segment 0" if n == 1 else f"segments 0-{n - 1}"
        energy = "unknown" if self.energy_j is None else f"{self.energy_j:,.3f} J"
        emissions = ""
        if self.emissions_g is not None:
            emissions = (
                f"; their emissions, {self.emissions_g:.6g} gCO2e, are their energy x the carbon "
                "intensity (x PUE) at the last checkpoint of each"
            )
        return (
            f"previous_energy_j: {energy} of {which} up to the checkpoint at step "
            f"{self.from_step} ({_iso(self.saved_at)}), read from the checkpoint's "
            f"trainer_state.json (stateful_callbacks[{STATE_KEY!r}]) and included in the "
            f"totals{emissions}; lost_energy_upper_j: {self.lost_basis}"
        )


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        t = value
    elif isinstance(value, str):
        try:
            t = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    v = float(value)
    return v if v == v and v not in (float("inf"), float("-inf")) else None


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


# ---------------------------------------------------------------------- writing the state
def checkpoint_state(
    report: FinetuneReport,
    *,
    step: int,
    step_records: dict[str, float],
) -> dict[str, Any]:
    """The state of one process at a checkpoint, from its cumulative report built just now."""
    phases = {
        name: {f: getattr(m, f) for f in _PHASE_FIELDS} for name, m in report.phase_metrics.items()
    }
    segments = [s.model_dump(mode="json") for s in report.segments]
    session = report.segments[-1] if report.segments else None
    return {
        "format": STATE_FORMAT,
        "run_id": report.run_id,
        "saved_at": report.ended_at.isoformat(),
        "step": int(step),
        "energy_j": report.energy_j,
        "emissions_g": report.emissions_g,
        "examples": report.examples,
        "steps": report.steps,
        "tokens_padded": report.tokens_padded,
        "tokens_nonpadding": report.tokens_nonpadding,
        "step_records": {k: step_records.get(k, 0) for k in _RECORD_FIELDS},
        "phases": phases,
        "segments": segments,
        "session_energy_j": session.energy_j if session is not None else None,
        "session_duration_s": report.duration_s,
        "run": report.run.model_dump(mode="json", exclude_none=True) if report.run else {},
    }


def store_state(trainer_state: Any, rank: int, data: dict[str, Any]) -> None:
    """Put ``data`` under this process's entry of ``stateful_callbacks["bertwatt"]``."""
    holder = getattr(trainer_state, "stateful_callbacks", None)
    if not isinstance(holder, dict):
        holder = {}
        trainer_state.stateful_callbacks = holder
    entry = holder.get(STATE_KEY)
    if not isinstance(entry, dict) or entry.get("format") != STATE_FORMAT:
        entry = {"format": STATE_FORMAT, "ranks": {}}
    ranks = entry.setdefault("ranks", {})
    ranks[str(int(rank))] = data
    holder[STATE_KEY] = entry


def progress_path(report_path: Path) -> Path:
    """The progress file next to a report: ``report.json`` -> ``report.progress``."""
    return report_path.with_suffix(".progress")


def write_progress(
    report_path: Path, *, run_id: str, at: datetime, step: int, energy_j: float | None
) -> None:
    """Record the run's last known activity (written at every Trainer log, a few µs; not atomic:
    a torn file is ignored when read)."""
    text = json.dumps(
        {"run_id": run_id, "at": at.isoformat(), "step": int(step), "energy_j": energy_j}
    )
    path = progress_path(report_path)
    try:
        path.write_text(text, encoding="utf-8")
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _last_activity(
    found: dict[str, Any], report_path: Path | None
) -> tuple[datetime | None, float | None, str]:
    """When the interrupted session was last known active, its energy then, and the evidence."""
    t = _time(found.get("ended_at"))
    energy = _number(found.get("energy_j"))
    what = "its report written at"
    if report_path is None:
        return t, energy, what
    try:
        progress = json.loads(progress_path(report_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return t, energy, what
    if not isinstance(progress, dict) or progress.get("run_id") != found.get("run_id"):
        return t, energy, what
    tp = _time(progress.get("at"))
    if tp is not None and (t is None or tp > t):
        step = progress.get("step")
        return tp, _number(progress.get("energy_j")), f"its last Trainer log (step {step}) at"
    return t, energy, what


# ---------------------------------------------------------------------- reading it back
def read_state(trainer_state: Any, rank: int) -> tuple[dict[str, Any] | None, str | None]:
    """This process's checkpointed figures, or ``(None, why not)``."""
    holder = getattr(trainer_state, "stateful_callbacks", None)
    entry = holder.get(STATE_KEY) if isinstance(holder, dict) else None
    if entry is None:
        return None, (
            "the checkpoint's trainer_state.json carries no bertwatt figures (it was saved "
            "without EnergyCallback, or by bertwatt 0.1)"
        )
    if not isinstance(entry, dict) or entry.get("format") != STATE_FORMAT:
        fmt = entry.get("format") if isinstance(entry, dict) else type(entry).__name__
        return None, (
            f"the checkpoint's bertwatt figures have format {fmt!r}, this bertwatt reads format "
            f"{STATE_FORMAT}"
        )
    data = (entry.get("ranks") or {}).get(str(int(rank)))
    if not isinstance(data, dict):
        return None, (
            f"the checkpoint carries no bertwatt figures for process {rank} (only the main "
            "process writes trainer_state.json)"
        )
    if not isinstance(data.get("run_id"), str) or _time(data.get("saved_at")) is None:
        return None, "the checkpoint's bertwatt figures are incomplete (no run_id or saved_at)"
    return data, None


def _read_report(path: Path | None) -> tuple[dict[str, Any] | None, str, str | None]:
    """(the report's JSON object, its text, a problem): a missing file is no problem."""
    if path is None:
        return None, "", None
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, "", None
    except OSError as err:
        return None, "", f"cannot read {path}: {err.strerror}"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        return None, "", f"{path} is not JSON ({err.msg})"
    if not isinstance(data, dict):
        return None, "", f"{path} is not a report"
    return data, text, None


def _lost(
    state: dict[str, Any], found: dict[str, Any] | None, path: Path | None
) -> tuple[float | None, str, str]:
    """(upper bound J or None, basis, how the interrupted session ended)."""
    step = state.get("step")
    t1 = _time(state.get("saved_at"))
    assert t1 is not None  # read_state checked it
    after = f"after its checkpoint at step {step} ({_iso(t1)})"
    if found is None:
        where = f"at {path}" if path is not None else "(the callback writes no report file)"
        return None, f"unknown: no report of the interrupted session {where}", "interrupted"
    if found.get("run_id") != state.get("run_id"):
        return (
            None,
            f"unknown: the report at {path} was written by run {found.get('run_id')!r}, not by "
            f"the session that saved the checkpoint ({state.get('run_id')!r})",
            "interrupted",
        )
    segments = found.get("segments") or []
    last = segments[-1] if segments and isinstance(segments[-1], dict) else {}
    ended_by = last.get("ended_by")
    if ended_by not in ("completed", "error", "interrupted"):
        ended_by = "interrupted"
    t2, e2, evidence = _last_activity(found, path)
    if t2 is None:
        return None, f"unknown: the report at {path} has no ended_at", ended_by
    dt = (t2 - t1).total_seconds()
    if dt <= 0:
        return (
            0.0,
            f"no activity of the interrupted session is known {after}: {evidence} "
            f"{_iso(t2)} is the latest; work after that is not known",
            ended_by,
        )
    e_session = _number(state.get("session_energy_j"))
    d_session = _number(state.get("session_duration_s"))
    p_mean = e_session / d_session if e_session is not None and d_session else None
    e1 = _number(state.get("energy_j"))
    tail = e2 - e1 if e1 is not None and e2 is not None and e2 >= e1 else None
    p_tail = tail / dt if tail is not None else None
    powers = [p for p in (p_mean, p_tail) if p is not None]
    if not powers:
        return None, f"unknown: the interrupted session measured no energy {after}", ended_by
    power = max(powers)
    parts = []
    if p_mean is not None:
        parts.append(f"its mean power {p_mean:,.2f} W")
    if p_tail is not None:
        parts.append(f"{tail:,.3f} J measured in that interval ({p_tail:,.2f} W)")
    return (
        dt * power,
        f"upper bound of the energy the interrupted session spent {after} and until its last "
        f"known activity ({evidence} {_iso(t2)}): {dt:,.1f} s x {power:,.2f} W, the larger of "
        f"{' and '.join(parts)}; work after {_iso(t2)}, if any, is not known (bertwatt records "
        "progress at every Trainer log and writes the report at every checkpoint)",
        ended_by,
    )


def previous_from_state(
    state: dict[str, Any], report_path: Path | None
) -> tuple[Previous, list[str]]:
    """The :class:`Previous` figures of a resumed run, and problems met (for the report).

    Reads the interrupted session's last report at ``report_path`` for the lost-energy bound,
    and keeps a copy of it under ``segments/`` next to it before the new session replaces it.
    """
    problems: list[str] = []
    found, text, problem = _read_report(report_path)
    if problem is not None:
        problems.append(f"resume: {problem}")
    upper, basis, ended_by = _lost(state, found, report_path)
    saved_at = _time(state["saved_at"])
    assert saved_at is not None
    segments = [dict(s) for s in state.get("segments") or [] if isinstance(s, dict)]
    if segments:
        segments[-1]["ended_by"] = ended_by
        segments[-1]["ended_at"] = saved_at.isoformat()
    if found is not None and report_path is not None:
        run_id = str(found.get("run_id", "unknown"))
        # the session that saved the checkpoint is the last earlier segment; a report of
        # another session (e.g. an earlier resume that died before its first checkpoint) is kept
        # as abandoned: its work is not in the totals
        index = len(segments) - 1 if segments else 0
        name = f"{index}-{run_id}" if run_id == state.get("run_id") else f"abandoned-{run_id}"
        copy = report_path.parent / "segments" / f"{name}.json"
        try:
            from bertwatt.report.io import write_text_atomic

            write_text_atomic(copy, text)
        except Exception as err:  # keeping the copy is a courtesy; the figures are in the state
            problems.append(f"resume: could not keep the interrupted session's report: {err}")
    records = state.get("step_records") or {}
    prev = Previous(
        from_step=_count(state.get("step")),
        run_id=str(state["run_id"]),
        saved_at=saved_at,
        energy_j=_number(state.get("energy_j")),
        emissions_g=_number(state.get("emissions_g")),
        examples=_count(state.get("examples")),
        steps=_count(state.get("steps")),
        tokens_padded=_count(state.get("tokens_padded")),
        tokens_nonpadding=_count(state.get("tokens_nonpadding")),
        step_records={k: float(_number(records.get(k)) or 0.0) for k in _RECORD_FIELDS},
        phases={
            str(k): dict(v) for k, v in (state.get("phases") or {}).items() if isinstance(v, dict)
        },
        segments=segments,
        run=dict(state.get("run") or {}),
        lost_energy_upper_j=upper,
        lost_basis=basis,
    )
    logger.info(
        "bertwatt: resuming from step %s; %s J of earlier segments carried over",
        prev.from_step,
        prev.energy_j,
    )
    return prev, problems
