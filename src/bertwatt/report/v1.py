"""Reading schema version 1 files (bertwatt 0.1) as version 2.

Version 1 had no ``kind``, ``run_id``, ``node_id``, ``run``, ``segments`` or ``resume``. The upgrade
fills them from what the file holds:

- ``kind`` from the fields only a fine-tuning (``phase_metrics``, ``examples``) or inference
  (``queries``) report has;
- ``run_id`` as a stable digest of the window's start, host and process id (and, for a version 1
  merge output, how many reports it merged), so a checkpoint and the final report of one
  version 1 window are recognised as copies of one run when merged;
- ``node_id`` as the hostname (the node identity of version 1 files).
"""

from __future__ import annotations

import hashlib
from typing import Any

__all__ = ["guess_kind", "upgrade_v1", "v1_run_id"]


def guess_kind(data: dict[str, Any]) -> str:
    """The ``kind`` of a version 1 report, from the fields only some kinds have."""
    if "phase_metrics" in data or "examples" in data or "step_energy" in data:
        return "finetune"
    if "queries" in data or "j_per_query" in data:
        return "inference"
    return "energy"


def v1_run_id(data: dict[str, Any]) -> str:
    """A 32-hex-digit run identity derived from the window start, hostname and pid."""
    raw_host = data.get("host")
    host: dict[str, Any] = raw_host if isinstance(raw_host, dict) else {}
    extra = data.get("extra")
    merged = extra.get("merged_from") if isinstance(extra, dict) else None
    key = "|".join(
        str(x)
        for x in (data.get("started_at"), host.get("hostname"), host.get("pid"), merged, "v1")
    )
    return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:32]


def upgrade_v1(data: dict[str, Any]) -> dict[str, Any]:
    """The version 2 form of a version 1 report's JSON object (a new dict; input untouched)."""
    out = dict(data)
    out["schema_version"] = 2
    out.setdefault("kind", guess_kind(data))
    out.setdefault("run_id", v1_run_id(data))
    host = out.get("host")
    hostname = host.get("hostname", "") if isinstance(host, dict) else ""
    out.setdefault("node_id", hostname)
    extra = out.get("extra")
    out["extra"] = {**(extra if isinstance(extra, dict) else {}), "upgraded_from_schema": 1}
    return out
