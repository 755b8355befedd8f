"""bertwatt: measure the energy and carbon of fine-tuning and running transformer models.

::

    from bertwatt import EnergyMeter

    with EnergyMeter() as meter:
        with meter.phase("train"):
            train()
    print(meter.report.summary())

Public names resolve lazily (PEP 562): ``import bertwatt`` loads only the standard library and
this package's small core, never torch, transformers, pynvml, numpy or pydantic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bertwatt._lazy import lazy_names
from bertwatt._version import __version__

if TYPE_CHECKING:
    from bertwatt.carbon.intensity import CarbonIntensity
    from bertwatt.errors import (
        BertwattError,
        CarbonDataError,
        ConfigError,
        EstimateWarning,
        MeasurementWarning,
        ReportError,
        SensorReadError,
    )
    from bertwatt.integrations.finetune import measure_finetune
    from bertwatt.integrations.inference import measure_inference
    from bertwatt.integrations.transformers import EnergyCallback
    from bertwatt.meter import EnergyMeter, WindowEnergy
    from bertwatt.repeat import measure_repeated
    from bertwatt.report.finetune import FinetuneReport
    from bertwatt.report.io import load_report
    from bertwatt.report.models import EnergyReport

__all__ = [
    "BertwattError",
    "CarbonDataError",
    "CarbonIntensity",
    "ConfigError",
    "EnergyCallback",
    "EnergyMeter",
    "EnergyReport",
    "EstimateWarning",
    "FinetuneReport",
    "MeasurementWarning",
    "ReportError",
    "SensorReadError",
    "WindowEnergy",
    "__version__",
    "load_report",
    "measure_finetune",
    "measure_inference",
    "measure_repeated",
]

_LAZY = {
    "EnergyMeter": "bertwatt.meter",
    "WindowEnergy": "bertwatt.meter",
    "EnergyReport": "bertwatt.report.models",
    "FinetuneReport": "bertwatt.report.finetune",
    "load_report": "bertwatt.report.io",
    "CarbonIntensity": "bertwatt.carbon.intensity",
    "BertwattError": "bertwatt.errors",
    "CarbonDataError": "bertwatt.errors",
    "ConfigError": "bertwatt.errors",
    "ReportError": "bertwatt.errors",
    "SensorReadError": "bertwatt.errors",
    "MeasurementWarning": "bertwatt.errors",
    "EstimateWarning": "bertwatt.errors",
    "EnergyCallback": "bertwatt.integrations.transformers",
    "measure_finetune": "bertwatt.integrations.finetune",
    "measure_inference": "bertwatt.integrations.inference",
    "measure_repeated": "bertwatt.repeat",
}


__getattr__, __dir__ = lazy_names(__name__, globals(), _LAZY)
