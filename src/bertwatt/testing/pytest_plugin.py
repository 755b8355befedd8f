"""pytest fixtures for bertwatt's fakes, registered under the ``pytest11`` entry point.

Every pytest run in an environment where bertwatt is installed loads this module, so it holds
fixtures only: no autouse fixtures, no hooks that change the session, nothing heavy imported.

- ``bertwatt_clock``: a fresh :class:`~bertwatt.testing.FakeClock`.
- ``bertwatt_powercap``: a :class:`~bertwatt.testing.FakePowercapTree` under ``tmp_path``.
- ``bertwatt_nvml``: a factory ``make(gpus, clock=None) -> FakeNVML`` whose fake ``pynvml``
  module stays installed in ``sys.modules`` until the test ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from bertwatt.testing.clock import FakeClock
    from bertwatt.testing.nvml import FakeGPU, FakeNVML
    from bertwatt.testing.powercap import FakePowercapTree

__all__ = ["bertwatt_clock", "bertwatt_nvml", "bertwatt_powercap"]


@pytest.fixture
def bertwatt_clock() -> FakeClock:
    """A manual clock starting at t = 1000 s; pass it to the meter and the fakes."""
    from bertwatt.testing.clock import FakeClock

    return FakeClock()


@pytest.fixture
def bertwatt_powercap(tmp_path: Path) -> FakePowercapTree:
    """An empty fake ``/sys/class/powercap`` under ``tmp_path``; add packages to it."""
    from bertwatt.testing.powercap import FakePowercapTree

    return FakePowercapTree(tmp_path / "powercap")


@pytest.fixture
def bertwatt_nvml() -> Iterator[Callable[..., FakeNVML]]:
    """A factory installing a fake ``pynvml`` for the rest of the test."""
    from bertwatt.testing.nvml import FakeNVML

    with contextlib.ExitStack() as stack:

        def make(gpus: Sequence[FakeGPU], **options: Any) -> FakeNVML:
            fake = FakeNVML(gpus, **options)
            stack.enter_context(fake.install())
            return fake

        yield make
