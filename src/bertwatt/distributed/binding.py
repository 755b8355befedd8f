"""What ``EnergyMeter(distributed=..., output_dir=..., gather_timeout_s=...)`` does on each rank.

The meter owns one :class:`MeterDistribution` and calls it at four points: when it chooses its
backends (:meth:`~MeterDistribution.backends`), once the window is open
(:meth:`~MeterDistribution.begin`), at every checkpoint (:meth:`~MeterDistribution.write`) and
at stop (:meth:`~MeterDistribution.finish`). Modes:

- ``False``: this process alone, as without this module;
- ``"auto"`` (default): in a job of several processes, each rank measures its own GPU and writes
  its own file (when ``output_dir`` or ``output`` says where); the gather to rank 0 happens
  only where every rank is known to stop the meter together (the Trainer callback's
  ``on_train_end`` asks for it); a single process is unchanged;
- ``True``: as ``"auto"``, and ``stop()`` also gathers the job report on rank 0 (every rank must
  stop its meter; one that does not is reported missing after ``gather_timeout_s``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from bertwatt.errors import ConfigError

__all__ = ["DEFAULT_OUTPUT_DIR", "MeterDistribution", "gather_for_callback", "prepare_for_callback"]

logger = logging.getLogger(__name__)

#: Rank files' directory with ``distributed=True`` when neither output_dir nor output is set.
DEFAULT_OUTPUT_DIR = "bertwatt-ranks"


class MeterDistribution:
    """One meter's distributed settings and state (see the module docstring).

    Args:
        mode: ``"auto"``, ``True`` or ``False``.
        output_dir: directory of the rank files and the job report; default: the directory of
            the meter's ``output``, else :data:`DEFAULT_OUTPUT_DIR`.
        gather_timeout_s: how long rank 0 waits for the others at the gather.

    Raises:
        ConfigError: for any other ``mode``, a bad directory or timeout.
    """

    def __init__(
        self,
        mode: object = "auto",
        output_dir: str | os.PathLike[str] | None = None,
        gather_timeout_s: float = 300.0,
    ) -> None:
        if mode not in ("auto", True, False) or (mode != "auto" and not isinstance(mode, bool)):
            raise ConfigError(f'distributed must be "auto", True or False, got {mode!r}')
        if output_dir is not None and (
            not isinstance(output_dir, str | os.PathLike) or str(output_dir) == ""
        ):
            raise ConfigError(f"output_dir must be a directory path, got {output_dir!r}")
        if output_dir is not None and "\0" in str(output_dir):
            raise ConfigError("output_dir contains a NUL byte")
        from bertwatt.distributed.ranks import _check_timeout

        self.mode = mode
        self.output_dir = None if output_dir is None else Path(output_dir)
        self.gather_timeout_s = _check_timeout(gather_timeout_s)
        self.gather_at_stop = mode is True
        self.will_gather = mode is True  # create the side group at start, while all ranks live
        self.session: Any = None
        self.info: Any = None
        self.gpus: Any = None
        self.job_report: Any = None
        self.share_logged = False  # the live figures' share rule is logged once per meter

    # ------------------------------------------------------------------ decisions
    def _rank_info(self) -> Any:
        if self.info is None:
            from bertwatt.distributed.ranks import RankInfo, node_identity, rank_info

            try:
                self.info = rank_info()
            except ConfigError as err:
                if self.mode is True:
                    raise
                # "auto" must not break a single-process run over a stray launcher variable
                logger.warning("bertwatt: %s; measuring this process alone", err)
                self.info = RankInfo(
                    rank=0,
                    local_rank=0,
                    world_size=1,
                    local_world_size=1,
                    node_rank=0,
                    node_id=node_identity(),
                    node_name="",
                    launcher="none",
                    job_id=None,
                    restart=0,
                )
        return self.info

    @property
    def active(self) -> bool:
        """True when this meter measures as one rank of several (never with ``False``)."""
        if self.mode is False:
            return False
        return self.mode is True or self._rank_info().world_size > 1

    def backends(self, explicit: list[Any] | None) -> list[Any] | None:
        """The backends this rank probes.

        Auto-detection (``explicit`` None): RAPL (node-level, every rank may read it) and NVML on
        this rank's own GPU only. Explicit backends are kept, except network (``blocking``)
        meters, which only local rank 0 polls.
        """
        if not self.active:
            return explicit
        info = self._rank_info()
        if explicit is not None:
            if info.local_rank == 0:
                return explicit
            return [b for b in explicit if not getattr(b, "blocking", False)]
        from bertwatt.backends import create
        from bertwatt.distributed.gpus import gpu_ownership

        self.gpus = gpu_ownership(info)
        chosen: list[Any] = [create("rapl")]
        if self.gpus.owned:
            chosen.append(create("nvml", devices=list(self.gpus.owned)))
        return chosen

    def begin(self, output: Path | None) -> None:
        """Claim this rank's file (and the side group, when a process group exists)."""
        if not self.active:
            return
        from bertwatt.distributed.session import RankSession

        self.job_report = None
        self.session = None
        directory = self.output_dir
        if directory is None and output is not None:
            directory = output.parent
        if directory is None and self.mode is True:
            directory = Path(DEFAULT_OUTPUT_DIR)
        if directory is None:
            return  # "auto" with nowhere to write: own GPU only, no files, no gather
        self.session = RankSession(
            directory,
            gather=self.will_gather,
            gather_timeout_s=self.gather_timeout_s,
            info=self._rank_info(),
            gpus=self.gpus,
        ).start()

    @property
    def path(self) -> Path | None:
        """This rank's report file while active, else None."""
        return None if self.session is None else self.session.path

    def write(self, report: Any) -> None:
        """Checkpoint ``report`` to this rank's file (never raises)."""
        if self.session is not None:
            self.session.write(report)

    def annotate(self, report: Any) -> Any:
        """``report`` with this rank's facts, when active."""
        return report if self.session is None else self.session.annotate(report)

    def finish(self, report: Any) -> Any:
        """Write this rank's file, then gather if asked; the job report on rank 0, else None."""
        session = self.session
        if session is None:
            return None
        session.gather = self.gather_at_stop
        self.job_report = session.finish(report)
        return self.job_report


def prepare_for_callback(meter: Any, report_path: Path | None) -> None:
    """Before a Trainer callback starts ``meter``: rank files next to the callback's report, and
    no gather at ``stop()`` (the callback gathers its fine-tuning report at train end)."""
    dist: MeterDistribution = meter._dist
    if dist.output_dir is None and report_path is not None:
        dist.output_dir = report_path.parent
    dist.gather_at_stop = False
    dist.will_gather = dist.mode is not False


def gather_for_callback(meter: Any, report: Any) -> Any:
    """At train end, where every rank stops together: write ``report`` (the fine-tuning report)
    to this rank's file and gather the job report; it is returned on rank 0, None elsewhere."""
    dist: MeterDistribution = meter._dist
    if dist.mode is False or dist.session is None:
        return None
    dist.gather_at_stop = True
    try:
        return dist.finish(report)
    finally:
        dist.gather_at_stop = dist.mode is True
