"""One tool in one process of the peers benchmark; run by ``run.py`` with the peers' venv Python.

``_worker.py energy TOOL CONFIG WINDOWS_JSON``: import TOOL, build its first tracker, print
``READY``, wait for run.py's GO (the simulated GPU's time 0), then measure each ``[start_s, end_s]``
window of the simulated GPU's time with TOOL at CONFIG (``default`` or ``best``); print a JSON
list, one ``{"energy_j": ..., "error": ..., "t_begin": ..., "t_end": ...}`` per window.

``_worker.py cost TOOL CONFIG SECONDS``: in this fresh process, time TOOL's import, then its
construct + start + stop on an empty window (first, then repeated; bertwatt's as a ``with``
block, its report built lazily on first read, see ``COST_END``), then its process CPU during
a ``SECONDS`` window while the main thread sleeps, and the peak RSS the whole run added; print
JSON.

The fake ``pynvml`` is installed by ``_shim/sitecustomize.py`` before this script runs.
"""

from __future__ import annotations

import contextlib
import json
import resource
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from typing import Any

warnings.simplefilter("ignore")
_NS = 1_000_000_000


def _sleep_until(t_ns: int) -> None:
    while True:
        left = t_ns - time.monotonic_ns()
        if left <= 0:
            return
        time.sleep(min(left / _NS, 0.5) if left > 2_000_000 else 0)


# --------------------------------------------------------------------------- the tools
# Each tool: import_() -> None; prepare(config) -> handle; begin(handle); end(handle) -> joules
# of GPU 0 over the window. prepare() runs before the window opens (construction is timed in the
# cost rows, not charged to the window).


def _bertwatt_import() -> None:
    import bertwatt.backends.nvml  # noqa: F401
    from bertwatt import EnergyMeter  # noqa: F401


def _bertwatt_prepare(config: str) -> Any:
    from bertwatt import EnergyMeter

    # Defaults: EnergyMeter() as a user writes it (auto-detected backends, 0.1 s interval).
    # Best: a 0.05 s interval (the counter path needs no polling; the power path samples more).
    return EnergyMeter() if config == "default" else EnergyMeter(interval_s=0.05)


def _bertwatt_begin(meter: Any) -> None:
    meter.start()


def _bertwatt_end(meter: Any) -> float:
    report = meter.stop(warn=False)
    (gpu,) = [c for c in report.channels if c.name == "gpu:0"]
    if gpu.energy_j is None:
        raise RuntimeError("bertwatt: gpu:0 delivered no sample")
    return float(gpu.energy_j)


def _bertwatt_close(meter: Any) -> None:
    # The cost rows time the window as users write it, `with EnergyMeter(): ...`: leaving the
    # block stops the meter; the report (and pydantic) is built when it is first read, which
    # benchmarks/bench_startup.py times apart (issue #11: first read <= 100 ms fresh).
    meter.__exit__(None, None, None)


def _zeus_import() -> None:
    from zeus.monitor import ZeusMonitor  # noqa: F401


def _zeus_prepare(config: str) -> Any:
    from zeus.monitor import ZeusMonitor

    # Best: approx_instant_energy=True (power x time when the counter has not moved).
    return ZeusMonitor(gpu_indices=[0], cpu_indices=[], approx_instant_energy=config == "best")


def _zeus_begin(monitor: Any) -> None:
    monitor.begin_window("w", sync_execution=False)


def _zeus_end(monitor: Any) -> float:
    return float(monitor.end_window("w", sync_execution=False).gpu_energy[0])


def _codecarbon_import() -> None:
    from codecarbon import OfflineEmissionsTracker  # noqa: F401


def _codecarbon_prepare(config: str) -> Any:
    from codecarbon import OfflineEmissionsTracker

    kwargs: dict[str, Any] = {
        "country_iso_code": "FRA",  # offline: no location lookup
        "save_to_file": False,
        "log_level": "error",
    }
    if config == "best":
        kwargs["measure_power_secs"] = 1  # default 15
    return OfflineEmissionsTracker(**kwargs)


def _codecarbon_begin(tracker: Any) -> None:
    tracker.start()


def _codecarbon_end(tracker: Any) -> float:
    tracker.stop()
    return float(tracker.final_emissions_data.gpu_energy) * 3.6e6  # kWh -> J


def _carbontracker_import() -> None:
    from carbontracker.tracker import CarbonTracker  # noqa: F401


def _carbontracker_prepare(config: str) -> Any:
    from carbontracker.tracker import CarbonTracker

    # Two epochs planned, so that ending the first (the window) does not finalise and delete
    # the tracker before its energy is read.
    return CarbonTracker(
        epochs=2,
        monitor_epochs=2,
        epochs_before_pred=0,
        components="gpu",
        log_dir=None,
        verbose=0,
        update_interval=1 if config == "default" else 0.1,  # default 1 s
    )


