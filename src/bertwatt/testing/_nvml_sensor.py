"""How a fake GPU's sensor turns its true power trace into what ``pynvml`` returns.

A real NVIDIA board does not report the power it draws. What the driver returns depends on the
architecture, and three effects matter for energy accounting. All three figures come from
Z. Yang, K. Adámek, W. Armour, "Accurate and Convenient Energy Measurements for GPUs: A Detailed
Study of NVIDIA GPU's Built-in Power Sensor", SC24 (preprint "Part-time Power Measurements:
nvidia-smi's Lack of Attention", arXiv:2312.02741), which profiled over 70 GPUs against an
external power meter:

- **Part-time instant power (A100, H100).** The power sensor is sampled for about 25 ms of every
  100 ms; the "instant" reading is the mean over the last such window, and the GPU can draw very
  different power in the other 75 % of the time without the reading seeing it.
  (:attr:`SensorModel.power_reading` ``"instant"``, :attr:`~SensorModel.window_s` 0.025,
  :attr:`~SensorModel.period_s` 0.1.)
- **Averaged default reading (Ampere other than GA100, and Hopper).** ``nvmlDeviceGetPowerUsage``
  returns a 1 s moving average, refreshed every 100 ms, so it lags a step by about half a second.
  NVML's documentation says the same for "Ampere (except GA100) or newer" GPUs.
  (``"average"``, :attr:`~SensorModel.average_s` 1.0.)
- **Board gain error.** Against the external meter the boards read a few percent high or low, a
  fixed gain per board. (:attr:`~SensorModel.gain`, e.g. 1.03; it scales power and counter alike.)
- **Energy counter granularity.** ``nvmlDeviceGetTotalEnergyConsumption`` changes in steps about
  every 100 ms (Yang et al.; ML.ENERGY's Zeus documents the same granularity for its profiling
  windows). (:attr:`~SensorModel.energy_update_s` 0.1.)

The default :class:`SensorModel` is an ideal sensor (exact power, exact counter), which is what the
fake did before these models existed. Each effect is switched on per :class:`FakeGPU` with
``FakeGPU(sensor=SensorModel(...))`` or a preset name from :data:`SENSOR_PRESETS`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from bertwatt.errors import ConfigError

if TYPE_CHECKING:
    from bertwatt.testing._nvml_trace import ExactTrace

__all__ = ["SENSOR_PRESETS", "SensorModel", "sensor_model"]

_NS_PER_S = 1_000_000_000

PowerReading = Literal["exact", "instant", "average"]


def _positive(name: str, value: float, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"SensorModel {name} must be a number of seconds, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"SensorModel {name} must be finite and > 0, got {value!r}")


@dataclass(frozen=True)
class SensorModel:
    """What a fake GPU's power sensor and energy counter report, given its true power.

    Args:
        power_reading: ``"exact"`` (the trace's value now, an ideal sensor); ``"instant"`` (the
            mean over the last completed ``window_s`` window, one window per ``period_s``: A100
            and H100 see 25 ms of every 100 ms); ``"average"`` (the mean over the ``average_s``
            before the last refresh, refreshed every ``period_s``: the 1 s default reading of
            Ampere other than GA100 and Hopper, lagging about 0.5 s).
        window_s: length of the sampled window of ``"instant"`` readings (s).
        period_s: period of the sensor's windows and refreshes (s).
        phase_s: where in each period the windows start (s, ``0 <= phase_s < period_s``); a real
            board's phase against the host clock is unknown, so simulations draw it at random.
        average_s: span of the ``"average"`` reading (s).
        gain: the board's gain error, multiplying power readings and counter increments alike
            (1.0 exact; Yang et al. found errors of a few percent against an external meter).
        energy_update_s: the energy counter moves in steps this often (s, at ``phase_s`` within
            each step); ``None`` for a counter that is always exact (to the mJ).

    Raises:
        ConfigError: for an unknown ``power_reading`` or a non-positive, non-finite figure.
    """

    power_reading: PowerReading = "exact"
    window_s: float = 0.025
    period_s: float = 0.1
    phase_s: float = 0.0
    average_s: float = 1.0
    gain: float = 1.0
    energy_update_s: float | None = None

    def __post_init__(self) -> None:
        if self.power_reading not in ("exact", "instant", "average"):
            raise ConfigError(
                "SensorModel power_reading must be 'exact', 'instant' or 'average', "
                f"got {self.power_reading!r}"
            )
        _positive("window_s", self.window_s)
        _positive("period_s", self.period_s)
        _positive("average_s", self.average_s)
        _positive("gain", self.gain)
        _positive("energy_update_s", self.energy_update_s, allow_none=True)  # type: ignore[arg-type]
        if self.window_s > self.period_s:
            raise ConfigError(
                f"SensorModel window_s ({self.window_s}) cannot exceed period_s ({self.period_s})"
            )
        if isinstance(self.phase_s, bool) or not isinstance(self.phase_s, (int, float)):
            raise ConfigError(f"SensorModel phase_s must be a number, got {self.phase_s!r}")
        if not 0 <= self.phase_s < self.period_s:
            raise ConfigError(
                f"SensorModel phase_s must be in [0, period_s={self.period_s}), "
                f"got {self.phase_s!r}"
            )

    @property
    def exact(self) -> bool:
        """True for an ideal sensor: exact power, exact counter, no gain error."""
        return self.power_reading == "exact" and self.gain == 1.0 and self.energy_update_s is None

    def power_w(self, trace: ExactTrace, elapsed_ns: int) -> float:
        """What ``nvmlDeviceGetPowerUsage`` reports at ``elapsed_ns``, in watts."""
        if self.power_reading == "exact":
            return self.gain * trace.power_w(elapsed_ns)
        period_ns = round(self.period_s * _NS_PER_S)
        phase_ns = round(self.phase_s * _NS_PER_S)
        if self.power_reading == "instant":
            window_ns = round(self.window_s * _NS_PER_S)
            # The last window that has ended by now: it starts at phase + k * period.
            k = math.floor((elapsed_ns - phase_ns - window_ns) / period_ns)
            start = phase_ns + k * period_ns
            return self.gain * trace.mean_w(start, start + window_ns)
        # "average": the mean over average_s ending at the last refresh.
        k = math.floor((elapsed_ns - phase_ns) / period_ns)
        end = phase_ns + k * period_ns
        return self.gain * trace.mean_w(end - round(self.average_s * _NS_PER_S), end)

    def counter_ns(self, elapsed_ns: int) -> int:
        """The time the energy counter last updated at or before ``elapsed_ns``."""
        if self.energy_update_s is None:
            return elapsed_ns
        update_ns = round(self.energy_update_s * _NS_PER_S)
        phase_ns = round(self.phase_s * _NS_PER_S) % update_ns
        return phase_ns + math.floor((elapsed_ns - phase_ns) / update_ns) * update_ns


#: Named sensor models: ``FakeGPU(sensor="a100")`` is ``FakeGPU(sensor=SENSOR_PRESETS["a100"])``.
#: ``"a100"``/``"h100"``: 25 ms of every 100 ms, counter in 100 ms steps; ``"ampere"`` (GA10x) and
#: ``"hopper_average"``: the 1 s averaged default reading, counter in 100 ms steps. None has a
#: gain error: set ``gain`` with :func:`dataclasses.replace` or :func:`sensor_model`.
SENSOR_PRESETS: dict[str, SensorModel] = {
    "exact": SensorModel(),
    "a100": SensorModel(power_reading="instant", energy_update_s=0.1),
    "h100": SensorModel(power_reading="instant", energy_update_s=0.1),
    "ampere": SensorModel(power_reading="average", energy_update_s=0.1),
    "hopper_average": SensorModel(power_reading="average", energy_update_s=0.1),
}


def sensor_model(value: SensorModel | str | None, **overrides: float | str | None) -> SensorModel:
    """A :class:`SensorModel` from a model, a preset name or ``None`` (exact), with overrides.

    ``sensor_model("a100", gain=1.03, phase_s=0.04)`` is the A100 model with a 3 % gain error.
    """
    if value is None:
        base = SensorModel()
    elif isinstance(value, SensorModel):
        base = value
    elif isinstance(value, str) and value in SENSOR_PRESETS:
        base = SENSOR_PRESETS[value]
    else:
        raise ConfigError(
            f"sensor must be a SensorModel or one of {sorted(SENSOR_PRESETS)}, got {value!r}"
        )
    if not overrides:
        return base
    fields = {f: getattr(base, f) for f in base.__dataclass_fields__}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ConfigError(f"unknown SensorModel fields {unknown}; known: {sorted(fields)}")
    fields.update(overrides)
    return SensorModel(**fields)
