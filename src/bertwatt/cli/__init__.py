"""The ``bertwatt`` command line: sensors, run, repeat, show, zones, merge.

Every command is a ``cmd_<name>(args) -> int``; :func:`main` parses, dispatches and turns every
error into one line on stderr with a non-zero exit (the traceback only with ``--debug``).
Output is escaped (a report cannot send terminal control sequences), option abbreviations are
off, and a closed stdout (``bertwatt zones | head``) ends the command quietly.

=================== ==========================================================================
module              what it holds
=================== ==========================================================================
``_out``            escaped printing, one-line errors, the closed-pipe idiom
``commands``        ``sensors``, ``show``, ``zones``, ``merge``
``run``             ``run``: the child, its signals, its command line with secrets masked
``repeat``          ``repeat``: the repeat protocol for a short command
=================== ==========================================================================
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bertwatt._echo import quote
from bertwatt._version import __version__
from bertwatt.cli._out import EXIT_ERROR, EXIT_USAGE, err, silence_stdout
from bertwatt.cli.commands import cmd_merge, cmd_sensors, cmd_show, cmd_zones
from bertwatt.cli.repeat import add_parser as _add_repeat_parser
from bertwatt.cli.repeat import cmd_repeat
from bertwatt.cli.run import cmd_run
from bertwatt.errors import BertwattError

__all__ = ["build_parser", "main"]

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "sensors": cmd_sensors,
    "run": cmd_run,
    "show": cmd_show,
    "zones": cmd_zones,
    "merge": cmd_merge,
    "repeat": cmd_repeat,
}


class _Parser(argparse.ArgumentParser):
    """No abbreviations (``--zon`` is an error, not ``--zone``); errors are one line, exit 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> Any:
        err(f"{message} (see `{self.prog} --help`)")
        raise SystemExit(EXIT_USAGE)


def _number(text: str, *, low: float, strict: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{quote(text, 40)} is not a number") from None
    if not (value > low if strict else value >= low) or value != value or value == float("inf"):
        sign = ">" if strict else ">="
        raise argparse.ArgumentTypeError(
            f"{quote(text, 40)} must be a finite number {sign} {low:g}"
        )
    return value


def _positive_float(text: str) -> float:
    return _number(text, low=0.0, strict=True)


def _nonneg_float(text: str) -> float:
    return _number(text, low=0.0, strict=False)


def _path(text: str) -> Path:
    if text == "":
        raise argparse.ArgumentTypeError("an empty path is not a file name")
    if "\0" in text:
        raise argparse.ArgumentTypeError("a path cannot contain a NUL byte")
    return Path(text)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser for ``bertwatt``."""
    p = _Parser(prog="bertwatt", description="Measure the energy and carbon of ML workloads.")
    p.add_argument("--version", action="version", version=f"bertwatt {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command_name", metavar="COMMAND", parser_class=_Parser)

    s = sub.add_parser("sensors", help="what this machine can measure, and how to fix the rest")
    s.add_argument("--backend", action="append", help="probe only this backend (repeatable)")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument(
        "--wallplug",
        metavar="SOURCE",
        help="check this wall meter (e.g. shelly+http://192.168.1.50): one reading, update rate",
    )

    r = sub.add_parser("run", help="run a command and measure it")
    r.add_argument("--output", "-o", type=_path, help="write the JSON report here")
    r.add_argument("--interval", type=_positive_float, default=0.1, help="sampling period (s)")
    r.add_argument(
        "--checkpoint-interval",
        type=_positive_float,
        default=60.0,
        metavar="S",
        help="seconds between partial reports written to --output (default 60; the first "
        "comes within a few seconds)",
    )
    r.add_argument("--baseline", type=_nonneg_float, default=0.0, help="idle seconds first")
    r.add_argument("--backend", action="append", help="use only this backend (repeatable)")
    r.add_argument("--zone", help="carbon-intensity zone, e.g. FR, US-CA, aws:eu-west-3")
    r.add_argument("--pue", type=_positive_float, help="power usage effectiveness (default 1.0)")
    r.add_argument(
        "--no-live",
        action="store_true",
        help="no live line (power now, energy so far); it is shown only on a terminal anyway",
    )
    r.add_argument(
        "--wallplug",
        metavar="SOURCE",
        help="also read this wall meter (e.g. shelly+http://192.168.1.50); see docs/wallplug.md",
    )
    r.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...")

    sh = sub.add_parser("show", help="print the summary of a saved report (any kind)")
    sh.add_argument("report", type=_path)
    sh.add_argument("--json", action="store_true", help="print the JSON instead")
    sh.add_argument("--csv", type=_path, help="also write the channel timelines as CSV here")

    z = sub.add_parser("zones", help="list or search carbon-intensity zones")
    z.add_argument("query", nargs="?", default=None)

    m = sub.add_parser("merge", help="merge reports (files, or every report in a directory)")
    m.add_argument("reports", nargs="+", type=_path, metavar="REPORT_OR_DIR")
    m.add_argument("--output", "-o", type=_path, help="write the merged report here")

    from bertwatt.cli.study import add_study_commands  # plot, report, compare, statement, fit

    COMMANDS.update(add_study_commands(sub))
    _add_repeat_parser(sub, _positive_float, _nonneg_float)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if not args.command_name:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        code = COMMANDS[args.command_name](args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's final flush
        return code
    except BrokenPipeError:
        silence_stdout()  # `bertwatt zones | head`: stop quietly, like a Unix tool
        return 0
    except BertwattError as exc:
        if args.debug:
            raise
        err(str(exc))
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        if args.debug:
            raise
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        err(f"{exc.strerror or exc}{where}")
        return EXIT_ERROR
    except Exception as exc:  # never a traceback without --debug
        if args.debug:
            raise
        err(f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)")
        return EXIT_ERROR
