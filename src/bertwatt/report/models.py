"""The report schema (pydantic v2). Imported only when a report is built or loaded.

Schema history (``schema_version``):

- 1 (bertwatt 0.1): first release.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bertwatt.report.wall import WallReport

__all__ = [
    "SCHEMA_VERSION",
    "BaselineReport",
    "CarbonSummary",
    "ChannelReport",
    "EnergyReport",
    "HostInfo",
    "PhaseReport",
    "ProvenanceInfo",
    "UnavailableInfo",
]

SCHEMA_VERSION = 1

_J_PER_KWH = 3.6e6


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, validate_assignment=False)


class ProvenanceInfo(_Model):
    """Where a channel's numbers come from (see :class:`bertwatt.backends.base.Provenance`)."""

    kind: Literal["measured", "estimated"]
    source: str
    scope: str
    method: str = ""
    update_period_s: float | None = None
    averaging_window_s: float | None = None
    resolution_j: float | None = None
    assumptions: dict[str, str] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)


class UnavailableInfo(_Model):
    """Something that could not be measured, why, and the fix."""

    what: str
    reason: str
    fix: str | None = None
    host: str = ""


class HostInfo(_Model):
    """The machine a report was measured on."""

    hostname: str
    os: str
    python: str
    bertwatt_version: str
    cpu_model: str | None = None
    logical_cpus: int | None = None
    gpu_names: list[str] = Field(default_factory=list)
    pid: int | None = None


class ChannelReport(_Model):
    """One channel's figures over the window."""

    name: str
    backend: str
    domain: str
    kind: Literal["counter", "power"]
    host: str = ""
    counted: bool = True
    parent: str | None = None
    energy_j: float | None = Field(description="None when the channel delivered no sample")
    energy_kwh: float | None
    mean_power_w: float | None
    peak_power_w: float | None
    samples: int
    rejected: int = 0
    failed_reads: int = 0
    wraps: int = 0
    coverage: float = Field(ge=0.0, le=1.0)
    provenance: ProvenanceInfo
    info: dict[str, str] = Field(default_factory=dict)
    events: list[str] = Field(default_factory=list)
    timeline: list[tuple[float, float, float | None]] = Field(
        default_factory=list,
        description="(offset_s, cumulative energy_j, power_w) points, thinned for size",
    )


class PhaseReport(_Model):
    """A named phase: every occurrence of that name inside the window, summed."""

    name: str
    intervals: list[tuple[float, float]]
    count: int
    duration_s: float
    energy_j: float | None
    energy_kwh: float | None
    mean_power_w: float | None
    coverage: float = Field(ge=0.0, le=1.0)
    channels: dict[str, float] = Field(default_factory=dict)


class BaselineReport(_Model):
    """Idle power measured before the window."""

    duration_s: float
    power_w: float | None
    channels_w: dict[str, float] = Field(default_factory=dict)


class CarbonSummary(_Model):
    """Emissions of the run: intensity used (with source and year), PUE, energy, emissions."""

    kind: Literal["static", "series", "live"]
    zone: str | None
    intensity_g_per_kwh: float
    year: int | None
    source: str
    pue: float
    pue_source: str
    it_energy_kwh: float
    facility_energy_kwh: float
    emissions_g: float
    phases: dict[str, float] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)


class EnergyReport(_Model):
    """What one measured window (or several merged) used, and where every figure came from.

    ``energy_j`` is the total without double counting (``total_basis`` says how it was formed);
    ``None`` means nothing could be measured, and ``unavailable`` says why.
    """

    schema_version: int = SCHEMA_VERSION
    status: Literal["complete", "running"] = "complete"
    started_at: datetime
    ended_at: datetime
    duration_s: float = Field(ge=0.0)
    interval_s: float
    host: HostInfo
    hosts: list[HostInfo] = Field(default_factory=list)
    energy_j: float | None
    energy_kwh: float | None
    mean_power_w: float | None
    total_basis: str
    channels: list[ChannelReport] = Field(default_factory=list)
    phases: dict[str, PhaseReport] = Field(default_factory=dict)
    unavailable: list[UnavailableInfo] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    baseline: BaselineReport | None = None
    energy_above_idle_j: float | None = None
    timeline: list[tuple[float, float]] = Field(
        default_factory=list, description="(offset_s, cumulative counted energy_j)"
    )
    emissions_g: float | None = None
    carbon: CarbonSummary | None = None
    carbon_note: str | None = None
    wall: WallReport | None = Field(
        default=None,
        description="software sensors against the wall meter, for the run and each phase",
    )
    extra: dict[str, Any] = Field(default_factory=dict)

    # ------------------------------------------------------------------ helpers
    @property
    def measured(self) -> bool:
        """True when every counted channel is measured (none estimated)."""
        counted = [c for c in self.channels if c.counted]
        return bool(counted) and all(c.provenance.kind == "measured" for c in counted)

    def channel(self, name: str) -> ChannelReport:
        """The channel called ``name`` (KeyError naming the ones there are)."""
        for c in self.channels:
            if c.name == name:
                return c
        raise KeyError(f"no channel {name!r}; channels: {[c.name for c in self.channels]}")

    def summary(self) -> str:
        """A plain-text summary for terminals and logs."""
        from bertwatt.report.render import render_summary

        return render_summary(self)

    def to_json(self, path: str | Path | None = None) -> str:
        """The report as JSON; also written atomically to ``path`` when given."""
        text = self.model_dump_json(indent=2)
        if path is not None:
            from bertwatt.report.io import write_text_atomic

            write_text_atomic(Path(path), text)
        return text

    @classmethod
    def load(cls, path: str | Path) -> EnergyReport:
        """Read a report written by :meth:`to_json` or a meter's ``output=``."""
        from bertwatt.report.io import load_report

        return load_report(path, cls)

    @classmethod
    def merge(cls, reports: list[EnergyReport]) -> EnergyReport:
        """Merge reports of several processes or nodes into one job-wide report.

        A channel measured by several processes on the same host (e.g. each rank reading every
        GPU) is counted once.
        """
        from bertwatt.report.io import merge_reports

        return merge_reports(reports)

    def to_csv(self, path: str | Path) -> None:
        """Write every channel's timeline as CSV: channel, offset_s, energy_j, power_w."""
        from bertwatt.report.io import write_timeline_csv

        write_timeline_csv(self, Path(path))

    def with_carbon(self, intensity: Any = None, *, pue: float | None = None) -> EnergyReport:
        """A copy with emissions computed from ``intensity`` (a CarbonIntensity or zone name)."""
        from bertwatt.carbon.intensity import apply_carbon

        return apply_carbon(self, intensity, pue=pue)


def kwh(energy_j: float | None) -> float | None:
    """Joules to kWh (None stays None)."""
    return None if energy_j is None else energy_j / _J_PER_KWH
