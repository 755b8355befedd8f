"""Numbers people read: one style per quantity (energy, power, emissions, counts).

Four significant figures, trailing zeros dropped, thousands separators, SI prefixes chosen by
magnitude, and no ``-0`` (a value that rounds to zero is written ``0``). Standard library only:
the live line, the fine-tuning summary and the study reports all use these.

>>> fmt_j(0.000237), fmt_g(0.000237), fmt_j(5.4252e9), fmt_count(1, "batch")
('237 uJ', '237 ugCO2e', '5.425 GJ', '1 batch')
"""

from __future__ import annotations

import math

__all__ = ["fmt_count", "fmt_g", "fmt_j", "fmt_num", "fmt_s", "fmt_w"]


def fmt_num(value: float | None, digits: int = 4) -> str:
    """``value`` to ``digits`` significant figures, trailing zeros dropped; '-' for None/NaN."""
    if value is None or not math.isfinite(value):
        return "-"
    if value == 0:
        return "0"
    a = abs(value)
    if 1e-3 <= a < 1e6:
        decimals = max(0, digits - 1 - math.floor(math.log10(a)))
        text = f"{value:,.{decimals}f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
    else:
        mantissa, exp = f"{value:.{digits - 1}e}".split("e")
        if "." in mantissa:
            mantissa = mantissa.rstrip("0").rstrip(".")
        text = f"{mantissa}e{int(exp)}"
    return "0" if text.lstrip("-") in ("0", "0.") else text


def _scaled(value: float | None, unit: str, scales: tuple[tuple[float, str], ...]) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    a = abs(value)
    if a == 0:
        return f"0 {unit}"
    for scale, prefix in scales:
        if a >= scale:
            return f"{fmt_num(value / scale)} {prefix}{unit}"
    scale, prefix = scales[-1]
    return f"{fmt_num(value / scale)} {prefix}{unit}"


_PREFIXES = ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "u"), (1e-9, "n"))


def fmt_j(value: float | None) -> str:
    """Energy in J with an SI prefix: ``'237 uJ'``, ``'12.5 J'``, ``'5.425 GJ'``."""
    return _scaled(value, "J", _PREFIXES)


def fmt_w(value: float | None) -> str:
    """Power in W with an SI prefix: ``'41.3 W'``, ``'1.2 kW'``."""
    return _scaled(value, "W", _PREFIXES)


def fmt_g(value: float | None) -> str:
    """Emissions in gCO2e with an SI prefix: ``'237 ugCO2e'``, ``'3.2 kgCO2e'``."""
    return _scaled(value, "gCO2e", _PREFIXES)


def fmt_s(seconds: float | None) -> str:
    """A duration: ``'42.1 s'``, ``'12 min 03 s'``, ``'3 h 07 min'``."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    if seconds < 60:
        return f"{fmt_num(max(0.0, seconds), 3)} s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def fmt_count(n: int, noun: str, plural: str | None = None) -> str:
    """``'1 batch'``, ``'2 batches'``, ``'1,200 examples'``."""
    if n == 1:
        return f"1 {noun}"
    if plural is None:
        plural = noun + ("es" if noun.endswith(("s", "sh", "ch", "x")) else "s")
    return f"{n:,} {plural}"
