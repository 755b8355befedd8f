"""`import bertwatt` stays light, offline and side-effect free (checked in fresh interpreters)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "transformers", "matplotlib", "pynvml", "numpy", "pydantic", "requests", "pandas")


def run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_import_loads_nothing_heavy():
    loaded = json.loads(
        run(
            "import sys, json, bertwatt, bertwatt.backends, bertwatt.testing\n"
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
        )
    )
    assert loaded == []


def test_import_changes_no_logging_or_warning_state():
    code = (
        "import logging, warnings, sys, json\n"
        "before = (len(logging.root.handlers), logging.root.level, list(warnings.filters),"
        " logging.getLogger('bertwatt').handlers)\n"
        "import bertwatt, bertwatt.meter, bertwatt.cli\n"
        "after = (len(logging.root.handlers), logging.root.level, list(warnings.filters),"
        " logging.getLogger('bertwatt').handlers)\n"
        "print(json.dumps(before == after))"
    )
    assert json.loads(run(code)) is True


def test_import_opens_no_socket():
    code = (
        "import socket\n"
        "def refuse(*a, **k):\n    raise AssertionError('network at import')\n"
        "socket.socket.connect = refuse\nsocket.create_connection = refuse\n"
        "socket.getaddrinfo = refuse\n"
        "import bertwatt, bertwatt.meter, bertwatt.carbon, bertwatt.backends\n"
        "print('ok')"
    )
    assert run(code).strip() == "ok"
