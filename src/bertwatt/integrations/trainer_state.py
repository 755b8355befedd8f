"""A Trainer run's figures in its checkpoints, and its progress file (for :mod:`.resume`).

:class:`~bertwatt.EnergyCallback` calls these at its events: :func:`store_figures` before the
Trainer saves a checkpoint, :func:`record_progress` at logs (and about once a second at step
ends), :func:`continue_from_checkpoint` at the train begin of a resumed run. :func:`live_line`
puts the live line into the Trainer's progress bar.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bertwatt.integrations.resume import (
    checkpoint_state,
    previous_from_state,
    read_state,
    store_state,
    write_progress,
)
from bertwatt.integrations.session import FinetuneSession
from bertwatt.integrations.snapshot import SessionSnapshot
from bertwatt.live import LiveLine

if TYPE_CHECKING:
    from bertwatt.integrations.resume import Previous

__all__ = [
    "add_emissions_so_far",
    "continue_from_checkpoint",
    "live_line",
    "record_progress",
    "store_figures",
]


def _rank(args: Any) -> int:
    return int(getattr(args, "process_index", 0) or 0)


def add_emissions_so_far(s: SessionSnapshot, data: dict[str, Any]) -> None:
    """Fill the emissions of checkpoint figures (a report built while running has none): the
    earlier segments' emissions plus this session's energy x the carbon intensity (x PUE) now,
    as in the ``energy/gco2e`` log key; left None without an intensity."""
    factor = s.intensity_g_per_kwh
    if factor is None:
        return
    earlier = s.previous.phases if s.previous is not None else {}
    for name, figures in data["phases"].items():
        before = earlier.get(name, {})
        energy, energy_before = figures.get("energy_j"), before.get("energy_j") or 0.0
        grams_before = before.get("emissions_g") if before else 0.0
        if energy is None or grams_before is None:
            continue
        figures["emissions_g"] = grams_before + (energy - energy_before) / 3.6e6 * factor
    data["emissions_g"] = data["phases"].get("run", {}).get("emissions_g")


def store_figures(s: FinetuneSession, args: Any, state: Any) -> int:
    """Put the run's figures so far into ``state`` (the TrainerState about to be saved).
    Returns the step they are for."""
    report = s.build_report(s.meter.partial_report())
    step = int(state.global_step or 0)
    data = checkpoint_state(report, step=step, step_records=s.step_record_totals())
    if data["emissions_g"] is None:  # a report built while running has no carbon applied
        add_emissions_so_far(s.snapshot(), data)
    store_state(state, _rank(args), data)
    return step


def record_progress(s: FinetuneSession, report_path: Path, state: Any) -> None:
    """Write the last known activity (step, energy so far) next to the report.

    Raises:
        OSError: the file could not be written.
    """
    meter = s.meter
    energy = meter.snapshot().energy_j
    if s.previous is not None and energy is not None:
        energy = None if s.previous.energy_j is None else s.previous.energy_j + energy
    at = datetime.fromtimestamp(meter.clock.time_ns() / 1e9, tz=UTC)
    if s.run_id is None:  # pinned by the first report built
        return
    write_progress(
        report_path, run_id=s.run_id, at=at, step=int(state.global_step or 0), energy_j=energy
    )


def continue_from_checkpoint(
    s: FinetuneSession, args: Any, state: Any, start_step: int, report_path: Path | None
) -> Previous | None:
    """The earlier sessions' figures the checkpoint of ``start_step`` carries, for the run
    plan (None, and a warning in ``s`` saying why the totals cover this session only)."""
    data, why = read_state(state, _rank(args))
    if data is not None and data.get("step") != start_step:
        why = (
            f"the checkpoint's bertwatt figures are for step {data.get('step')}, not for "
            f"step {start_step} (the save was decided after EnergyCallback's events)"
        )
        data = None
    if data is None:
        s.warn(
            f"resumed from step {start_step}, but {why}: the totals cover this session only "
            f"(steps after {start_step})"
        )
        return None
    previous, problems = previous_from_state(data, report_path)
    for problem in problems:
        s.warn(problem)
    return previous


def live_line(meter: Any, callbacks: list[Any] | None, enabled: bool | None) -> LiveLine:
    """A started :class:`~bertwatt.live.LiveLine` for a Trainer run: drawn into the postfix of
    the Trainer's progress bar when it has one (``ProgressCallback``), else on stderr."""
    from transformers.trainer_callback import ProgressCallback

    progress = next((cb for cb in callbacks or [] if isinstance(cb, ProgressCallback)), None)

    def into_bar(text: str) -> None:
        bar = getattr(progress, "training_bar", None)
        if bar is not None:
            bar.set_postfix_str(text.removeprefix("bertwatt  "), refresh=False)

    return LiveLine(meter, enabled=enabled, sink=into_bar if progress is not None else None).start()
