"""``bertwatt repeat -- CMD ARGS...``: the repeat protocol for a short command.

Runs the command many times under :func:`bertwatt.measure_repeated` (warm-up discarded, trials
of at least ``--min-duration`` seconds, a lead-in and a phase-shifting random gap before each)
and prints the energy of one run, mean ± standard deviation over the trials. Each run is a new
process, so its energy includes process start-up; for a function in Python, call
:func:`bertwatt.measure_repeated` instead.
"""

from __future__ import annotations

import argparse
import subprocess
from typing import Any

from bertwatt._echo import quote
from bertwatt.cli._out import EXIT_USAGE, dumps, err, out, out_json
from bertwatt.errors import BertwattError

__all__ = ["add_parser", "cmd_repeat"]


def add_parser(sub: Any, positive_float: Any, nonneg_float: Any) -> None:
    """Register the ``repeat`` subcommand on the CLI's subparsers."""
    p = sub.add_parser("repeat", help="measure one run of a short command by repeating it")
    p.add_argument("--trials", type=_count(1), default=5, help="measured trials (default 5)")
    p.add_argument("--warmup", type=_count(0), default=3, help="runs discarded first (default 3)")
    p.add_argument(
        "--min-duration",
        type=positive_float,
        default=2.0,
        metavar="S",
        help="each trial lasts at least S seconds (default 2)",
    )
    p.add_argument(
        "--sensor-period",
        type=positive_float,
        default=0.1,
        metavar="S",
        help="update period of the slowest sensor (default 0.1 s, NVML; 1.0 for a 1 s "
        "averaged power reading)",
    )
    p.add_argument(
        "--max-gap",
        type=nonneg_float,
        default=0.25,
        metavar="S",
        help="random gaps between trials are drawn from [0.05, S] seconds (default 0.25)",
    )
    p.add_argument("--seed", type=int, help="seed for the gaps and phases")
    p.add_argument("--backend", action="append", help="use only this backend (repeatable)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...")


def _count(low: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{quote(text, 40)} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{quote(text, 40)} must be >= {low}")
        return value

    return parse


class _CommandFailed(BertwattError):
    pass


def cmd_repeat(args: argparse.Namespace) -> int:
    """Measure one run of ``args.command`` by the repeat protocol; print mean ± sd."""
    from bertwatt.cli.run import _backends
    from bertwatt.repeat import measure_repeated

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        err("no command given: use `bertwatt repeat [options] -- CMD ARGS...`")
        return EXIT_USAGE
    gap_high = max(args.max_gap, 0.05)

    def run_once() -> None:
        try:
            code = subprocess.run(command, check=False, stdin=subprocess.DEVNULL).returncode
        except OSError as exc:
            raise _CommandFailed(
                f"cannot run {quote(command[0], 200)}: {exc.strerror or exc}"
            ) from None
        if code != 0:
            raise _CommandFailed(
                f"{quote(command[0], 200)} exited {code}: a failing command's energy is not "
                "a measurement, so bertwatt repeat stopped",
                fix="make the command succeed on its own first",
            )

    result = measure_repeated(
        run_once,
        trials=args.trials,
        warmup=args.warmup,
        min_duration_s=args.min_duration,
        sensor_period_s=args.sensor_period,
        gap_s=(min(0.05, gap_high), gap_high),
        seed=args.seed,
        backends=_backends(args.backend),
    )
    if args.json:
        out_json(
            dumps(
                {
                    "energy_per_call_j": result.energy_per_call_j,
                    "stdev_j": result.stdev_j,
                    "median_j": result.median_j,
                    "min_j": result.min_j,
                    "max_j": result.max_j,
                    "spread_rel": result.spread_rel,
                    "time_per_call_s": result.time_per_call_s,
                    "error_bound_rel": result.error_bound_rel,
                    "warmup_calls": result.warmup_calls,
                    "source": result.source,
                    "trials": [
                        {
                            "calls": t.calls,
                            "duration_s": t.duration_s,
                            "energy_j": t.energy_j,
                            "energy_per_call_j": t.energy_per_call_j,
                            "gap_s": t.gap_s,
                        }
                        for t in result.trials
                    ],
                }
            )
        )
    else:
        out(result.summary())
    return 0
