"""Terminal output of the CLI: escaped text, one-line errors, quiet stops on a closed pipe."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys

from bertwatt._echo import clip, escape_control

__all__ = ["EXIT_ERROR", "EXIT_USAGE", "dumps", "err", "note", "out", "out_json", "silence_stdout"]

EXIT_USAGE = 2
EXIT_ERROR = 1
_MAX_ERROR = 1000  # characters of one error line; longer ones are cut (with a count)

_JSON_CONTROL = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def out(text: str) -> None:
    """Print ``text`` on stdout with terminal control characters escaped (``\\x1b`` -> text)."""
    print(escape_control(text))


def out_json(text: str) -> None:
    """Print JSON on stdout; control characters JSON left raw become ``\\uNNNN`` escapes (still
    valid JSON: they can only occur inside strings)."""
    print(_JSON_CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text))


def dumps(data: object) -> str:
    """``json.dumps`` for the CLI: indented, every control character escaped."""
    return json.dumps(data, indent=2)


def err(message: str) -> None:
    """One line on stderr: ``bertwatt: error: <message>``, escaped and bounded in length."""
    text = escape_control(clip(message, _MAX_ERROR), keep_newlines=False)
    with contextlib.suppress(BrokenPipeError, ValueError):
        print(f"bertwatt: error: {text}", file=sys.stderr)


def note(message: str) -> None:
    """An informational line on stderr (escaped), ignored when stderr is gone."""
    with contextlib.suppress(BrokenPipeError, ValueError):
        print(escape_control(message), file=sys.stderr)


def silence_stdout() -> None:
    """After a BrokenPipeError: point stdout at /dev/null so the interpreter's final flush does
    not print "Exception ignored ... BrokenPipeError" (the idiom in Python's signal docs)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
