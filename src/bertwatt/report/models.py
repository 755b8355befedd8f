"""The report schema (pydantic v2). Imported only when a report is built or loaded.

Schema history (``schema_version``):

- 1 (bertwatt 0.1): first release.
- 2: ``kind`` (``"energy"``, ``"finetune"``, ``"inference"``: which class reads the file),
  ``run_id`` (one per meter window; checkpoints and the final report of a window share it),
  ``status`` gains ``"interrupted"`` and ``"partial"``, ``node_id`` (top level, channels, hosts,
  unavailable entries), ``run`` (:class:`RunInfo`: what was run), ``segments``
  (:class:`Segment`: the sessions of a resumed run) and ``resume`` (:class:`ResumeInfo`).
  Version 1 files are upgraded on load (:func:`bertwatt.report.v1.upgrade_v1`).
  Later additions within version 2, all optional so older files load unchanged:
  ``energy_interval_j`` and ``interval_basis`` beside every ``energy_j`` (report, channels,
  phases; :mod:`bertwatt.report.uncertainty`), ``provenance.sensor_model`` and
  ``provenance.sensor_model_source``, ``provenance.characterised``; ``nodes``, ``ranks`` and
  ``missing_ranks`` of the job report of a distributed run (:mod:`bertwatt.report.job`; empty in
  every other report).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from uuid import uuid4

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bertwatt.report.job import NodeReport, RankReport
from bertwatt.report.wall import WallReport

__all__ = [
    "SCHEMA_VERSION",
    "BaselineReport",
    "CarbonPart",
    "CarbonSummary",
    "ChannelReport",
    "EnergyReport",
    "HostInfo",
    "PhaseReport",
    "ProvenanceInfo",
    "ReportKind",
    "ReportStatus",
    "ResumeInfo",
    "RunInfo",
    "Segment",
    "UnavailableInfo",
    "new_run_id",
]

#: The schema version this bertwatt writes (and the newest it reads).
SCHEMA_VERSION = 2

#: Which report class a file holds.
ReportKind = Literal["energy", "finetune", "inference"]
#: ``complete``: the window ended normally; ``running``: a checkpoint of a window still open;
#: ``interrupted``: the measured program was stopped by a signal or an error; ``partial``: some
#: of the run is missing (e.g. a merge that could not include every part).
ReportStatus = Literal["complete", "running", "interrupted", "partial"]

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
    sensor_model: str | None = Field(
        default=None, description="id of the sensor model used for the interval"
    )
    sensor_model_source: str | None = Field(
        default=None, description="where the sensor model's figures come from"
    )
    characterised: dict[str, str] = Field(
        default_factory=dict,
        description="what the channel's first samples showed about its sensor (update period, "
        "averaged or instant reading)",
    )


class UnavailableInfo(_Model):
    """Something that could not be measured, why, and the fix."""

    what: str
    reason: str
    fix: str | None = None
    host: str = ""
    node_id: str = ""


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
    node_id: str = Field(default="", description="the node identity; the hostname when empty")


class ChannelReport(_Model):
    """One channel's figures over the window."""

    name: str
    backend: str
    domain: str
    kind: Literal["counter", "power"]
    host: str = ""
    node_id: str = Field(default="", description="node the channel belongs to ('' = the report's)")
    counted: bool = True
    parent: str | None = None
    energy_j: float | None = Field(description="None when the channel delivered no sample")
    energy_kwh: float | None
    energy_interval_j: tuple[float, float] | None = Field(
        default=None, description="(low, high) J around energy_j; None in files before it"
    )
    interval_basis: str | None = Field(default=None, description="how the interval was formed")
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
    energy_interval_j: tuple[float, float] | None = Field(
        default=None, description="(low, high) J around energy_j; None in files before it"
    )
    interval_basis: str | None = Field(default=None, description="how the interval was formed")
    mean_power_w: float | None
    coverage: float = Field(ge=0.0, le=1.0)
    channels: dict[str, float] = Field(default_factory=dict)


class BaselineReport(_Model):
    """Idle power measured before the window."""

    duration_s: float
    power_w: float | None
    channels_w: dict[str, float] = Field(default_factory=dict)


