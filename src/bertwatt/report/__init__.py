"""Reports: the pydantic schema (``models``, ``finetune``), files (``io``: atomic writes, bounded
loading of every kind, CSV), merging (``merge``), text (``render``) and warnings (``checks``).

The report layer is pure data: it imports nothing from the sensor side (backends, sampler,
timelines, windows) nor the carbon package, so a saved report is readable with only
``bertwatt.report`` and pydantic. Nothing here is imported by ``import bertwatt``; pydantic loads
when a report is first built or loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bertwatt._lazy import lazy_names

if TYPE_CHECKING:
    from bertwatt.report.finetune import FinetuneReport, InferenceReport
    from bertwatt.report.io import load_report
    from bertwatt.report.merge import merge_paths, merge_reports
    from bertwatt.report.models import (
        SCHEMA_VERSION,
        CarbonSummary,
        ChannelReport,
        EnergyReport,
        HostInfo,
        PhaseReport,
        ResumeInfo,
        RunInfo,
        Segment,
    )

__all__ = [
    "SCHEMA_VERSION",
    "CarbonSummary",
    "ChannelReport",
    "EnergyReport",
    "FinetuneReport",
    "HostInfo",
    "InferenceReport",
    "PhaseReport",
    "ResumeInfo",
    "RunInfo",
    "Segment",
    "load_report",
    "merge_paths",
    "merge_reports",
]

_LAZY = {
    "SCHEMA_VERSION": "bertwatt.report.models",
    "CarbonSummary": "bertwatt.report.models",
    "ChannelReport": "bertwatt.report.models",
    "EnergyReport": "bertwatt.report.models",
    "HostInfo": "bertwatt.report.models",
    "PhaseReport": "bertwatt.report.models",
    "ResumeInfo": "bertwatt.report.models",
    "RunInfo": "bertwatt.report.models",
    "Segment": "bertwatt.report.models",
    "FinetuneReport": "bertwatt.report.finetune",
    "InferenceReport": "bertwatt.report.finetune",
    "load_report": "bertwatt.report.io",
    "merge_paths": "bertwatt.report.merge",
    "merge_reports": "bertwatt.report.merge",
}

__getattr__, __dir__ = lazy_names(__name__, globals(), _LAZY)
