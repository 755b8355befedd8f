"""Facts about the machine a report was measured on, gathered once per process."""

from __future__ import annotations

import functools
import os
import platform
import socket

__all__ = ["cpu_model", "host_facts", "node_identity"]


@functools.cache
def cpu_model() -> str | None:
    """The CPU brand string (``/proc/cpuinfo`` "model name" on Linux), or None if unknown."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    _, _, value = line.partition(":")
                    if value.strip():
                        return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def _os_string() -> str:
    """``platform.platform()``'s usual form (``Linux-6.8.0-x86_64-with-glibc2.39``) without the
    ``uname -p`` child process it starts on Linux (a few ms at a window's stop)."""
    system, release, machine = platform.system(), platform.release(), platform.machine()
    if system != "Linux":
        return platform.platform()
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION") or ""  # "glibc 2.39"
    except (ValueError, OSError):
        libc = ""
    tail = f"-with-{libc.replace(' ', '')}" if libc else ""
    return f"{system}-{release}-{machine}{tail}"


@functools.cache
def host_facts() -> dict[str, object]:
    """Hostname, OS, Python, bertwatt version, CPU model and logical CPU count."""
    from bertwatt._version import __version__

    return {
        "hostname": socket.gethostname(),
        "os": _os_string(),
        "python": platform.python_version(),
        "bertwatt_version": __version__,
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
    }


def node_identity() -> str:
    """The identity of the node a channel belongs to, for merging reports of several machines.

    ``BERTWATT_NODE_ID`` when set, else the kernel boot id (every container of one host shares
    it, and so shares the host's sensors), else the hostname; see
    :func:`bertwatt.distributed.node_identity`. Never empty.
    """
    from bertwatt.distributed.ranks import node_identity as identity

    try:
        return identity()
    except Exception:  # a malformed BERTWATT_NODE_ID is reported where it is configured
        return str(host_facts()["hostname"]) or "unknown-host"