def _carbontracker_begin(tracker: Any) -> None:
    tracker.epoch_start()


def _carbontracker_end(tracker: Any) -> float:
    from carbontracker import constants

    tracker.epoch_end()
    kwh = float(tracker.tracker.total_energy_per_epoch()[-1]) / constants.PUE_2023
    with contextlib.suppress(Exception):  # its final report may fail offline; energy is read
        tracker.stop()
    return kwh * 3.6e6


#: The cost rows end a bertwatt window as a `with` block does (no report built); every other
#: tool ends its window with the call that returns its measurement, as in the energy rows.
COST_END: dict[str, Callable[[Any], Any]] = {"bertwatt": _bertwatt_close}

TOOLS: dict[str, tuple[Callable[..., Any], ...]] = {
    "bertwatt": (_bertwatt_import, _bertwatt_prepare, _bertwatt_begin, _bertwatt_end),
    "zeus": (_zeus_import, _zeus_prepare, _zeus_begin, _zeus_end),
    "codecarbon": (_codecarbon_import, _codecarbon_prepare, _codecarbon_begin, _codecarbon_end),
    "carbontracker": (
        _carbontracker_import,
        _carbontracker_prepare,
        _carbontracker_begin,
        _carbontracker_end,
    ),
}
#: Tools whose handle measures one window only (a new one is built before each window).
ONE_SHOT = {"codecarbon", "carbontracker", "bertwatt"}


def _wait_for_go() -> int:
    """Say READY (tool imported, first tracker built), then wait for run.py's GO time."""
    print("READY", flush=True)
    clock = sys.modules["bertwatt_peers_fake"].clock  # type: ignore[attr-defined]
    while clock.monotonic_ns() < 0:
        time.sleep(0.005)
    return clock.origin_ns


def energy(tool: str, config: str, windows: list[list[float]]) -> list[dict[str, Any]]:
    import_, prepare, begin, end = TOOLS[tool]
    import_()
    handle = None
    try:
        handle = prepare(config)  # before GO: construction is not timed against the windows
    except BaseException:
        handle = None
    origin = _wait_for_go()
    out: list[dict[str, Any]] = []
    for i, (start_s, end_s) in enumerate(windows):
        try:
            if handle is None or (tool in ONE_SHOT and i > 0):
                handle = prepare(config)
            _sleep_until(origin + round(start_s * _NS))
            begin(handle)
            # The work the window measures runs between begin() returning and end() called: the
            # window lasts its nominal length from there (a slow start shifts it, never cuts it).
            t_begin = (time.monotonic_ns() - origin) / _NS
            _sleep_until(origin + round((t_begin + end_s - start_s) * _NS))
            t_end = (time.monotonic_ns() - origin) / _NS
            joules = end(handle)
            out.append({"energy_j": joules, "error": None, "t_begin": t_begin, "t_end": t_end})
        except BaseException as exc:  # a peer's failure is a row, not a crash
            last = traceback.format_exception_only(type(exc), exc)[-1].strip()
            out.append({"energy_j": None, "error": last[:300]})
            handle = None
    return out


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cost(tool: str, config: str, seconds: float) -> dict[str, Any]:
    import_, prepare, begin, end = TOOLS[tool]
    end = COST_END.get(tool, end)
    rss0 = _maxrss_mib()
    t0 = time.perf_counter()
    import_()
    import_s = time.perf_counter() - t0
    cycles = []
    for _ in range(4):  # the first cycle is "fresh" (after import), the rest "repeated"
        t0 = time.perf_counter()
        handle = prepare(config)
        begin(handle)
        end(handle)
        cycles.append(time.perf_counter() - t0)
    handle = prepare(config)
    begin(handle)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    time.sleep(seconds)
    cpu1, wall1 = time.process_time(), time.perf_counter()
    end(handle)
    return {
        "import_s": import_s,
        "cycle_fresh_s": cycles[0],
        "cycle_repeated_s": sorted(cycles[1:])[1],
        "background_cpu_pct": 100 * (cpu1 - cpu0) / (wall1 - wall0),
        "rss_added_mib": _maxrss_mib() - rss0,
    }


def main() -> int:
    mode, tool, config, arg = sys.argv[1:5]
    if mode == "energy":
        result: Any = energy(tool, config, json.loads(arg))
    else:
        try:
            result = cost(tool, config, float(arg))
        except BaseException as exc:
            result = {"error": traceback.format_exception_only(type(exc), exc)[-1].strip()}
    sys.stdout.flush()
    print("BERTWATT-PEERS-RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
