"""``bertwatt run [options] -- CMD ARGS...``: run a command under a meter.

What happens to the command when ``bertwatt run`` itself dies:

- SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to ``bertwatt run`` are forwarded to the command;
  bertwatt waits for it, then writes the report (status ``"interrupted"``).
- SIGKILL cannot be caught. On Linux the command is started through a small exec trampoline
  that sets ``PR_SET_PDEATHSIG`` to SIGKILL before it ``exec``\\s the command, so the kernel kills
  the command as soon as ``bertwatt run`` dies: no orphan keeps running unmeasured. The report
  then holds the last checkpoint (``--checkpoint-interval``; the first comes within seconds).
  Elsewhere the command keeps running as an orphan (documented in docs/cli.md).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

from bertwatt._echo import quote
from bertwatt.cli._out import EXIT_ERROR, EXIT_USAGE, err, note
from bertwatt.errors import BertwattWarning, ReportError

__all__ = ["cmd_run", "is_secret_name", "mask_command"]

MASK = "***"
FORWARDED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")

# words of an option or variable name that say its value is a credential
_SECRET_WORDS = frozenset(
    {
        "password", "passwd", "passphrase", "pwd", "pass", "secret", "token", "apikey",
        "credential", "credentials", "auth", "authorization", "cookie", "signature",
    }
)  # fmt: skip
_SECRET_PAIRS = frozenset(
    {("api", "key"), ("access", "key"), ("private", "key"), ("secret", "key")}
)
_SECRET_ENDINGS = ("token", "password", "passwd", "secret", "apikey")


def is_secret_name(name: str) -> bool:
    """True when an option or variable name (``--hf-token``, ``API_KEY``) names a credential.

    Whole words count (``--tokenizer`` and ``--max-tokens`` are not secrets); so do compact
    forms ending in one (``--hftoken``, ``ACCESSTOKEN``) and a bare ``--key``.
    """
    words = [w for w in re.split(r"[-_.]+", name.lstrip("-").lower()) if w]
    if words == ["key"]:
        return True
    if any(w in _SECRET_WORDS or w.endswith(_SECRET_ENDINGS) for w in words):
        return True
    return any(pair in _SECRET_PAIRS for pair in itertools.pairwise(words))


_OPTION = re.compile(r"^(-{1,2}[A-Za-z0-9][A-Za-z0-9_.-]*)(=(.*))?$", re.DOTALL)
_ASSIGN = re.compile(r"^([A-Za-z_][A-Za-z0-9_.-]*)=(.*)$", re.DOTALL)
_URL_CREDENTIALS = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@:\s]*):[^/@\s]*@"
)
_AUTH_HEADER = re.compile(r"^(\s*(proxy-)?authorization\s*:\s*)(\S+\s+)?\S.*$", re.IGNORECASE)


def _mask_one(arg: str) -> str:
    """``arg`` with credentials inside it masked (URL passwords, Authorization headers)."""
    arg = _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", arg)
    header = _AUTH_HEADER.match(arg)
    if header:
        return f"{header.group(1)}{header.group(3) or ''}{MASK}"
    return arg


def mask_command(argv: list[str]) -> list[str]:
    """The command line with the values of arguments that look like secrets replaced by ``***``.

    Masked: the value after (or ``=`` of) an option whose name mentions a password, token,
    secret, API key, auth or credentials (``--token X``, ``--password=X``, ``-api-key X``);
    ``NAME=value`` assignments whose NAME does (``API_KEY=...``, ``HF_TOKEN=...``); the password
    of a URL (``https://user:***@host``); an ``Authorization:`` header value. Everything else is
    kept as given.
    """
    masked: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            hide_next = False
            if not arg.startswith("-") or arg == "-":
                masked.append(MASK)
                continue
        option = _OPTION.match(arg)
        if option and is_secret_name(option.group(1)):
            if option.group(2) is not None:
                masked.append(f"{option.group(1)}={MASK}")
            else:
                masked.append(arg)
                hide_next = True
            continue
        assign = _ASSIGN.match(arg)
        if assign and is_secret_name(assign.group(1)):
            masked.append(f"{assign.group(1)}={MASK}")
            continue
        masked.append(_mask_one(arg))
    return masked


# Runs in the child between fork and exec: ask the kernel for SIGKILL when the parent dies,
# give up if it already has, restore the signals Python ignores, then become the command.
_TRAMPOLINE = """\
import os, signal, sys
parent = int(sys.argv[1])
try:
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)
except Exception:
    pass
