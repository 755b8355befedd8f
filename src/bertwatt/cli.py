"""The ``bertwatt`` command line: sensors, run, show, zones, merge.

Every command is a ``cmd_<name>(args) -> int``; :func:`main` parses, dispatches and turns
bertwatt's errors into one line on stderr with a non-zero exit (the traceback only with
``--debug``).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import subprocess
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bertwatt._version import __version__

if TYPE_CHECKING:
    from bertwatt.report.models import EnergyReport
from bertwatt.errors import BertwattError, BertwattWarning

__all__ = ["main"]

EXIT_USAGE = 2
EXIT_ERROR = 1


def _err(msg: str) -> None:
    print(f"bertwatt: error: {msg}", file=sys.stderr)


def _backends(names: Sequence[str] | None) -> list[Any] | None:
    if not names:
        return None
    from bertwatt.backends import create

    return [create(n) for n in names]


def _carbon(zone: str | None) -> Any:
    if not zone:
        return None
    from bertwatt.carbon import CarbonIntensity

    return CarbonIntensity.zone(zone)


# ----------------------------------------------------------------------- commands
def cmd_sensors(args: argparse.Namespace) -> int:
    """Print what this machine can measure, and why/how to fix what it cannot."""
    import json

    from bertwatt.backends import create, default_backends

    if args.wallplug:
        return _check_wallplug(args.wallplug, as_json=args.json)

    backends = _backends(args.backend) or default_backends()
    rows: list[dict[str, Any]] = []
    missing: list[dict[str, Any]] = []
    cpu_measured = False
    for b in backends:
        try:
            av = b.probe()
        except Exception as err:
            missing.append({"what": b.name, "reason": f"probe() raised {err}", "fix": None})
            continue
        try:
            for ch in av.channels:
                cpu_measured |= ch.domain == "cpu" and ch.counted
                rows.append(
                    {
                        "channel": ch.name,
                        "backend": b.name,
                        "kind": ch.kind,
                        "provenance": ch.provenance.kind,
                        "source": ch.provenance.source,
                        "counted": ch.counted,
                    }
                )
            missing.extend(
                {"what": u.what, "reason": u.reason, "fix": u.fix} for u in av.unavailable
            )
        finally:
            b.close()
    if not args.backend and not cpu_measured:
        est = create("estimate")
        av = est.probe()
        for ch in av.channels:
            rows.append(
                {
                    "channel": ch.name,
                    "backend": est.name,
                    "kind": ch.kind,
                    "provenance": ch.provenance.kind,
                    "source": ch.provenance.source,
                    "counted": ch.counted,
                }
            )
        missing.extend({"what": u.what, "reason": u.reason, "fix": u.fix} for u in av.unavailable)
        est.close()
    if args.json:
        print(json.dumps({"channels": rows, "unavailable": missing}, indent=2))
        return 0
    print("measurable here:" if rows else "nothing measurable here")
    for r in rows:
        tag = "measured " if r["provenance"] == "measured" else "ESTIMATED"
        extra = "" if r["counted"] else "  (inside/overlapping another channel, not added)"
        print(f"  {r['channel']:<18} {tag}  {r['kind']:<7} {r['source']}{extra}")
    if missing:
        print("not measurable:")
        for m in missing:
            print(f"  {m['what']}: {m['reason']}")
            if m["fix"]:
                print(f"      fix: {m['fix']}")
    return 0


def _check_wallplug(source: str, *, as_json: bool) -> int:
    """``sensors --wallplug``: probe the meter, take one reading, print it and the update rate."""
    import json
    import math

    from bertwatt.backends import WallPlugBackend

    backend = WallPlugBackend.from_source(source)
    try:
        av = backend.probe()
        if not av.ok:
            for u in av.unavailable:
                _err(f"{u.what}: {u.reason}" + (f". Fix: {u.fix}" if u.fix else ""))
            return EXIT_ERROR
        values, errors = backend.read()
    finally:
        backend.close()
    info = backend.meter_info
    rows = []
    for i, ch in enumerate(av.channels):
        v = values[i] if i < len(values) else math.nan
        rows.append(
            {
                "channel": ch.name,
                "kind": ch.kind,
                "value": None if v != v else v,
                "unit": "J" if ch.kind == "counter" else "W",
                "error": (errors or {}).get(i),
                "counted": ch.counted,
                "source": ch.provenance.source,
            }
        )
    update = info.update_period_s if info is not None else None
    if as_json:
        out = {
            "device": backend.device,
            "model": info.model if info else None,
            "update_period_s": update,
            "poll_interval_s": backend.poll_interval_s,
            "energy_resolution_j": info.energy_resolution_j if info else None,
            "channels": rows,
        }
        print(json.dumps(out, indent=2))
    else:
        print(f"wall meter {backend.device}: {info.model if info else '?'}")
        for r in rows:
            shown = "no reading" if r["value"] is None else f"{r['value']:,.3f} {r['unit']}"
            extra = "" if r["counted"] else "  (fallback, not added)"
            print(f"  {r['channel']:<22} {r['kind']:<7} {shown}{extra}")
            if r["error"]:
                print(f"      error: {r['error']}")
        res = info.energy_resolution_j if info else None
        print(
            f"  update rate: every {update:g} s (polled every {backend.poll_interval_s:g} s)"
            + (f"; counter resolution {res:g} J" if res else "")
        )
    return EXIT_ERROR if any(r["value"] is None for r in rows) else 0


@contextlib.contextmanager
def _wallplug_env(source: str | None) -> Any:
    """Let auto-detection (``default_backends``) see ``--wallplug`` while the meter starts."""
    if source is None:
        yield
        return
    import os

    old = os.environ.get("BERTWATT_WALLPLUG")
    os.environ["BERTWATT_WALLPLUG"] = source
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("BERTWATT_WALLPLUG", None)
        else:
            os.environ["BERTWATT_WALLPLUG"] = old


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def cmd_run(args: argparse.Namespace) -> int:
    """Run a command under a meter; print the summary; exit with the command's exit code."""
    from bertwatt.meter import EnergyMeter

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        _err("no command given: use `bertwatt run [options] -- CMD ARGS...`")
        return EXIT_USAGE
    backends = _backends(args.backend)
    if args.wallplug:
        from bertwatt.backends import WallPlugBackend

        wall = WallPlugBackend.from_source(args.wallplug)  # bad sources fail before the run
        if backends is not None:
            backends.append(wall)
    meter = EnergyMeter(
        backends=backends,
        interval_s=args.interval,
        output=args.output,
        baseline_s=args.baseline,
        carbon=_carbon(args.zone),
        pue=args.pue,
    )
    with _wallplug_env(args.wallplug if backends is None else None):
        meter.start()
    try:
        proc = subprocess.Popen(command)
    except OSError as err:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BertwattWarning)
            meter.stop()
        _err(f"cannot run {command[0]!r}: {err.strerror or err}")
        return 127 if isinstance(err, FileNotFoundError) else 126
    forwarded: dict[signal.Signals, Any] = {}

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        forwarded[sig] = signal.signal(sig, forward)
    try:
        returncode = proc.wait()
    finally:
        for sig, handler in forwarded.items():
            signal.signal(sig, handler)
        with warnings.catch_warnings():  # the summary below states the same doubts
            warnings.simplefilter("ignore", BertwattWarning)
            report = meter.stop()
    print(report.summary(), file=sys.stderr)
    if args.output:
        print(f"bertwatt: report written to {args.output}", file=sys.stderr)
    return _exit_code(returncode)


