"""Time series of carbon intensity: parsing, validation and exact integration against energy.

A series is a step function: each value holds from its timestamp until the next one; the last
value holds after the last timestamp, and (with a note, added by the caller) the first value is
used before the first timestamp.

Integration is exact for the report's piecewise-linear cumulative-energy timeline (constant power
between timeline points): every timeline segment is cut at the series' change points and at the
window edges, and each piece contributes ``value x energy``. :func:`weighted_intensity` returns the
energy-weighted mean intensity over the windows, which the caller multiplies by the energy the
report states for the same windows.
"""

from __future__ import annotations

import csv
import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from os import PathLike
from pathlib import Path
from typing import Any

from bertwatt.errors import CarbonDataError, ConfigError

__all__ = [
    "Weighted",
    "merge_windows",
    "normalize_points",
    "parse_timestamp",
    "read_series_csv",
    "weighted_intensity",
]

Step = tuple[float, float]  # (unix seconds, gCO2e/kWh)


def parse_timestamp(text: str) -> datetime:
    """An ISO 8601 timestamp as an aware UTC datetime; naive means UTC; ``Z`` is accepted.

    Raises:
        ValueError: not ISO 8601.
    """
    s = text.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def _to_unix(ts: object) -> float:
    if isinstance(ts, datetime):
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=timezone.utc)
        return ts.timestamp()
    if isinstance(ts, bool) or not isinstance(ts, int | float):
        raise TypeError(type(ts).__name__)
    v = float(ts)
    if not math.isfinite(v):
        raise ValueError("not finite")
    return v


