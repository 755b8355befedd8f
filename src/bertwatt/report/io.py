"""Writing and loading reports (merging lives in :mod:`bertwatt.report.merge`).

Writes are atomic: the JSON goes to a temporary file in the same directory, is flushed and fsynced,
then renamed over the target, so a reader (or a process killed mid-write) only ever sees a whole
report: the previous one or the new one. Only regular files are written: a symlink is followed
deliberately (the file it points to is replaced and the link kept), and a target that is a FIFO,
device node, socket or directory is refused, never replaced.

Loading is bounded: only regular files are read (a FIFO or ``/dev/zero`` is refused without
blocking), at most :data:`MAX_REPORT_BYTES`, as strict UTF-8 JSON without NaN or Infinity; every
failure is one :class:`~bertwatt.errors.ReportError` line naming the file.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from bertwatt.errors import ReportError

if TYPE_CHECKING:
    from bertwatt.report.models import EnergyReport

__all__ = [
    "MAX_REPORT_BYTES",
    "load_report",
    "merge_reports",
    "read_report_data",
    "report_class",
    "write_report",
    "write_text_atomic",
    "write_timeline_csv",
]

R = TypeVar("R", bound="EnergyReport")

#: Largest report file read (64 MiB; a 72 h report with default settings is a few MiB).
MAX_REPORT_BYTES = 64 * 1024 * 1024


def _umask() -> int:
    """The process umask, read without changing it (os.umask would, racing other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def _file_type(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _write_target(path: Path) -> Path:
    """The regular file a write to ``path`` replaces: symlinks followed, anything else refused."""
    real = Path(os.path.realpath(path))
    try:
        st = os.stat(real)
    except FileNotFoundError:
        return real
    except OSError as err:
        raise ReportError(f"cannot check the report path: {err.strerror}", where=str(path)) from err
    if not stat.S_ISREG(st.st_mode):
        raise ReportError(
            f"refusing to write a report over {_file_type(st.st_mode)}",
            where=str(path),
            fix="give a path to a regular file (or a new file)",
        )
    return real


def write_text_atomic(path: Path, text: str | bytes) -> None:
    """Write ``text`` (str as UTF-8, or bytes) to ``path`` through a temp file and rename
    (ReportError on failure).

    ``path`` may be a symlink: the file it points to is replaced and the link stays. A path that
    is (or points to) a FIFO, device, socket or directory is refused with a ReportError.
    """
    path = Path(path)
    if "\0" in str(path):
        raise ReportError("the report path contains a NUL byte", where=repr(str(path)))
    target = _write_target(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as err:
        raise ReportError(
            f"cannot create the report directory or a temp file in it: {err.strerror}",
            where=str(target.parent),
        ) from err
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode("utf-8") if isinstance(text, str) else text)
            fh.flush()
            os.fsync(fh.fileno())
        _write_target(path)  # again, just before the rename: the target may have changed
        os.replace(tmp, target)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise ReportError(f"cannot write the report: {err.strerror}", where=str(path)) from err
        raise


def write_report(report: EnergyReport, path: Path | str) -> None:
    """Write ``report`` as JSON to ``path`` atomically."""
    write_text_atomic(Path(path), report.model_dump_json(indent=2))


def _read_bounded(p: Path, max_bytes: int) -> bytes:
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(p, flags)
    except OSError as err:
        raise ReportError(f"cannot read report: {err.strerror}", where=str(p)) from err
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ReportError(
                f"not a report file: {_file_type(st.st_mode)}",
                where=str(p),
                fix="give the path of a JSON report written by bertwatt",
            )
        if st.st_size > max_bytes:
            raise ReportError(
                f"file too large for a report ({st.st_size:,} bytes; the limit is {max_bytes:,})",
                where=str(p),
            )
        chunks = []
        left = max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
    except OSError as err:
        raise ReportError(f"cannot read report: {err.strerror}", where=str(p)) from err
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise ReportError(f"file too large for a report (over {max_bytes:,} bytes)", where=str(p))
    return data


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a report may hold")


def read_report_data(path: Path | str, *, max_bytes: int = MAX_REPORT_BYTES) -> dict[str, Any]:
    """The JSON object of a report file, upgraded to the current schema (not yet validated).

    Raises:
        ReportError: unreadable, not a regular file, too large, not UTF-8, not JSON (or JSON
            with NaN/Infinity or nested too deeply), not a report, or a schema version this
            bertwatt cannot read.
    """
    from bertwatt.report.models import SCHEMA_VERSION
    from bertwatt.report.v1 import upgrade_v1

    p = Path(path)
    raw = _read_bounded(p, max_bytes)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ReportError(
            f"not a JSON report: not UTF-8 text (byte 0x{raw[err.start]:02x} at offset "
            f"{err.start})",
            where=str(p),
        ) from None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        raise ReportError(
            f"not a JSON report (line {err.lineno}, column {err.colno}: {err.msg})", where=str(p)
        ) from None
    except ValueError as err:
        raise ReportError(f"invalid report: {err}", where=str(p)) from None
    except RecursionError:
        raise ReportError("not a report: JSON nested too deeply", where=str(p)) from None
    if not isinstance(data, dict) or "schema_version" not in data:
        raise ReportError("not a bertwatt report (no schema_version)", where=str(p))
    version = data["schema_version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ReportError(
            f"not a bertwatt report (schema_version {str(version)[:40]!r})", where=str(p)
        )
    if version > SCHEMA_VERSION:
        raise ReportError(
            f"report schema version {version} is newer than this bertwatt reads "
            f"(versions 1 to {SCHEMA_VERSION})",
            where=str(p),
            fix="upgrade bertwatt (pip install -U bertwatt)",
        )
    if version == 1:
        data = upgrade_v1(data)
    return data


def report_class(kind: object) -> type[EnergyReport]:
    """The report class of a file's ``kind`` (ReportError for an unknown kind)."""
    from bertwatt.report.finetune import FinetuneReport, InferenceReport
    from bertwatt.report.models import EnergyReport

    classes: dict[object, type[EnergyReport]] = {
        "energy": EnergyReport,
        "finetune": FinetuneReport,
        "inference": InferenceReport,
    }
    try:
        return classes[kind]
    except (KeyError, TypeError):
        raise ReportError(
            f"unknown report kind {str(kind)[:40]!r} (known: energy, finetune, inference)"
        ) from None


def load_report(
    path: Path | str, cls: type[R] | None = None, *, max_bytes: int = MAX_REPORT_BYTES
) -> R:
    """Read a report of any kind and return its class (:class:`EnergyReport`,
    :class:`FinetuneReport` or :class:`InferenceReport`, from the file's ``kind``).

    Version 1 files are upgraded. With ``cls``, the file's class must be ``cls`` or a subclass
    (``EnergyReport.load`` reads every kind; ``FinetuneReport.load`` only fine-tuning reports).

    Raises:
        ReportError: one line naming the file and the first problem (see
            :func:`read_report_data`), a kind other than ``cls``, a field that does not
            validate, or an impossible figure (NaN, infinite or negative energy).
    """
    from bertwatt.report.figures import check_figures

    p = Path(path)
    fast = _load_fast(p, cls, max_bytes)
    if fast is not None:
        check_figures(fast, where=str(p))
        return fast
    data = read_report_data(p, max_bytes=max_bytes)
    try:
        model = report_class(data.get("kind", "energy"))
    except ReportError as err:
        raise ReportError(err.message, where=str(p)) from None
    if cls is not None and not issubclass(model, cls):
        raise ReportError(
            f"this is a {data.get('kind')} report, not a {cls.__name__}",
            where=str(p),
            fix="read it with bertwatt.load_report(path), which returns the file's own class",
        )
    try:
        report = model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])[:200]
        raise ReportError(f"invalid report: {loc}: {first['msg'][:200]}", where=str(p)) from None
    except RecursionError:
        raise ReportError("not a report: JSON nested too deeply", where=str(p)) from None
    check_figures(report, where=str(p))
    return report  # type: ignore[return-value]


