"""Sensor models and the energy intervals derived from them.

What is known about each sensor ships as data, ``backends/data/sensor_models.csv``, one row per
sensor family with its source: update period, the share of each update period the reading sees
(``window_fraction``; 0.25 for NVML instant power on A100/H100), averaging window and lag of an
averaged reading, and the gain error against an external meter. :func:`sensor_model_for` picks the
first row matching a channel's backend, kind and device name (the GPU name, or the CPU model for
RAPL); :func:`set_sensor_models` overrides the table for the process.

:func:`energy_interval` turns a channel's figure into ``(low, high)`` joules. The half-width adds

- the gain error, ``gain_error_rel x E`` (systematic: added linearly);
- for a counter, its staleness at the window edges: each edge reading may be up to one update
  period old, so ``2 x update_period_s x P_ref x sqrt(edges / 2)``;
- for a sampled power signal, the sampling error: each sample stands for one sampling interval
  ``dt``, so the error is bounded in probability by ``z x sd(P) x sqrt(T x dt)`` (stratified
  sampling; ``z = 3``), plus, for a part-time reading that sees a fraction ``f`` of each update
  period, the unseen share ``(1 - f)`` of each stratum; for an averaged reading,
  ``averaging_window_s / 2 x P_ref`` for the smoothing and lag across the two edges;
- the counter resolution at both edges;

and an unmeasured share of the window (coverage below 1) raises ``high`` by the unmeasured time at
``P_ref`` (``P_ref``: the larger of the peak and mean power). An estimate's interval is its model
error, ``E x (1 +/- gain_error_rel)``, and its basis says it is a model. Pure: no imports of
backends or the sampler; the table is read from the package's data directory by path.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from bertwatt.errors import ConfigError

__all__ = [
    "CHARACTERISE_POINTS",
    "DEFAULT_ESTIMATE_ERROR",
    "DEFAULT_MODELS_PATH",
    "Interval",
    "SensorModel",
    "characterise",
    "counter_update_period",
    "energy_interval",
    "estimate_interval",
    "format_interval",
    "load_sensor_models",
    "power_averaging_window",
    "sensor_model_for",
    "sensor_models",
    "set_sensor_models",
    "sum_intervals",
]

#: The shipped sensor model table.
DEFAULT_MODELS_PATH = (
    Path(__file__).resolve().parent.parent / "backends" / "data" / ("sensor_models.csv")
)
#: Relative error assumed for an estimate without a sensor model of its own.
DEFAULT_ESTIMATE_ERROR = 0.5
#: Standard deviations the sampling error of a power signal is allowed.
SAMPLING_Z = 3.0
_COLUMNS = (
    "id",
    "backend",
    "kind",
    "device",
    "measured",
    "update_period_s",
    "window_fraction",
    "averaging_window_s",
    "lag_s",
    "gain_error_rel",
    "source",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SensorModel:
    """What is known about one sensor family, and where that knowledge comes from.

    Attributes:
        id: the row's name, e.g. ``"nvml-power-ga100"``.
        backend: backend name it applies to (``"*"``: any).
        kind: ``"counter"`` or ``"power"`` (other values document readings bertwatt does not use).
        device: regular expression searched in the device name ("" matches any).
        measured: False when the sensor is itself a model (AMD Zen RAPL, the estimate).
        update_period_s: how often the reading changes (None: unknown).
        window_fraction: share of each update period the reading sees (0.25: 25 ms of 100 ms).
        averaging_window_s: length of the average an averaged reading reports (None: instant).
        lag_s: how far an averaged reading lags the power it reports.
        gain_error_rel: relative error against an external meter (0.05 = 5 %).
        source: where the figures come from.
    """

    id: str
    backend: str
    kind: str
    device: str
    measured: bool
    update_period_s: float | None
    window_fraction: float
    averaging_window_s: float | None
    lag_s: float | None
    gain_error_rel: float
    source: str

    def matches(self, backend: str, kind: str, device: str) -> bool:
        """True when this row applies to a channel of ``backend``/``kind`` on ``device``."""
        if self.backend not in ("*", backend) or self.kind != kind:
            return False
        return not self.device or re.search(self.device, device) is not None


def _opt_float(row: dict[str, str], key: str, where: str) -> float | None:
    text = (row.get(key) or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError as err:
        raise ConfigError(f"{where}: {key} must be a number, got {text!r}") from err
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{where}: {key} must be finite and >= 0, got {text!r}")
    return value


def _model(row: dict[str, str], where: str) -> SensorModel:
    missing = [c for c in _COLUMNS if c not in row]
    if missing:
        raise ConfigError(f"{where}: missing column(s) {', '.join(missing)}")
    source = (row["source"] or "").strip()
    if not source:
        raise ConfigError(f"{where}: every sensor model needs a source")
    try:
        re.compile(row["device"] or "")
    except re.error as err:
        raise ConfigError(f"{where}: device is not a regular expression: {err}") from err
    measured = (row["measured"] or "").strip()
    if measured not in ("measured", "modelled"):
        raise ConfigError(f"{where}: measured must be 'measured' or 'modelled', got {measured!r}")
    fraction = _opt_float(row, "window_fraction", where)
    if fraction is not None and not 0 < fraction <= 1:
        raise ConfigError(f"{where}: window_fraction must be in (0, 1], got {fraction!r}")
    gain = _opt_float(row, "gain_error_rel", where)
    return SensorModel(
        id=row["id"].strip(),
        backend=row["backend"].strip(),
        kind=row["kind"].strip(),
        device=(row["device"] or "").strip(),
        measured=measured == "measured",
        update_period_s=_opt_float(row, "update_period_s", where),
        window_fraction=1.0 if fraction is None else fraction,
        averaging_window_s=_opt_float(row, "averaging_window_s", where),
        lag_s=_opt_float(row, "lag_s", where),
        gain_error_rel=0.0 if gain is None else gain,
        source=source,
    )


def load_sensor_models(path: str | Path) -> tuple[SensorModel, ...]:
    """Read a sensor model table (the columns of ``sensor_models.csv``).

    Raises:
        ConfigError: unreadable file, missing column, a row without a source or a bad number.
    """
    p = Path(path)
    try:
        with p.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ConfigError(f"cannot read sensor models from {p}: {err}") from err
    return tuple(_model(r, f"{p}: row {i + 2}") for i, r in enumerate(rows))


_default: tuple[SensorModel, ...] | None = None
_override: tuple[SensorModel, ...] | None = None


def sensor_models() -> tuple[SensorModel, ...]:
    """The table in use: the override if one is set, else the shipped one (read once)."""
    global _default
    if _override is not None:
        return _override
    if _default is None:
        _default = load_sensor_models(DEFAULT_MODELS_PATH)
    return _default


def set_sensor_models(
    models: str | Path | Sequence[SensorModel] | None,
) -> tuple[SensorModel, ...] | None:
    """Override the sensor models for this process (a CSV path or models; None restores).

    Rows are tried in order, so put specific rows before catch-alls. Returns the previous
    override, so a caller can restore it.
    """
    global _override
    previous = _override
    if models is None:
        _override = None
    elif isinstance(models, str | Path):
        _override = load_sensor_models(models)
    else:
        _override = tuple(models)
    return previous


def sensor_model_for(backend: str, kind: str, device: str = "") -> SensorModel | None:
    """The first sensor model that matches, or None."""
    for m in sensor_models():
        if m.matches(backend, kind, device):
            return m
    return None


@dataclass(frozen=True, slots=True)
class Interval:
    """An energy interval in joules and the sentence saying how it was formed."""

    low_j: float
    high_j: float
    basis: str


def estimate_interval(energy_j: float, model: SensorModel | None) -> Interval:
    """The wide interval of an estimated figure: its model error."""
    rel = model.gain_error_rel if model is not None else DEFAULT_ESTIMATE_ERROR
    src = f" (sensor model {model.id})" if model is not None else " (bertwatt's default)"
    return Interval(
        max(0.0, energy_j * (1 - rel)),
        energy_j * (1 + rel),
        f"a model, not a measurement: +/-{rel:.0%} assumed model error{src}",
    )


def _sd(values: Sequence[float]) -> float:
    n = len(values)
    if n < 2:
        return 0.0
    mean = sum(values) / n
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def energy_interval(
    *,
    energy_j: float,
    kind: str,
    estimated: bool,
    model: SensorModel | None,
    duration_s: float,
    covered_s: float,
    sample_interval_s: float,
    powers_w: Sequence[float] = (),
    peak_w: float | None = None,
    update_period_s: float | None = None,
    averaging_window_s: float | None = None,
    resolution_j: float | None = None,
    edges: int = 2,
    steps_placed: bool = False,
) -> Interval:
    """The interval of one channel's energy over a window (or a phase of it).

    Args:
        energy_j: the figure.
        kind: ``"counter"`` or ``"power"``: how it was measured.
        estimated: True for a model (the estimate backend).
        model: the channel's sensor model (None: no model, only what was measured is used).
        duration_s, covered_s: the window's length and the part of it measured.
        sample_interval_s: how often a power channel was sampled.
        powers_w: the power readings inside the window (their spread sets the sampling error).
        peak_w: highest power seen (W).
        update_period_s, averaging_window_s: measured or declared sensor facts; they override
            the model's.
        resolution_j: the counter's resolution.
        edges: window edges the figure rests on (2 per occurrence of a phase).
        steps_placed: a counter whose readings were placed at its steps, found at start
            (:mod:`bertwatt.characterise`): said in the basis; the edge term is kept.
    """
    if estimated:
        # a measured sensor's model says nothing about an estimate's error
        return estimate_interval(energy_j, model if model and not model.measured else None)
    parts: list[str] = []
    mean_w = energy_j / covered_s if covered_s > 0 else 0.0
    p_ref = max(peak_w or 0.0, mean_w, max(powers_w, default=0.0))
    gain_rel = model.gain_error_rel if model is not None else 0.0
    half = gain_rel * energy_j
    if gain_rel:
        parts.append(f"gain +/-{gain_rel:.0%}")
    upd = update_period_s or (model.update_period_s if model is not None else None)
    scale = math.sqrt(max(1.0, edges / 2))
    if kind == "counter":
        if upd:
            edge = 2 * upd * p_ref * scale
            half += edge
            placed = "; readings placed at its steps, found at start" if steps_placed else ""
            parts.append(f"edges +/-{edge:.3g} J (counter updates every {upd:g} s{placed})")
    else:
        dt = max(sample_interval_s, upd or 0.0)
        n = len(powers_w)
        sd = _sd(powers_w) if n >= 3 else p_ref / 2
        samp = SAMPLING_Z * sd * math.sqrt(max(covered_s, 0.0) * dt)
        fraction = model.window_fraction if model is not None else 1.0
        if fraction < 1:
            # the reading sees a fraction of each update period: the unseen rest adds spread
            samp *= math.sqrt(1 + (1 - fraction) / fraction)
        # a stratum at each edge may be extrapolated
        samp += dt * p_ref / 2 * scale
        half += samp
        parts.append(
            f"sampling +/-{samp:.3g} J ({n} samples every {dt:g} s"
            + (f", reading sees {fraction:.0%} of each {upd:g} s" if fraction < 1 and upd else "")
            + ")"
        )
        avg = averaging_window_s or (model.averaging_window_s if model is not None else None)
        if avg:
            # the average reaches back avg/2 on the mean before each edge
            smooth = avg / 2 * p_ref * scale
            half += smooth
            parts.append(f"averaged reading ({avg:g} s) +/-{smooth:.3g} J at the edges")
    if resolution_j:
        half += 2 * resolution_j * scale
    low = max(0.0, energy_j - half)
    high = energy_j + half
    uncovered = max(0.0, duration_s - covered_s)
    if uncovered > 0 and duration_s > 0 and uncovered / duration_s > 1e-6:
        add = uncovered * p_ref
        high += add
        parts.append(f"+{add:.3g} J for {uncovered:.3g} s not measured (at {p_ref:.3g} W)")
    src = f"sensor model {model.id}" if model is not None else "no sensor model"
    how = "counter" if kind == "counter" else "sampled power"
    return Interval(low, high, f"{how}, {src}: " + ", ".join(parts or ["exact reading"]))


def sum_intervals(intervals: Sequence[Interval], what: str) -> Interval:
    """The interval of a sum: lows and highs add (sound whatever the correlation)."""
    return Interval(
        sum(i.low_j for i in intervals),
        sum(i.high_j for i in intervals),
        f"sum of the intervals of {what} (errors added linearly, a conservative bound)",
    )


_PREFIXES = ((1e9, "GJ"), (1e6, "MJ"), (1e3, "kJ"), (1.0, "J"), (1e-3, "mJ"))


def format_interval(energy_j: float | None, interval: tuple[float, float] | None) -> str:
    """``412 ± 21 kJ`` (symmetric) or ``412 kJ (+38/-21 kJ)``; "" when there is none."""
    if energy_j is None or interval is None:
        return ""
    low, high = interval
    if not all(math.isfinite(x) for x in (energy_j, low, high)):
        return ""
    scale, unit = next(
        ((s, u) for s, u in _PREFIXES if abs(energy_j) >= s or s == 1e-3), (1.0, "J")
    )
    if energy_j == 0:
        scale, unit = 1.0, "J"
    up, down = (high - energy_j) / scale, (energy_j - low) / scale
    e = energy_j / scale
    digits = 0 if abs(e) >= 100 else (1 if abs(e) >= 10 else 2)
    if math.isclose(up, down, rel_tol=0.05, abs_tol=10**-digits):
        return f"{e:.{digits}f} \u00b1 {max(up, down):.{digits}f} {unit}"
    return f"{e:.{digits}f} {unit} (+{up:.{digits}f}/-{down:.{digits}f} {unit})"


# ------------------------------------------------------------------------ self-characterisation
#: Points from the start of a channel's samples used to characterise its sensor.
CHARACTERISE_POINTS = 200
_AVERAGING_RANGE_S = (0.25, 3.0)


def counter_update_period(t_ns: Sequence[int], energy_j: Sequence[float]) -> float | None:
    """A counter's update period from polls faster than it updates (None: not resolvable).

    Polls that find the counter unchanged reveal its steps: the period is the median time
    between changes. Needs at least 4 changes, some polls that saw no change, and regular gaps
    (an idle stretch also leaves a counter unchanged); a counter that moves at every poll
    updates at least as fast as it was polled, which says nothing more.
    """
    n = min(len(t_ns), len(energy_j), CHARACTERISE_POINTS)
    changes = [t_ns[i] for i in range(1, n) if energy_j[i] != energy_j[i - 1]]
    if len(changes) < 4 or len(changes) >= n - 1:
        return None
    gaps = sorted(b - a for a, b in pairwise(changes))
    median = gaps[len(gaps) // 2]
    # periodic updates give regular gaps; idle stretches (no energy to count) do not
    if gaps[len(gaps) // 4] < 0.7 * median or gaps[3 * len(gaps) // 4] > 1.3 * median:
        return None
    polls = sorted(t_ns[i] - t_ns[i - 1] for i in range(1, n))
    if median < 1.5 * polls[len(polls) // 2]:
        return None  # it changed at (nearly) every poll: as fast as it was polled, or faster
    return median / 1e9


def power_averaging_window(t_ns: Sequence[int], power_w: Sequence[float]) -> float | None:
    """Estimate the averaging window of a power reading from its largest step between polls.

    An instant reading can jump by its whole range between two polls; a reading averaged over
    ``w`` seconds moves at most ``range x dt / w`` in ``dt``. Returns ``w`` (0.0 for an instant
    reading, whose largest step is most of its range), or None when the power hardly varied or
    only drifted (``w`` outside 0.25-3 s: a slow ramp looks the same read instantly).
    """
    n = min(len(t_ns), len(power_w), CHARACTERISE_POINTS)
    pts = [(t_ns[i], power_w[i]) for i in range(n) if math.isfinite(power_w[i])]
    if len(pts) < 10:
        return None
    values = [w for _, w in pts]
    span = max(values) - min(values)
    if span <= 0.05 * max(max(values), 1e-9):
        return None
    steps = [(abs(b[1] - a[1]), (b[0] - a[0]) / 1e9) for a, b in pairwise(pts) if b[0] > a[0]]
    step, dt = max(steps)
    if step >= 0.5 * span:
        return 0.0
    w = dt * span / step if step > 0 else math.inf
    # sensors average over a fraction of a second to a few seconds; a slower drift is the
    # power itself changing slowly (a ramp), which an instant reading shows the same way
    return w if _AVERAGING_RANGE_S[0] <= w <= _AVERAGING_RANGE_S[1] else None


def characterise(
    kind: str, t_ns: Sequence[int], energy_j: Sequence[float], power_w: Sequence[float]
) -> dict[str, str]:
    """What the first samples of a channel say about its sensor, as provenance text."""
    poll = ""
    if len(t_ns) > 1:
        k = min(len(t_ns), CHARACTERISE_POINTS) - 1
        poll = f" (from {k + 1} polls every {(t_ns[k] - t_ns[0]) / k / 1e9:.3g} s)"
    if kind == "counter":
        upd = counter_update_period(t_ns, energy_j)
        text = (
            f"{upd:.3g} s{poll}"
            if upd is not None
            else f"not resolved: it changed at every poll or too rarely{poll}"
        )
        return {"detected_update_period_s": text}
    w = power_averaging_window(t_ns, power_w)
    if w is None:
        text = f"not resolved: the power hardly varied or only drifted{poll}"
    elif w == 0.0:
        text = f"instant: it jumped by most of its range between two polls{poll}"
    else:
        text = f"averaged over about {w:.2g} s{poll}"
    return {"detected_reading": text}