class CarbonPart(_Model):
    """The emissions of one part of a merged report, with that part's own intensity and PUE."""

    name: str = Field(description="the part's file name (or 'report N')")
    run_id: str
    node_id: str
    kind: Literal["static", "series", "live", "merged"]
    zone: str | None
    intensity_g_per_kwh: float = Field(description="gCO2e per kWh of facility energy")
    year: int | None = None
    source: str
    pue: float
    it_energy_kwh: float = Field(description="the part's IT energy counted in the merge")
    emissions_g: float


class CarbonSummary(_Model):
    """Emissions of the run: intensity used (with source and year), PUE, energy, emissions.

    A merged report's summary has ``kind`` ``"merged"`` when its parts used different
    intensities, zones or PUEs: ``parts`` then lists each part's own figures, and
    ``intensity_g_per_kwh`` and ``pue`` are energy-weighted means.
    """

    kind: Literal["static", "series", "live", "merged"]
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
    parts: list[CarbonPart] = Field(default_factory=list)


def new_run_id() -> str:
    """A fresh run identity: a uuid4 as 32 hex digits."""
    return uuid4().hex


class RunInfo(_Model):
    """What was run: the command (``bertwatt run``) or the fine-tuning set-up. All optional."""

    command: list[str] | None = Field(default=None, description="argv, secret values masked")
    cwd: str | None = None
    exit_code: int | None = None
    signal: str | None = Field(default=None, description="signal that stopped it, e.g. SIGTERM")
    model_class: str | None = None
    model_name: str | None = Field(default=None, description="model name or path")
    parameters_total: int | None = None
    parameters_trainable: int | None = None
    max_seq_length: int | None = Field(default=None, description="tokens")
    precision: str | None = Field(default=None, description="e.g. fp32, bf16, fp16")
    batch_size: int | None = Field(default=None, description="examples per device per step")
    gradient_accumulation_steps: int | None = None
    world_size: int | None = None
    dataset_sizes: dict[str, int] | None = Field(default=None, description="split -> examples")
    flops_estimate: float | None = Field(
        default=None, description="training FLOPs, an ESTIMATE (see flops_basis)"
    )
    flops_basis: str | None = Field(default=None, description="how flops_estimate was formed")


class Segment(_Model):
    """One session of a run: the first, and one more each time it was resumed."""

    index: int = Field(ge=0)
    run_id: str
    started_at: datetime
    ended_at: datetime
    steps: int | None = Field(default=None, description="optimizer steps in this session")
    energy_j: float | None = None
    ended_by: Literal["completed", "interrupted", "error", "running"]


class ResumeInfo(_Model):
    """How a resumed run continued from its interrupted predecessor."""

    from_step: int | None = Field(default=None, description="checkpoint step it resumed from")
    previous_energy_j: float | None = Field(
        ge=0.0,
        description="energy of earlier sessions up to their last checkpoint, included (None: "
        "they measured none, and the run's total is unknown)",
    )
    lost_energy_upper_j: float | None = Field(
        default=None,
        ge=0.0,
        description="upper bound of energy spent after the last checkpoint and lost (not included)",
    )
    basis: str = Field(description="how previous_energy_j and lost_energy_upper_j were found")