def cmd_show(args: argparse.Namespace) -> int:
    """Print the summary of a saved report (or its JSON, or export its timeline as CSV)."""
    from bertwatt.report.io import load_report

    report: EnergyReport = load_report(args.report)
    if args.csv:
        report.to_csv(args.csv)
    if args.json:
        print(report.model_dump_json(indent=2))
    else:
        print(report.summary())
    return 0


def cmd_zones(args: argparse.Namespace) -> int:
    """List or search the shipped carbon-intensity zones."""
    from bertwatt.carbon.zones import format_zones, search

    records = search(args.query)
    if not records:
        _err(f"no zone matches {args.query!r}")
        return EXIT_ERROR
    print(format_zones(records))
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    """Merge reports of several processes or nodes into one."""
    from bertwatt.report.io import load_report, merge_reports, write_report

    merged = merge_reports([load_report(p) for p in args.reports])
    if args.output:
        write_report(merged, args.output)
    print(merged.summary())
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "sensors": cmd_sensors,
    "run": cmd_run,
    "show": cmd_show,
    "zones": cmd_zones,
    "merge": cmd_merge,
}


# ----------------------------------------------------------------------- parsing
class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2, no usage dump
        _err(f"{message} (see `{self.prog} --help`)")
        raise SystemExit(EXIT_USAGE)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return value


def _nonneg_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


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
    r.add_argument("--output", "-o", type=Path, help="write the JSON report here")
    r.add_argument("--interval", type=_positive_float, default=0.1, help="sampling period (s)")
    r.add_argument("--baseline", type=_nonneg_float, default=0.0, help="idle seconds first")
    r.add_argument("--backend", action="append", help="use only this backend (repeatable)")
    r.add_argument("--zone", help="carbon-intensity zone, e.g. FR, US-CA, aws:eu-west-3")
    r.add_argument("--pue", type=_positive_float, help="power usage effectiveness (default 1.0)")
    r.add_argument(
        "--wallplug",
        metavar="SOURCE",
        help="also read this wall meter (e.g. shelly+http://192.168.1.50); see docs/wallplug.md",
    )
    r.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...")

    sh = sub.add_parser("show", help="print the summary of a saved report")
    sh.add_argument("report", type=Path)
    sh.add_argument("--json", action="store_true", help="print the JSON instead")
    sh.add_argument("--csv", type=Path, help="also write the channel timelines as CSV here")

    z = sub.add_parser("zones", help="list or search carbon-intensity zones")
    z.add_argument("query", nargs="?", default=None)

    m = sub.add_parser("merge", help="merge reports of several processes or nodes")
    m.add_argument("reports", nargs="+", type=Path)
    m.add_argument("--output", "-o", type=Path, help="write the merged report here")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if not args.command_name:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return COMMANDS[args.command_name](args)
    except BertwattError as err:
        if args.debug:
            raise
        _err(str(err))
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except OSError as err:
        if args.debug:
            raise
        where = f" ({err.filename})" if getattr(err, "filename", None) else ""
        _err(f"{err.strerror or err}{where}")
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
