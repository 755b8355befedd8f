"""Run a meter's command line with a hard deadline, killing its whole process group on timeout.

``subprocess.run(timeout=...)`` kills only the direct child and then waits for its pipes, which a
grandchild (a shell script's ``sleep``) can hold open forever. Here the child gets its own session,
the whole group is killed at the deadline, and the pipes are abandoned if they still do not close.
Secrets go to the child through its environment, never its argument list.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["ProcResult", "run_bounded"]

_MAX_OUTPUT = 64 * 1024


@dataclass(frozen=True, slots=True)
class ProcResult:
    """What a command did: exit code (None when killed at the deadline), stdout and stderr."""

    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool


def run_bounded(
    argv: Sequence[str], *, timeout_s: float, env: Mapping[str, str] | None = None
) -> ProcResult:
    """Run ``argv`` with stdin closed; at most ``timeout_s`` (+1 s to reap) in total.

    Raises:
        OSError: the program cannot be started (not found, not executable).
    """
    child_env = dict(os.environ)
    if env:
        child_env.update(env)
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env,
        start_new_session=True,
    )
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        try:
            out, err = proc.communicate(timeout=1.0)
        except subprocess.TimeoutExpired:
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
            out, err = b"", b""
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=1.0)
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
    return ProcResult(
        None if timed_out else proc.returncode,
        (out or b"")[:_MAX_OUTPUT].decode("utf-8", "replace"),
        (err or b"")[:_MAX_OUTPUT].decode("utf-8", "replace"),
        timed_out,
    )