class EnergyReport(_Model):
    """What one measured window (or several merged) used, and where every figure came from.

    ``energy_j`` is the total without double counting (``total_basis`` says how it was formed);
    ``None`` means nothing could be measured, and ``unavailable`` says why.
    """

    schema_version: int = SCHEMA_VERSION
    kind: ReportKind = "energy"
    run_id: str = Field(default_factory=new_run_id)
    status: ReportStatus = "complete"
    node_id: str = Field(default="", description="the node identity; host.hostname when empty")
    started_at: datetime
    ended_at: datetime
    duration_s: float = Field(ge=0.0)
    interval_s: float
    host: HostInfo
    hosts: list[HostInfo] = Field(default_factory=list)
    energy_j: float | None
    energy_kwh: float | None
    energy_interval_j: tuple[float, float] | None = Field(
        default=None, description="(low, high) J around energy_j; None in files before it"
    )
    interval_basis: str | None = Field(default=None, description="how the interval was formed")
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
    run: RunInfo | None = None
    segments: list[Segment] = Field(default_factory=list)
    resume: ResumeInfo | None = None
    nodes: list[NodeReport] = Field(
        default_factory=list, description="job report of a distributed run: one entry per node"
    )
    ranks: list[RankReport] = Field(
        default_factory=list, description="job report of a distributed run: one entry per rank"
    )
    missing_ranks: list[int] = Field(
        default_factory=list, description="ranks whose report did not reach rank 0 (partial)"
    )
    wall: WallReport | None = Field(
        default=None,
        description="software sensors against the wall meter, for the run and each phase",
    )
    extra: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _fill_node_id(self) -> EnergyReport:
        if not self.node_id:
            self.node_id = self.host.node_id or self.host.hostname
        return self

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

    def _repr_html_(self) -> str:
        """The report as self-contained HTML, for notebooks (:mod:`bertwatt.viz.html`)."""
        from bertwatt.viz.html import render_html

        return render_html(self)

    def to_json(self, path: str | Path | None = None) -> str:
        """The report as JSON; also written atomically to ``path`` when given."""
        text = self.model_dump_json(indent=2)
        if path is not None:
            from bertwatt.report.io import write_text_atomic

            write_text_atomic(Path(path), text)
        return text

    @classmethod
    def load(cls, path: str | Path) -> EnergyReport:
        """Read a report written by :meth:`to_json` or a meter's ``output=``.

        ``EnergyReport.load`` reads every kind and returns the file's own class (a fine-tuning
        report comes back as a :class:`~bertwatt.report.finetune.FinetuneReport`); a subclass's
        ``load`` accepts only its kind. Version 1 files are upgraded. See
        :func:`bertwatt.report.io.load_report` for the errors.
        """
        from bertwatt.report.io import load_report

        return load_report(path, cls)

    @classmethod
    def merge(cls, reports: Sequence[EnergyReport]) -> EnergyReport:
        """Merge reports of several runs, processes or nodes into one truthful report.

        See :func:`bertwatt.report.merge.merge_reports` for the rules: one channel of one node
        counts the energy over the union of the times its reports covered, nodes add, carbon is
        kept per part, fine-tuning work adds, copies of one run count once.
        """
        from bertwatt.report.merge import merge_reports

        return merge_reports(reports)

    def to_csv(self, path: str | Path) -> None:
        """Write every channel's timeline as CSV: channel, offset_s, energy_j, power_w."""
        from bertwatt.report.io import write_timeline_csv

        write_timeline_csv(self, Path(path))

    def with_carbon(self, intensity: Any, *, pue: float | None = None) -> EnergyReport:
        """A copy with emissions computed by ``intensity``, an already-built intensity object.

        ``intensity`` is anything with an ``apply(report, *, pue=None)`` method, such as
        ``bertwatt.carbon.CarbonIntensity.zone("DE")``. The report layer does not import the
        carbon package; for a zone name or ``BERTWATT_ZONE`` use
        ``bertwatt.carbon.apply_carbon(report, "DE")``.

        Raises:
            ConfigError: ``intensity`` has no ``apply`` method (e.g. a zone name string).
        """
        apply = getattr(intensity, "apply", None)
        if not callable(apply):
            from bertwatt.errors import ConfigError

            raise ConfigError(
                f"with_carbon needs an intensity object with an apply() method, got "
                f"{_short_repr(intensity)}",
                fix="pass bertwatt.carbon.CarbonIntensity.zone('DE'), or call "
                "bertwatt.carbon.apply_carbon(report, 'DE') for a zone name",
            )
        return apply(self, pue=pue)

    def with_emissions(
        self,
        *,
        emissions_g: float | None,
        carbon: CarbonSummary | dict[str, Any] | None,
        carbon_note: str | None,
    ) -> EnergyReport:
        """A copy with the carbon fields set (``carbon`` as a model or its plain fields).

        This is how :func:`bertwatt.carbon.apply_carbon` fills a report without the carbon
        package importing the report models.
        """
        summary = (
            carbon
            if carbon is None or isinstance(carbon, CarbonSummary)
            else CarbonSummary.model_validate(carbon)
        )
        return self.model_copy(
            update={"emissions_g": emissions_g, "carbon": summary, "carbon_note": carbon_note}
        )


def _short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def kwh(energy_j: float | None) -> float | None:
    """Joules to kWh (None stays None)."""
    return None if energy_j is None else energy_j / _J_PER_KWH
