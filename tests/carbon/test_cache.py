"""The on-disk cache of live readings, and secrets."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

from bertwatt.carbon.providers import DiskCache, Secret, UKCarbonIntensity, default_cache_dir
from bertwatt.errors import ConfigError

IDENT = {"provider": "ukgrid", "base_url": "http://x", "zone": "GB"}
READING = {"g_per_kwh": 100.0}


def test_default_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "bertwatt" / "carbon"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")  # ignored, per the XDG spec
    assert default_cache_dir() == Path.home() / ".cache" / "bertwatt" / "carbon"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "bertwatt" / "carbon"


def test_provider_uses_the_default_dir(
    api: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    api.add(
        "/intensity",
        {"data": [{"from": "2025-03-01T12:00Z", "intensity": {"forecast": 1, "actual": 2}}]},
    )
    UKCarbonIntensity(base_url=api.url, retries=0).fetch()
    assert len(list((tmp_path / "bertwatt" / "carbon").glob("ukgrid-*.json"))) == 1


def test_fresh_stale_and_future_entries(tmp_path: Path) -> None:
    now = [1_000_000.0]
    cache = DiskCache(tmp_path, max_age_s=60, now=lambda: now[0])
    assert cache.get(IDENT) is None  # miss
    cache.put(IDENT, READING, fetched_at_unix=now[0])
    now[0] += 60
    assert cache.get(IDENT) == (READING, 60.0)  # hit, exactly at max age
    now[0] += 0.5
    assert cache.get(IDENT) is None  # expired
    now[0] -= 120
    assert cache.get(IDENT) is None  # written "in the future": clock moved, do not trust it
    assert cache.get({**IDENT, "zone": "GB-region-1"}) is None


def test_disabled_cache_reads_and_writes_nothing(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path / "c", max_age_s=0)
    cache.put(IDENT, READING, fetched_at_unix=0)
    assert cache.get(IDENT) is None and not (tmp_path / "c").exists()


def test_unwritable_cache_is_ignored(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cache = DiskCache(blocker / "sub", max_age_s=60)
    cache.put(IDENT, READING, fetched_at_unix=0)  # logged, not raised
    assert cache.get(IDENT) is None


@pytest.mark.parametrize("bad", [-1, float("inf"), float("nan"), True, "60"])
def test_bad_max_age(bad: object) -> None:
    with pytest.raises(ConfigError, match="cache_max_age_s"):
        DiskCache(None, max_age_s=bad)  # type: ignore[arg-type]


def test_secret_never_prints_and_never_pickles() -> None:
    s = Secret("hunter2-token")
    assert repr(s) == str(s) == "'***'" and f"{s}" == "'***'"
    assert s.reveal() == "hunter2-token" and Secret(s) == s
    with pytest.raises(TypeError, match="pickle"):
        pickle.dumps(s)
    for bad in ("", "  ", None, 5):
        with pytest.raises(ConfigError):
            Secret(bad)  # type: ignore[arg-type]
