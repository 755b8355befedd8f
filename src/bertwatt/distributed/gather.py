"""Sending each rank's report to rank 0 over a gloo side group, with a deadline.

The gather never uses the user's default process group for collectives: it creates its own
``gloo`` group (:func:`side_group`) and talks point to point inside it, so its messages cannot be
matched against the user's own ``all_reduce``/``barrier`` calls, whatever their backend (NCCL
included). Rank 0 posts one receive per rank and waits for all of them until one deadline; a rank
that is dead or hung past the deadline is reported missing, the others still count. Every call
is bounded by that deadline and no exception leaves this module: problems come back as text.

Wire format per rank: an int64 length, then that many bytes (UTF-8 JSON).
"""

from __future__ import annotations

import ctypes
import logging
import sys
import threading
import time
from datetime import timedelta
from typing import Any

__all__ = ["GatherResult", "receive_reports", "send_report", "side_group"]

logger = logging.getLogger(__name__)

# Largest report accepted from a rank (a thinned report is far smaller).
_MAX_BYTES = 1 << 30


def _dist() -> Any:
    torch: Any = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            return dist
    except Exception:
        return None
    return None


def side_group(timeout_s: float) -> tuple[Any, str | None]:
    """A new gloo group over every rank of the default group, or (None, why not).

    Every rank must call this at the same point (it is created through the default group's
    store, like any ``new_group``). It returns within about ``timeout_s`` even when a rank
    never arrives.
    """
    dist = _dist()
    if dist is None:
        return None, "no initialised torch.distributed process group"
    t0 = time.monotonic()
    try:
        group = dist.new_group(backend="gloo", timeout=timedelta(seconds=max(timeout_s, 0.001)))
    except Exception as err:
        waited = time.monotonic() - t0
        hint = ""
        if waited >= 0.9 * timeout_s:
            hint = (
                f" after {waited:.1f} s (gather_timeout_s={timeout_s:g}: a rank that does not "
                "start or stop its meter never joins it)"
            )
        return None, f"creating the gloo side group failed{hint}: {type(err).__name__}: {err}"
    return group, None


def _wait(work: Any, deadline: float) -> str | None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return "deadline passed"
    try:
        ok = work.wait(timeout=timedelta(seconds=remaining))
    except Exception as err:
        return f"{type(err).__name__}: {err}".strip()
    if ok is False:
        return "timed out"
    return None


def send_report(group: Any, payload: bytes, timeout_s: float) -> str | None:
    """Send ``payload`` to rank 0 of ``group``; None on success, else what went wrong."""
    dist = _dist()
    if dist is None or group is None:
        return "no process group"
    import torch

    deadline = time.monotonic() + timeout_s
    try:
        header = torch.tensor([len(payload)], dtype=torch.int64)
        body = torch.frombuffer(bytearray(payload), dtype=torch.uint8)
        problem = _wait(dist.isend(header, dst=0, group=group), deadline)
        if problem is None and len(payload):
            problem = _wait(dist.isend(body, dst=0, group=group), deadline)
    except Exception as err:
        problem = f"{type(err).__name__}: {err}"
    return problem


class GatherResult:
    """What rank 0 received: ``payloads`` (rank -> bytes) and ``problems`` (rank -> text)."""

    __slots__ = ("payloads", "problems")

    def __init__(self) -> None:
        self.payloads: dict[int, bytes] = {}
        self.problems: dict[int, str] = {}


def receive_reports(group: Any, world_size: int, timeout_s: float) -> GatherResult:
    """On rank 0: receive one payload from every other rank until ``timeout_s`` has passed.

    A rank whose length or body has not arrived by then is in ``problems``; nothing raises.
    """
    result = GatherResult()
    dist = _dist()
    if dist is None or group is None:
        for r in range(1, world_size):
            result.problems[r] = "no process group"
        return result
    import torch

    deadline = time.monotonic() + timeout_s
    lock = threading.Lock()

    def receive(r: int, header: Any, work: Any) -> None:
        problem = _wait(work, deadline)
        if problem is not None:
            with lock:
                result.problems[r] = (
                    f"no report within {timeout_s:g} s ({problem}; did it stop its meter?)"
                )
            return
        size = int(header.item())
        if size < 0 or size > _MAX_BYTES:
            with lock:
                result.problems[r] = f"announced an impossible report size {size}"
            return
        body = torch.empty(size, dtype=torch.uint8)
        try:
            problem = _wait(dist.irecv(body, src=r, group=group), deadline) if size else None
        except Exception as err:
            problem = f"{type(err).__name__}: {err}"
        with lock:
            if problem is not None:
                result.problems[r] = f"report not complete within {timeout_s:g} s ({problem})"
            else:
                result.payloads[r] = ctypes.string_at(body.data_ptr(), size) if size else b""

    threads = []
    for r in range(1, world_size):
        header = torch.zeros(1, dtype=torch.int64)
        try:
            work = dist.irecv(header, src=r, group=group)
        except Exception as err:
            result.problems[r] = f"{type(err).__name__}: {err}"
            continue
        t = threading.Thread(
            target=receive, args=(r, header, work), name=f"bertwatt-gather-{r}", daemon=True
        )
        t.start()
        threads.append(t)
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + 1.0)
    with lock:
        for r in range(1, world_size):
            if r not in result.payloads and r not in result.problems:
                result.problems[r] = f"no report within {timeout_s:g} s"
        return result