if os.getppid() != parent:
    os._exit(137)
for name in ("SIGPIPE", "SIGXFSZ"):
    if hasattr(signal, name):
        signal.signal(getattr(signal, name), signal.SIG_DFL)
argv = sys.argv[2:]
try:
    os.execvp(argv[0], argv)
except OSError as err:
    sys.stderr.write("bertwatt: error: cannot run %r: %s\\n" % (argv[0][:200], err.strerror))
    os._exit(127 if isinstance(err, FileNotFoundError) else 126)
"""


def launch(command: list[str]) -> subprocess.Popen[bytes]:
    """Start ``command``; on Linux through the exec trampoline that ties its life to ours."""
    if sys.platform.startswith("linux") and sys.executable:
        argv = [sys.executable, "-I", "-S", "-c", _TRAMPOLINE, str(os.getpid()), *command]
        return subprocess.Popen(argv)
    return subprocess.Popen(command)


def _resolve(command: list[str]) -> str | None:
    """Why ``command`` cannot be run, or None (checked before the meter starts)."""
    exe = command[0]
    if os.sep in exe:
        if not os.path.exists(exe):
            return "not found"
        if os.path.isdir(exe) or not os.access(exe, os.X_OK):
            return "permission denied (not an executable file)"
        return None
    return None if shutil.which(exe) else "command not found"


def check_output(path: Path) -> None:
    """Fail before the command runs when the report could not be written to ``path``."""
    try:
        st = path.stat()
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise ReportError(f"cannot use the output path: {exc.strerror}", where=str(path)) from None
    if st is not None:
        import stat

        if stat.S_ISDIR(st.st_mode):
            raise ReportError(
                "the output path is a directory", where=str(path), fix="give a file name"
            )
        if not stat.S_ISREG(st.st_mode):
            raise ReportError(
                "the output path exists and is not a regular file (a device, FIFO or socket); "
                "bertwatt writes reports only to regular files",
                where=str(path),
            )
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=parent)
    except OSError as exc:
        raise ReportError(
            f"cannot write the report there: {exc.strerror or exc}",
            where=str(parent),
            fix="choose a writable -o path",
        ) from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def cmd_run(args: argparse.Namespace) -> int:
    """Run a command under a meter; print the summary; exit with the command's exit code."""
    from bertwatt.meter import EnergyMeter

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        err("no command given: use `bertwatt run [options] -- CMD ARGS...`")
        return EXIT_USAGE
    why = _resolve(command)
    if why is not None:
        err(f"cannot run {quote(command[0], 200)}: {why}")
        return 127 if "not found" in why else 126
    if args.output is not None:
        check_output(args.output)
    if args.zone is None:
        _check_env_zone()
    extra = []
    if args.wallplug:
        from bertwatt.backends import WallPlugBackend

        extra.append(WallPlugBackend.from_source(args.wallplug))  # a bad source fails here
    cwd = os.getcwd()
    meter = EnergyMeter(
        backends=_backends(args.backend),
        extra_backends=extra,
        interval_s=args.interval,
        output=args.output,
        checkpoint_interval_s=args.checkpoint_interval,
        baseline_s=args.baseline,
        carbon=_carbon(args.zone),
        pue=args.pue,
        run={"command": mask_command(command), "cwd": cwd},  # on every checkpoint too
    )
    meter.start()
    from bertwatt.live import LiveLine  # power now, energy so far (on a terminal, unless --no-live)

    live = LiveLine(meter, enabled=not getattr(args, "no_live", False)).start()
    received: list[int] = []
    child: list[subprocess.Popen[bytes]] = []

    def forward(signum: int, _frame: object) -> None:
        received.append(signum)
        for proc in child:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signum)

    # handlers go in before the command starts: a signal in between is delivered right after
    previous: dict[int, Any] = {}
    for name in FORWARDED:
        sig = getattr(signal, name, None)
        if sig is not None:
            previous[sig] = signal.signal(sig, forward)
    try:
        try:
            proc = launch(command)
        except OSError as exc:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", BertwattWarning)
                meter.stop()
            err(f"cannot run {quote(command[0], 200)}: {exc.strerror or exc}")
            return 127 if isinstance(exc, FileNotFoundError) else 126
        child.append(proc)
        for signum in received:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signum)
        returncode = _wait(proc)
    finally:
        live.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    try:
        with warnings.catch_warnings():  # the summary below states the same doubts
            warnings.simplefilter("ignore", BertwattWarning)
            report = meter.stop()
        report = _with_run_info(report, command, cwd, returncode, received)
    except Exception as exc:
        if args.debug:
            raise
        err(f"measuring failed ({type(exc).__name__}: {exc}); the report was NOT written")
        return _exit_code(returncode) or EXIT_ERROR
    note(report.summary())
    if args.output is None:
        return _exit_code(returncode)
    from bertwatt.report.io import write_report

    try:
        write_report(report, args.output)
    except ReportError as exc:
        err(f"the report was NOT written: {exc}")
        return _exit_code(returncode) or EXIT_ERROR
    note(f"bertwatt: report written to {args.output}")
    return _exit_code(returncode)


