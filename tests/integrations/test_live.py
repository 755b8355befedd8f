"""The live line (power now, energy so far): on a terminal only, off when asked."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from typing import Any

import pytest
from hf_helpers import POWER_W, fake_sensor

from bertwatt.live import LiveLine, is_terminal
from bertwatt.meter import EnergyMeter
from bertwatt.testing import FakeBackend, FakeChannel, FakeClock


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_when_the_stream_is_not_a_terminal() -> None:
    clock = FakeClock()
    meter = EnergyMeter(backends=[fake_sensor(clock)], clock=clock)
    meter.start()
    out = io.StringIO()
    line = LiveLine(meter, stream=out, interval_s=0.01).start()
    assert not line.enabled and not is_terminal(out)
    time.sleep(0.05)
    line.stop()
    meter.stop(warn=False)
    assert out.getvalue() == ""


def test_off_when_asked_even_on_a_terminal() -> None:
    clock = FakeClock()
    meter = EnergyMeter(backends=[fake_sensor(clock)], clock=clock)
    meter.start()
    out = Terminal()
    line = LiveLine(meter, stream=out, enabled=False, interval_s=0.01).start()
    time.sleep(0.05)
    line.stop()
    meter.stop(warn=False)
    assert not line.enabled and out.getvalue() == ""


def test_power_now_and_energy_so_far() -> None:
    clock = FakeClock()
    channel = FakeChannel("cpu:0", POWER_W, kind="counter", domain="cpu")
    meter = EnergyMeter(backends=[FakeBackend(channels=[channel], clock=clock)], clock=clock)
    meter.start()
    out = Terminal()
    line = LiveLine(meter, stream=out)
    clock.advance(2.0)
    meter.mark()  # the sampler's latest sample now
    line.draw()
    first = out.getvalue()
    assert first.startswith("\r\x1b[K") and "40 W now" in first and "80 J so far" in first
    assert "2 s" in first and "cpu:0" in first
    clock.advance(1.0)
    meter.mark()
    line.draw()
    second = out.getvalue()[len(first) :]
    assert "so far" in second and "3 s" in second
    line.stop()
    assert out.getvalue().endswith("\r\x1b[K")  # erased
    meter.stop(warn=False)


def test_the_thread_redraws_and_erases_on_a_terminal() -> None:
    meter = EnergyMeter(backends=[FakeBackend(channels=[FakeChannel("gpu:0", 100.0)])])
    meter.start()
    out = Terminal()
    with LiveLine(meter, stream=out, interval_s=0.02) as line:
        assert line.enabled
        deadline = time.monotonic() + 10
        while "so far" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.02)
    meter.stop(warn=False)
    text = out.getvalue()
    assert "W now" in text and "so far" in text and text.endswith("\r\x1b[K")


def test_a_failing_stream_stops_the_line_not_the_run() -> None:
    class Broken(Terminal):
        def write(self, s: str) -> int:
            raise OSError("terminal gone")

    meter = EnergyMeter(backends=[FakeBackend(channels=[FakeChannel("gpu:0", 100.0)])])
    meter.start()
    line = LiveLine(meter, stream=Broken(), interval_s=0.01).start()
    time.sleep(0.1)
    line.stop()
    report = meter.stop(warn=False)
    assert report.energy_j is not None


def test_a_sink_gets_the_text_instead_of_the_stream() -> None:
    clock = FakeClock()
    meter = EnergyMeter(backends=[fake_sensor(clock)], clock=clock)
    meter.start()
    got: list[str] = []
    out = Terminal()
    line = LiveLine(meter, stream=out, sink=got.append)
    clock.advance(1.0)
    meter.mark()
    line.draw()
    line.stop()
    meter.stop(warn=False)
    assert got and "W now" in got[0] and out.getvalue() == ""


def _run_cli(extra: list[str], tty: bool) -> str:
    """``bertwatt run [extra] -- python -c 'sleep 2.5'`` with stderr on a pty (or a pipe)."""
    cmd = [sys.executable, "-m", "bertwatt", "run", *extra, "--backend", "estimate", "--",
           sys.executable, "-c", "import time; time.sleep(2.5)"]  # fmt: skip
    env = dict(os.environ, BERTWATT_ZONE="")
    env.pop("BERTWATT_ZONE")
    if not tty:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        return done.stderr
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=slave, env=env)
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        proc.wait(timeout=120)
    finally:
        os.close(master)
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pty")
def test_bertwatt_run_shows_the_line_on_a_terminal_only() -> None:
    on_tty = _run_cli([], tty=True)
    assert "W now" in on_tty and "so far" in on_tty
    asked_off = _run_cli(["--no-live"], tty=True)
    assert "W now" not in asked_off
    piped = _run_cli([], tty=False)
    assert "W now" not in piped and "\x1b" not in piped and "\r" not in piped


def test_energy_callback_live_is_off_without_a_terminal(make_trainer: Any, capsys: Any) -> None:
    from bertwatt.integrations.transformers import EnergyCallback

    clock = FakeClock()
    cb = EnergyCallback(backends=[fake_sensor(clock)], clock=clock, live=None)
    trainer = make_trainer(callbacks=[cb], clock=clock)
    trainer.train()
    assert "W now" not in capsys.readouterr().err
    assert cb.report.steps > 0
