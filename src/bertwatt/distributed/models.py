"""The job report's models, defined in :mod:`bertwatt.report.job` (pure data) and re-exported."""

from __future__ import annotations

from bertwatt.report.job import GPUEntry, NodeReport, RankReport, job_report_class

__all__ = ["GPUEntry", "NodeReport", "RankReport", "job_report_class"]