def _check_env_zone() -> None:
    """Say so before the command runs when BERTWATT_ZONE names no known zone."""
    from bertwatt.config import zone_from_env

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BertwattWarning)
        zone = zone_from_env()
    if zone is None:
        return
    from bertwatt.carbon.zones import lookup
    from bertwatt.errors import BertwattError

    try:
        lookup(zone)
    except BertwattError as exc:
        note(
            f"bertwatt: warning: configuration error: BERTWATT_ZONE={quote(zone, 60)} is not a "
            f"usable carbon-intensity zone ({exc.message}); emissions will not be computed. "
            "Fix: set BERTWATT_ZONE to a zone listed by `bertwatt zones`, pass --zone, or unset it"
        )


def _wait(proc: subprocess.Popen[bytes]) -> int:
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:  # a SIGINT that arrived before our handler: keep waiting
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)


def _with_run_info(
    report: Any, command: list[str], cwd: str, returncode: int, received: list[int]
) -> Any:
    """The report with ``run`` (command, cwd, exit status or signal) and its status set."""
    from bertwatt.report.models import RunInfo

    killed_by = -returncode if returncode < 0 else None
    if killed_by is not None:
        signal_name: str | None = _signal_name(killed_by)
    elif received:
        signal_name = _signal_name(received[0])
    else:
        signal_name = None
    run = RunInfo(
        command=mask_command(command),
        cwd=cwd,
        exit_code=None if killed_by is not None else returncode,
        signal=signal_name,
    )
    update: dict[str, Any] = {"run": run}
    if signal_name is not None:
        update["status"] = "interrupted"
        how = "was killed by" if killed_by is not None else f"exited {returncode} after"
        report.warnings.append(f"the command {how} {signal_name}: the run was interrupted")
    return report.model_copy(update=update)


def _backends(names: list[str] | None) -> list[Any] | None:
    if not names:
        return None
    from bertwatt.backends import create

    return [create(n) for n in names]


def _carbon(zone: str | None) -> Any:
    if not zone:
        return None
    from bertwatt.carbon import CarbonIntensity

    return CarbonIntensity.zone(zone)
