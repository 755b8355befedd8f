"""Shared helpers of the Hugging Face integration tests (imported by the test modules).

The fake clock moves only inside the model's forward calls (a forward pre-hook registered by the
test, not by bertwatt): every training forward call takes ``TRAIN_S`` fake seconds and every
evaluation forward call ``EVAL_S``. With a constant-power counter channel, every energy in the
report is then known exactly: ``POWER_W x TRAIN_S`` per training batch, and so on.
"""

from __future__ import annotations

from typing import Any

from bertwatt.testing import FakeBackend, FakeChannel, FakeClock

POWER_W = 40.0
TRAIN_S = 0.5
EVAL_S = 0.1
#: Joules of one training / evaluation forward call.
TRAIN_J = POWER_W * TRAIN_S
EVAL_J = POWER_W * EVAL_S

TINY = {"layers": 1, "hidden": 32, "heads": 2, "intermediate": 64}


class ClockedForward:
    """A forward pre-hook that advances a FakeClock, standing in for the model's compute time."""

    def __init__(self, clock: FakeClock, train_s: float = TRAIN_S, eval_s: float = EVAL_S):
        self.clock = clock
        self.train_s = train_s
        self.eval_s = eval_s
        self.train_calls = 0
        self.eval_calls = 0

    def __call__(self, module: Any, args: Any, kwargs: Any) -> None:
        if module.training:
            self.train_calls += 1
            self.clock.advance(self.train_s)
        else:
            self.eval_calls += 1
            self.clock.advance(self.eval_s)


def fake_sensor(clock: FakeClock, power_w: float = POWER_W) -> FakeBackend:
    """One constant-power CPU energy counter on ``clock``."""
    return FakeBackend(
        channels=[FakeChannel("cpu:0", power_w, kind="counter", domain="cpu")], clock=clock
    )