# The current schema written by bertwatt starts with these two fields; such a file is validated
# straight from its JSON text (several times faster than json.loads + validation). Anything else
# (older versions, reordered fields, NaN/Infinity literals, any validation error) takes the
# checked path, which gives the precise error.
_V2_HEAD = re.compile(rb'\A\s*\{\s*"schema_version"\s*:\s*2\s*,\s*"kind"\s*:\s*"(\w+)"')


def _load_fast(p: Path, cls: type[Any] | None, max_bytes: int) -> Any:
    raw = _read_bounded(p, max_bytes)
    head = _V2_HEAD.match(raw[:256])
    if head is None or b"NaN" in raw or b"Infinity" in raw:
        return None
    try:
        model = report_class(head.group(1).decode("ascii"))
    except ReportError:
        return None
    if cls is not None and not issubclass(model, cls):
        return None
    try:
        return model.model_validate_json(raw)
    except (ValidationError, RecursionError, ValueError):
        return None


def merge_reports(*args: Any, **kwargs: Any) -> Any:
    """See :func:`bertwatt.report.merge.merge_reports` (kept here for the old import path)."""
    from bertwatt.report.merge import merge_reports as merge

    return merge(*args, **kwargs)


def write_timeline_csv(report: EnergyReport, path: Path) -> None:
    """Write every channel's stored timeline as long-format CSV (atomically, like reports:
    only regular files; a FIFO or device is refused)."""
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(["host", "channel", "offset_s", "energy_j", "power_w"])
    for ch in report.channels:
        for off, e, p in ch.timeline:
            w.writerow(
                [ch.host, ch.name, f"{off:.6f}", f"{e:.6f}", "" if p is None else f"{p:.4f}"]
            )
    try:
        write_text_atomic(Path(path), buf.getvalue())
    except ReportError as err:
        raise ReportError(
            err.message.replace("a report", "the timeline CSV").replace(
                "the report", "the timeline CSV"
            ),
            where=err.where,
            fix=err.fix,
        ) from err.__cause__