def _check_value(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(type(value).__name__)
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{value!r} is not a finite number >= 0")
    return v


def normalize_points(points: object) -> tuple[Step, ...]:
    """Validate in-memory ``(timestamp, gCO2e/kWh)`` points; return ``(unix_s, value)`` pairs.

    Timestamps are aware or naive (= UTC) datetimes, or Unix seconds; they must strictly
    increase. Values must be finite and >= 0.

    Raises:
        ConfigError: empty series, bad timestamp or value, or timestamps not strictly increasing.
    """
    bad = ConfigError(
        f"series points must be a sequence of (timestamp, gCO2e/kWh) pairs, got {points!r}"
    )
    if isinstance(points, str | bytes):
        raise bad
    seq: Sequence[Any]
    if isinstance(points, Sequence):
        seq = points
    else:
        try:
            seq = list(points)  # type: ignore[call-overload]
        except TypeError:
            raise bad from None
    if not seq:
        raise ConfigError("a carbon-intensity series needs at least one (timestamp, value) point")
    out: list[Step] = []
    for i, point in enumerate(seq):
        try:
            ts, value = point
        except (TypeError, ValueError):
            raise ConfigError(
                f"series point {i} must be a (timestamp, gCO2e/kWh) pair, got {point!r}"
            ) from None
        try:
            t = _to_unix(ts)
        except (TypeError, ValueError, OverflowError, OSError):
            raise ConfigError(
                f"series point {i}: timestamp {ts!r} must be a datetime or Unix seconds"
            ) from None
        try:
            v = _check_value(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"series point {i}: intensity {value!r} must be a finite number >= 0 gCO2e/kWh"
            ) from None
        if out and t <= out[-1][0]:
            raise ConfigError(
                f"series point {i}: timestamp {ts!r} is not after the previous one; "
                "timestamps must strictly increase"
            )
        out.append((t, v))
    return tuple(out)


def read_series_csv(path: str | PathLike[str]) -> tuple[Step, ...]:
    """Read a series CSV: header with ``timestamp`` and ``gco2e_per_kwh`` columns, one row each.

    Timestamps are ISO 8601 with or without offset (naive means UTC). Blank lines and lines
    starting with ``#`` are skipped; other columns are ignored.

    Raises:
        CarbonDataError: unreadable file, missing columns, or a bad row (the message names the
            line).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except OSError as err:
        raise CarbonDataError(
            f"cannot read intensity series ({err.strerror or err})",
            where=str(p),
            fix="check the path",
        ) from err
    lines = text.splitlines()
    reader = csv.reader(lines)
    header: list[str] | None = None
    out: list[Step] = []
    prev_line = 0
    for fields in reader:
        line = reader.line_num
        if not fields or all(not f.strip() for f in fields) or fields[0].lstrip().startswith("#"):
            continue
        if header is None:
            header = [f.strip().lower() for f in fields]
            missing = [c for c in ("timestamp", "gco2e_per_kwh") if c not in header]
            if missing:
                raise CarbonDataError(
                    f"line {line}: the header must name the columns timestamp and "
                    f"gco2e_per_kwh (missing: {', '.join(missing)})",
                    where=str(p),
                )
            ti, vi = header.index("timestamp"), header.index("gco2e_per_kwh")
            continue
        if len(fields) != len(header):
            raise CarbonDataError(
                f"line {line}: {len(fields)} fields, the header has {len(header)}", where=str(p)
            )
        ts_text, v_text = fields[ti].strip(), fields[vi].strip()
        try:
            t = parse_timestamp(ts_text).timestamp()
        except ValueError:
            raise CarbonDataError(
                f"line {line}: timestamp {ts_text!r} is not ISO 8601 "
                "(e.g. 2024-05-01T13:00:00+02:00)",
                where=str(p),
            ) from None
        try:
            v = _check_value(float(v_text))
        except ValueError:
            raise CarbonDataError(
                f"line {line}: gco2e_per_kwh {v_text!r} is not a finite number >= 0",
                where=str(p),
            ) from None
        if out and t <= out[-1][0]:
            raise CarbonDataError(
                f"line {line}: timestamp {ts_text!r} is not after the one on line {prev_line}; "
                "rows must be in strictly increasing time order",
                where=str(p),
            )
        out.append((t, v))
        prev_line = line
    if header is None:
        raise CarbonDataError("empty file: expected a header timestamp,gco2e_per_kwh", where=str(p))
    if not out:
        raise CarbonDataError("no data rows after the header", where=str(p))
    return tuple(out)


def merge_windows(windows: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Sort windows and merge overlapping or touching ones; drop empty ones."""
    out: list[tuple[float, float]] = []
    for a, b in sorted((float(a), float(b)) for a, b in windows):
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


@dataclass(frozen=True, slots=True)
class Weighted:
    """Integrals over some windows: ``ew = sum(value x energy_j)``, ``e = sum(energy_j)``,
    ``tw = sum(value x seconds)``, ``t = seconds``."""

    ew: float
    e: float
    tw: float
    t: float

    def mean(self, default: float) -> float:
        """Energy-weighted mean intensity; time-weighted when no energy; else ``default``."""
        if self.e > 0:
            return self.ew / self.e
        if self.t > 0:
            return self.tw / self.t
        return default


def weighted_intensity(
    timeline: Sequence[tuple[float, float]],
    windows: Sequence[tuple[float, float]],
    bounds: Sequence[float],
    values: Sequence[float],
) -> Weighted:
    """Integrate a step intensity against a cumulative-energy timeline over ``windows``.

    Args:
        timeline: ``(offset_s, cumulative energy_j)`` points, sorted by offset; energy is linear
            between points. A decrease is treated as no energy.
        windows: ``(start_s, end_s)`` offsets to integrate over (merged here).
        bounds: sorted change points ``b_1 < ... < b_n`` (offsets, seconds).
        values: ``n + 1`` intensities; ``values[i]`` holds on ``[b_i, b_{i+1})``, ``values[0]``
            before ``b_1`` and ``values[n]`` from ``b_n`` on.
    """
    if len(values) != len(bounds) + 1:
        raise ValueError("values must have one more element than bounds")
    wins = merge_windows(windows)
    ew = e = tw = t = 0.0
    pts = sorted(timeline, key=lambda p: p[0])
    wi = 0
    for k in range(len(pts) - 1):
        t0, e0 = float(pts[k][0]), float(pts[k][1])
        t1, e1 = float(pts[k + 1][0]), float(pts[k + 1][1])
        de = max(0.0, e1 - e0)
        if t1 <= t0:
            if de > 0 and any(a <= t0 < b for a, b in wins):
                v = values[bisect_right(bounds, t0)]
                ew += v * de
                e += de
            continue
        power = de / (t1 - t0)
        while wi < len(wins) and wins[wi][1] <= t0:
            wi += 1
        j = wi
        while j < len(wins) and wins[j][0] < t1:
            x0, x1 = max(t0, wins[j][0]), min(t1, wins[j][1])
            if x1 > x0:
                i = bisect_right(bounds, x0)
                y0 = x0
                while True:
                    y1 = bounds[i] if i < len(bounds) and bounds[i] < x1 else x1
                    dt = y1 - y0
                    v = values[i]
                    piece = power * dt
                    ew += v * piece
                    e += piece
                    tw += v * dt
                    t += dt
                    if y1 >= x1:
                        break
                    y0 = y1
                    i += 1
            j += 1
    return Weighted(ew=ew, e=e, tw=tw, t=t)
