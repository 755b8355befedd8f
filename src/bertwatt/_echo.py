"""Safe echoes of untrusted text: bounded in length, control characters escaped.

Messages that quote user input (a zone name, an environment variable, a path) or text read from a
file or a server quote it through :func:`clip`, so a megabyte of input cannot become a megabyte of
error message. Text printed to a terminal goes through :func:`escape_control`, so a report or a
channel name holding ``"\\x1b[2J"`` cannot clear the screen or move the cursor.
"""

from __future__ import annotations

import re

__all__ = ["clip", "escape_control", "quote"]

# C0 controls except tab and newline, DEL, C1 controls, and the Unicode line/paragraph
# separators and bidi overrides that can disguise what a terminal shows.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_CONTROL_ALL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape_one(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_control(text: str, *, keep_newlines: bool = True) -> str:
    """``text`` with terminal control characters written as ``\\xNN`` / ``\\uNNNN`` escapes.

    Tabs and (with ``keep_newlines``) newlines pass through; every other C0/C1 control, DEL,
    and the Unicode line separators and bidirectional overrides are escaped.
    """
    pattern = _CONTROL if keep_newlines else _CONTROL_ALL
    return pattern.sub(_escape_one, text)


def clip(text: str, limit: int = 80) -> str:
    """``text`` cut to at most ``limit`` characters, marking the cut with how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def quote(value: object, limit: int = 80) -> str:
    """A bounded, escaped ``repr``-like quote of user input for an error message."""
    text = value if isinstance(value, str) else repr(value)
    return "'" + escape_control(clip(text, limit), keep_newlines=False) + "'"
