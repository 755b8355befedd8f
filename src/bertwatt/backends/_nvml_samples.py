"""NVML's buffered power samples: a GPU without an energy counter, read about once a second.

The driver keeps recent board power samples for each GPU; ``nvmlDeviceGetSamples(device,
NVML_TOTAL_POWER_SAMPLES, last_seen)`` returns those newer than the CPU time stamp ``last_seen``
(microseconds; 0 for the whole buffer), oldest first, as ``nvmlSample_t`` (``timeStamp``,
``sampleValue``; power in mW as an ``unsigned int``). NVML's reference: "The advantage of using this
method for samples in contrast to polling via existing methods is to get higher frequency data at
lower polling cost"; it answers ``NVML_ERROR_NOT_FOUND`` when no sample is newer than
``last_seen``.

:class:`PowerSamples` makes one GPU's buffer look like a power reading whose every value is the
mean power since the previous read (``Channel.mean_since_last_read``): the time-weighted
(trapezoid) mean of the samples since the last one seen, joined to it. Read about once a second,
that loses nothing a 10 Hz poll would see, as long as the buffer holds more than the time between
reads: :func:`probe_power_samples` uses the buffer only when it holds at least ``MIN_SPAN_S``,
else the backend polls ``nvmlDeviceGetPowerUsage`` as before.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

__all__ = ["MIN_SPAN_S", "SAMPLES_CALL", "PowerSamples", "probe_power_samples"]

SAMPLES_CALL = "nvmlDeviceGetSamples"

#: The buffer must span at least this long (s) for reads about once a second (1 s, with room for
#: a late read and an edge read in between).
MIN_SPAN_S = 2.5

#: Member of ``nvmlValue_t`` per ``nvmlValueType_t`` (pynvml's ``NVML_VALUE_TYPE_*``).
_VALUE_FIELDS = {
    0: "dVal",
    1: "uiVal",
    2: "ulVal",
    3: "ullVal",
    4: "sllVal",
    5: "siVal",
    6: "usVal",
}


class PowerSamples:
    """One GPU's buffered power samples, called like an NVML getter: ``reader(handle) -> mW``.

    Each call returns the time-weighted mean power (mW) of the samples newer than the last one
    seen, joined to that one by the trapezoid rule, so consecutive calls together integrate the
    whole sample series exactly once. When no new sample has come (``NVML_ERROR_NOT_FOUND``), the
    last sample's power is returned. NVML errors other than that propagate, as from any getter.

    Args:
        get: ``pynvml.nvmlDeviceGetSamples``.
        sampling_type: ``pynvml.NVML_TOTAL_POWER_SAMPLES``.
        error_type: ``pynvml.NVMLError``.
        not_found: the value of ``NVML_ERROR_NOT_FOUND``.
        last_us: time stamp of the newest sample seen at probe time (microseconds).
        last_mw: its power (mW).
        period_s: the spacing of the samples measured at probe time.
    """

    __slots__ = (
        "_error_type",
        "_get",
        "_not_found",
        "_type",
        "bridged_s",
        "last_mw",
        "last_us",
        "period_s",
    )

    def __init__(
        self,
        get: Callable[..., Any],
        sampling_type: int,
        error_type: type[BaseException],
        not_found: int,
        last_us: int,
        last_mw: float,
        period_s: float,
    ) -> None:
        self._get = get
        self._type = sampling_type
        self._error_type = error_type
        self._not_found = not_found
        self.last_us = last_us
        self.last_mw = last_mw
        self.period_s = period_s
        #: Seconds between consecutive samples that were much further apart than ``period_s``
        #: (the buffer overflowed before a read, or the driver paused): bridged by the trapezoid.
        self.bridged_s = 0.0

    def __call__(self, handle: Any) -> float:
        """The mean power (mW) since the previous call, from the samples that came since."""
        try:
            value_type, samples = self._get(handle, self._type, self.last_us)
        except self._error_type as err:
            if getattr(err, "value", None) == self._not_found:
                return self.last_mw  # no sample since the last read: the power holds
            raise
        field = _VALUE_FIELDS.get(value_type)
        if field is None:
            return math.nan  # a value type bertwatt cannot read: a failed read, not a guess
        t0 = prev_t = self.last_us
        prev_p = self.last_mw
        twice_uj = 0.0  # 2 x integral of mW over us
        long_gap_us = 3e6 * self.period_s
        bridged_us = 0
        for sample in samples:
            t = sample.timeStamp
            if t <= prev_t:
                continue  # not newer (or out of order): never counted twice
            p = float(getattr(sample.sampleValue, field))
            dt = t - prev_t
            twice_uj += (prev_p + p) * dt
            if dt > long_gap_us:
                bridged_us += dt
            prev_t, prev_p = t, p
        if prev_t == t0:
            return self.last_mw
        self.last_us, self.last_mw = prev_t, prev_p
        if bridged_us:
            self.bridged_s += bridged_us / 1e6
        return 0.5 * twice_uj / (prev_t - t0)


def probe_power_samples(
    nv: Any, error_type: type[BaseException], handle: Any, describe: Callable[[BaseException], str]
) -> PowerSamples | str:
    """A :class:`PowerSamples` for ``handle``, or why the buffered samples cannot be used.

    Never raises for "not here": a pynvml without the call, an NVML error (``NOT_SUPPORTED`` on
    GPUs without the buffer), an unknown value type, fewer than two samples, or a buffer spanning
    less than ``MIN_SPAN_S`` all come back as the reason (the backend then polls power).
    """
    get = getattr(nv, SAMPLES_CALL, None)
    sampling_type = getattr(nv, "NVML_TOTAL_POWER_SAMPLES", None)
    if get is None or not isinstance(sampling_type, int):
        return f"this pynvml has no {SAMPLES_CALL} / NVML_TOTAL_POWER_SAMPLES"
    try:
        value_type, samples = get(handle, sampling_type, 0)
        field = _VALUE_FIELDS.get(value_type)
        if field is None:
            return f"{SAMPLES_CALL} returned value type {value_type!r}, not one bertwatt reads"
        points = sorted(
            {int(s.timeStamp): float(getattr(s.sampleValue, field)) for s in samples}.items()
        )
    except error_type as err:
        return f"{SAMPLES_CALL}(NVML_TOTAL_POWER_SAMPLES) failed: {describe(err)}"
    except (AttributeError, TypeError, ValueError) as err:
        return f"{SAMPLES_CALL} returned samples bertwatt cannot read ({type(err).__name__})"
    if len(points) < 2:
        return f"{SAMPLES_CALL} returned {len(points)} power sample(s): too few to tell the spacing"
    gaps = sorted(b[0] - a[0] for a, b in itertools.pairwise(points))
    period_s = gaps[len(gaps) // 2] / 1e6
    span_s = (points[-1][0] - points[0][0]) / 1e6 + period_s
    if span_s < MIN_SPAN_S:
        return (
            f"the driver's power sample buffer holds {span_s:.3g} s (a sample every "
            f"{period_s * 1e3:.3g} ms), under the {MIN_SPAN_S:g} s that reads about once a second "
            "need"
        )
    if not all(math.isfinite(p) and p >= 0 for _, p in points):
        return f"{SAMPLES_CALL} returned a negative or non-finite power sample"
    not_found = getattr(nv, "NVML_ERROR_NOT_FOUND", 6)
    last_us, last_mw = points[-1]
    return PowerSamples(get, sampling_type, error_type, not_found, last_us, last_mw, period_s)
