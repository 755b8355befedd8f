"""One rank's part in a distributed measurement: its file, then the gather to rank 0.

::

    session = RankSession("runs/energy", gather=True, gather_timeout_s=300)
    session.start()                       # rank, node, file name; side group if a group exists
    ...                                   # measure; session.write(partial) at checkpoints
    job = session.finish(report)          # file first, then gather; the job report on rank 0

Files first: every rank writes ``node-<id>-rank<R>[-r<restart>].json`` atomically before any
network traffic. Then, when gathering is on and a ``torch.distributed`` process group exists,
each rank sends a thinned copy of its report to rank 0 over a gloo side group
(:mod:`~bertwatt.distributed.gather`); rank 0 merges what arrived, adds the files of ranks that
did not answer within ``gather_timeout_s``, marks the job ``partial`` and names them in
``missing_ranks``. Nothing here raises into training: problems become report warnings and log
records, and ``finish`` returns within about ``gather_timeout_s``.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from bertwatt.distributed.files import claim_job_path, claim_rank_path, rank_files
from bertwatt.distributed.gpus import GPUOwnership
from bertwatt.distributed.job import Part, annotate, build_job_report, rank_meta, thin_report
from bertwatt.distributed.ranks import RankInfo, _check_timeout, rank_info
from bertwatt.errors import ConfigError

__all__ = ["RankSession", "decode_report", "encode_report"]

logger = logging.getLogger(__name__)


def encode_report(report: Any, max_points: int = 64) -> bytes:
    """A thinned report as UTF-8 JSON bytes, with its class so rank 0 rebuilds the same kind."""
    cls = type(report)
    thinned = thin_report(report, max_points)
    body = thinned.model_dump_json()
    head = json.dumps({"class": f"{cls.__module__}:{cls.__qualname__}"})
    return (head + "\n" + body).encode("utf-8")


def decode_report(payload: bytes) -> Any:
    """Rebuild a report sent by :func:`encode_report` (only bertwatt report classes)."""
    from bertwatt.report.models import EnergyReport

    head, _, body = payload.decode("utf-8").partition("\n")
    module, _, name = json.loads(head).get("class", "").partition(":")
    cls: Any = EnergyReport
    if module.startswith("bertwatt.") and name.isidentifier():
        try:
            found = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            found = None
        if isinstance(found, type) and issubclass(found, EnergyReport):
            cls = found
    return cls.model_validate_json(body)


class RankSession:
    """Per-rank files and the gather of one measurement window.

    Args:
        output_dir: directory of the rank files and of the job report.
        gather: send reports to rank 0 when a process group exists (False: files only).
        gather_timeout_s: how long rank 0 waits for the other ranks (and they for it).
        info: this process's rank facts; default :func:`~bertwatt.distributed.rank_info` at
            :meth:`start`.
        gpus: the GPUs this rank measures (stored in its report for the node view).

    Raises:
        ConfigError: for a bad ``output_dir`` or ``gather_timeout_s``.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike[str],
        *,
        gather: bool = True,
        gather_timeout_s: float = 300.0,
        info: RankInfo | None = None,
        gpus: GPUOwnership | None = None,
    ) -> None:
        if not isinstance(output_dir, str | os.PathLike) or str(output_dir) == "":
            raise ConfigError(f"output_dir must be a directory path, got {output_dir!r}")
        if "\0" in str(output_dir):
            raise ConfigError("output_dir contains a NUL byte")
        if not isinstance(gather, bool):
            raise ConfigError(f"gather must be True or False, got {gather!r}")
        self.output_dir = Path(output_dir)
        self.gather = gather
        self.gather_timeout_s = _check_timeout(gather_timeout_s)
        self.info = info
        self.gpus = gpus
        self.path: Path | None = None
        self.job_path: Path | None = None
        self.problems: list[str] = []
        self._group: Any = None
        self._group_tried = False
        self._group_error: str | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> RankSession:
        """Find this rank, claim its file name and, when a process group exists and gathering
        is on, create the side group now (while every rank is alive)."""
        if self.info is None:
            self.info = rank_info()
        self.path = claim_rank_path(self.output_dir, self.info)
        self._group, self._group_tried, self._group_error = None, False, None
        if self.gather and self.info.world_size > 1:
            self._ensure_group()
        return self

    def _ensure_group(self) -> Any:
        if self._group is None and not self._group_tried:
            from bertwatt.distributed.gather import _dist, side_group

            if _dist() is None:
                return None
            self._group_tried = True
            self._group, why = side_group(self.gather_timeout_s)
            if why is not None:
                self._group_error = why
                self._note(why)
        return self._group

    def _note(self, problem: str) -> None:
        if problem not in self.problems:
            self.problems.append(problem)
            logger.warning("bertwatt: %s", problem)

    def facts(self) -> dict[str, Any]:
        """What goes into ``extra["distributed"]`` of this rank's report."""
        info = self.info if self.info is not None else rank_info()
        facts = info.as_dict()
        if self.gpus is not None:
            facts["gpus"] = self.gpus.as_dict()
        if self.path is not None:
            facts["file"] = self.path.name
        return facts

    def annotate(self, report: Any) -> Any:
        """A copy of ``report`` carrying this rank's facts (see :func:`job.annotate`)."""
        return annotate(report, self.facts())

    def write(self, report: Any) -> Path | None:
        """Write ``report`` (annotated) to this rank's file atomically; None if that failed."""
        if self.path is None:
            self.start()
        assert self.path is not None
        from bertwatt.report.io import write_text_atomic

        try:
            write_text_atomic(self.path, self.annotate(report).model_dump_json(indent=2))
        except Exception as err:  # a full disk must not end training
            self._note(f"writing the rank report {self.path} failed: {err}")
            return None
        return self.path

    def finish(self, report: Any) -> Any:
        """File first, then gather. Returns the job report on rank 0, None elsewhere.

        Never raises: a failed write, gather or merge is logged and recorded in
        :attr:`problems` (and in the job report's warnings on rank 0).
        """
        try:
            return self._finish(report)
        except Exception as err:
            self._note(f"finishing the distributed report failed: {type(err).__name__}: {err}")
            return None

    def _finish(self, report: Any) -> Any:
        if self.info is None or self.path is None:
            self.start()
        info = self.info
        assert info is not None
        mine = self.annotate(report)
        self.write(report)
        if not self.gather or info.world_size <= 1:
            return None
        group = self._ensure_group()
        from bertwatt.distributed.gather import _dist, receive_reports, send_report

        if group is None:
            if _dist() is not None and self._group_error is not None:
                # a process group but no side group: files only, the job from the files present
                if info.rank == 0:
                    missing = {
                        r: f"no gather ({self._group_error})" for r in range(1, info.world_size)
                    }
                    return self._job(mine, [], missing, info)
                self._note(
                    f"no gather ({self._group_error}): this rank wrote its file only; rank 0 "
                    f"merges the files present, or run `bertwatt merge {self.output_dir}`"
                )
                return None
            self._note(
                "no torch.distributed process group: each rank wrote its file only; merge "
                f"them with `bertwatt merge {self.output_dir}`"
            )
            return None

        if info.rank != 0:
            problem = send_report(group, encode_report(mine), self.gather_timeout_s)
            if problem is not None:
                self._note(f"sending this rank's report to rank 0 failed: {problem}")
            return None
        t0 = time.monotonic()
        got = receive_reports(group, info.world_size, self.gather_timeout_s)
        logger.debug("bertwatt: gather took %.3f s", time.monotonic() - t0)
        missing = dict(got.problems)
        gathered = []
        for r, payload in sorted(got.payloads.items()):
            try:
                gathered.append(Part(r, decode_report(payload), "gathered"))
            except Exception as err:
                missing[r] = f"its report could not be read: {type(err).__name__}: {err}"
        return self._job(mine, gathered, missing, info)

    def _job(self, mine: Any, gathered: list[Part], missing: dict[int, str], info: RankInfo) -> Any:
        """Rank 0: merge its report, those gathered and the files of missing ranks; write it."""
        parts = [Part(0, mine, "self", self.path.name if self.path else None), *gathered]
        parts.extend(self._files_for(missing, info))
        for p in parts:
            meta = rank_meta(p.report)
            if p.source == "gathered" and meta is not None and p.file is None:
                p.file = meta.get("file")
        job = build_job_report(
            parts,
            world_size=info.world_size,
            missing=missing,
            job={"job_id": info.job_id, "launcher": info.launcher, "restart": info.restart},
        )
        if self.problems:
            job.warnings.extend(p for p in self.problems if p not in job.warnings)
        self.job_path = claim_job_path(self.output_dir, info.restart)
        from bertwatt.report.io import write_text_atomic

        try:
            write_text_atomic(self.job_path, job.model_dump_json(indent=2))
        except Exception as err:
            self._note(f"writing the job report {self.job_path} failed: {err}")
            job.warnings.append(f"the job report was not written: {err}")
        return job

    def _files_for(self, missing: dict[int, str], info: RankInfo) -> list[Part]:
        """The last files of ranks that did not answer (this restart's files only)."""
        from bertwatt.report.models import EnergyReport

        parts: list[Part] = []
        if not missing:
            return parts
        for (_node, rank, restart), path in sorted(rank_files(self.output_dir).items()):
            if rank not in missing or restart != info.restart:
                continue
            try:
                rep = _load_any(path, EnergyReport)
            except Exception as err:
                missing[rank] += f"; its file {path.name} could not be read ({err})"
                continue
            meta = rank_meta(rep)
            if meta is None or meta.get("rank") != rank:
                continue
            if any(p.rank == rank for p in parts):
                continue
            parts.append(Part(rank, rep, "file", path.name))
        return parts


def _load_any(path: Path, default: Any) -> Any:
    """Load a rank file as the richest report class that accepts it."""
    from bertwatt.report.io import load_report

    try:
        from bertwatt.integrations.report import FinetuneReport, InferenceReport

        candidates: list[Any] = [FinetuneReport, InferenceReport, default]
    except ImportError:
        candidates = [default]
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict):
        if "phase_metrics" in data or ("tokens_nonpadding" in data and "examples" in data):
            return load_report(path, candidates[0])
        if "queries" in data and len(candidates) > 1:
            return load_report(path, candidates[1])
    return load_report(path, default)
