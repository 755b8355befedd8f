"""On-disk cache of live readings: one small JSON file per query, no secret ever written.

A provider asks the cache before the network; a reading younger than ``max_age_s`` (by the time
bertwatt fetched it) is served from disk, so repeated runs within a few minutes do not call the
provider again. The default directory follows the XDG Base Directory specification.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bertwatt.errors import ConfigError

__all__ = ["DiskCache", "default_cache_dir"]

logger = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/bertwatt/carbon``, or ``~/.cache/bertwatt/carbon`` when it is unset.

    The base comes from :func:`bertwatt.config.user_cache_dir`; a relative XDG_CACHE_HOME is
    ignored, as the XDG Base Directory specification asks.
    """
    from bertwatt.config import user_cache_dir

    return user_cache_dir() / "bertwatt" / "carbon"


@dataclass
class DiskCache:
    """Last good reading per query, as one JSON file each under ``directory``.

    Args:
        directory: where the files go; ``None`` means :func:`default_cache_dir`.
        max_age_s: a cached reading older than this (by ``fetched_at``) is not used; 0 disables
            the cache entirely (nothing is read or written).
        now: wall clock in seconds since the epoch (tests pass a fake).
    """

    directory: Path | None = None
    max_age_s: float = 900.0
    now: Callable[[], float] = field(default=time.time, repr=False)

    def __post_init__(self) -> None:
        m = self.max_age_s
        if isinstance(m, bool) or not isinstance(m, int | float) or not (0 <= m < math.inf):
            raise ConfigError(f"cache_max_age_s must be a number of seconds >= 0, got {m!r}")
        if self.directory is not None:
            self.directory = Path(self.directory)

    @property
    def enabled(self) -> bool:
        """False when ``max_age_s`` is 0."""
        return self.max_age_s > 0

    def path_for(self, identity: Mapping[str, Any]) -> Path:
        """The file a query's reading is kept in. ``identity`` must hold no secret."""
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]
        base = self.directory if self.directory is not None else default_cache_dir()
        return base / f"{identity.get('provider', 'live')}-{digest}.json"

    def get(self, identity: Mapping[str, Any]) -> tuple[dict[str, Any], float] | None:
        """The stored reading dict for ``identity`` and its age in seconds, if fresh; else None.

        A missing, unreadable or malformed file is a miss (logged at debug level).
        """
        if not self.enabled:
            return None
        path = self.path_for(identity)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            fetched = float(data["fetched_at_unix"])
            reading = data["reading"]
            if not isinstance(reading, dict) or not math.isfinite(fetched):
                raise ValueError("malformed entry")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as err:
            logger.debug("ignoring unreadable carbon cache file %s: %s", path, err)
            return None
        age_s = self.now() - fetched
        if age_s < 0 or age_s > self.max_age_s:
            return None
        return reading, age_s

    def put(
        self, identity: Mapping[str, Any], reading: Mapping[str, Any], fetched_at_unix: float
    ) -> None:
        """Store ``reading`` (a JSON-able dict) atomically; failures are logged and ignored."""
        if not self.enabled:
            return
        path = self.path_for(identity)
        payload = json.dumps(
            {"identity": dict(identity), "fetched_at_unix": fetched_at_unix, "reading": reading},
            indent=1,
        )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(payload)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as err:
            logger.debug("cannot write carbon cache file %s: %s", path, err)
