"""The live line: power now and energy so far, on one terminal line, while a meter runs.

::

    bertwatt  41.3 W now   12.48 kJ so far   5 min 02 s   (cpu:package-0, gpu:0)

Shown by ``bertwatt run`` and :class:`~bertwatt.EnergyCallback` when their output stream
(stderr) is a terminal; the Trainer's progress bar, when it has one, carries the figures in its
postfix instead of a second line fighting it for the cursor. Off when the stream is not a
terminal (a pipe, a file, a CI log) and when asked (``bertwatt run --no-live``,
``EnergyCallback(live=False)``). The line is redrawn in place (carriage return, erase to the end
of the line) once a second by a daemon thread that reads the meter's cheap snapshot (no edge
read, no extra sensor traffic), and erased when the meter stops. "Power now" is the energy
between the last two redraws over the time between them; before the second redraw it is the
mean power so far. A problem drawing the line stops the line, never the run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from bertwatt.units import fmt_j, fmt_s, fmt_w

if TYPE_CHECKING:
    from bertwatt.meter import EnergyMeter

__all__ = ["LiveLine", "is_terminal"]

logger = logging.getLogger(__name__)

#: carriage return + erase to the end of the line
_CLEAR = "\r\x1b[K"


def is_terminal(stream: Any) -> bool:
    """True when ``stream`` is an interactive terminal (``isatty()``); False on any doubt."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class LiveLine:
    """Redraw "power now, energy so far" for ``meter`` on ``stream`` while it runs.

    Args:
        meter: the meter to read (started before :meth:`start`).
        stream: where to draw (default ``sys.stderr``).
        enabled: None: on when ``stream`` is a terminal; False: off; True: on if a terminal.
        interval_s: seconds between redraws.
        label: the line's first word.
        sink: draw by calling ``sink(text)`` instead of writing to ``stream`` (e.g. into a
            progress bar's postfix); ``stream`` still decides whether the line is on.
    """

    def __init__(
        self,
        meter: EnergyMeter,
        *,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        interval_s: float = 1.0,
        label: str = "bertwatt",
        sink: Callable[[str], None] | None = None,
    ) -> None:
        import sys

        self.meter = meter
        self.stream: TextIO = stream if stream is not None else sys.stderr
        self.enabled = enabled is not False and is_terminal(self.stream)
        self.interval_s = float(interval_s)
        self.label = label
        self.sink = sink
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: tuple[float, float] | None = None  # (duration_s, energy_j) at last redraw
        self._drawn = False

    def line(self) -> str:
        """The text of the line now (also advances "power now")."""
        snap = self.meter.snapshot()
        energy, duration = snap.energy_j, snap.duration_s
        names = ", ".join(name for name, e in snap.channels.items() if e is not None)
        if energy is None:
            return f"{self.label}  no energy measured yet   {fmt_s(duration)}"
        last, self._last = self._last, (duration, energy)
        if last is not None and duration > last[0]:
            power = (energy - last[1]) / (duration - last[0])
        else:
            power = energy / duration if duration > 0 else None
        return f"{self.label}  {fmt_w(power)} now   {fmt_j(energy)} so far   {fmt_s(duration)}" + (
            f"   ({names})" if names else ""
        )

    def draw(self) -> None:
        """Redraw the line once."""
        text = self.line()
        if self.sink is not None:
            self.sink(text)
            return
        self.stream.write(_CLEAR + text)
        self.stream.flush()
        self._drawn = True

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                if not self.meter.running:
                    return
                self.draw()
            except Exception as err:  # the line is a courtesy: stop it, never the run
                logger.debug("bertwatt: the live line stopped: %s", err)
                return

    def start(self) -> LiveLine:
        """Start redrawing (no-op when not enabled)."""
        if self.enabled and self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="bertwatt-live", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop redrawing and erase the line."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=2 * self.interval_s + 1)
        if self._drawn:
            try:
                self.stream.write(_CLEAR)
                self.stream.flush()
            except (OSError, ValueError) as err:
                logger.debug("bertwatt: erasing the live line failed: %s", err)
            self._drawn = False

    def __enter__(self) -> LiveLine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
