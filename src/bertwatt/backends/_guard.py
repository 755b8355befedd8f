"""What protects a meter from its backends, and meters from each other.

- :func:`check_reading` validates what ``read()`` returned, at the boundary: a malformed answer
  never reaches a timeline, it becomes a failed read with its reason.
- :class:`BoundedCall` runs one call into a backend (``probe()``, ``close()``) on a daemon thread,
  so the caller waits at most a stated time; a call that hangs is left behind, never joined.
- :func:`acquire` / :func:`register` / :func:`release` count the running meters that use one
  backend object, so that nested meters can share it: only the first probes it, only the last
  closes it, and the inner meter's ``stop()`` never closes it under the outer one.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from numbers import Real
from typing import Any, Generic, TypeVar

from bertwatt.backends.base import Availability

__all__ = [
    "BadReading",
    "BoundedCall",
    "acquire",
    "check_reading",
    "register",
    "release",
    "short_repr",
    "users",
]

T = TypeVar("T")

_REPR_CHARS = 60


def short_repr(value: object, limit: int = _REPR_CHARS) -> str:
    """``repr(value)`` cut to ``limit`` characters (a hostile value can be huge or raise)."""
    try:
        text = repr(value)
    except Exception as err:  # a __repr__ that raises
        text = f"<{type(value).__name__} whose repr() raised {type(err).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


class BadReading(Exception):
    """``read()`` returned something that is not a reading; the message says what."""


def check_reading(
    answer: object, n: int, who: str = "read()"
) -> tuple[list[float], dict[int, str]]:
    """Check a ``read()`` answer for ``n`` channels; return ``(values, errors)``.

    ``who`` names the call in messages about a channel's value (e.g. ``"nvml.read()"``).

    A value that is not a real number becomes ``nan`` with a message in ``errors`` (that channel
    failed this time). An answer that is not a ``(values, errors)`` pair, values of the wrong
    length, or errors that are not a mapping of channel positions to text raise
    :class:`BadReading`: nothing of such an answer is used.
    """
    # Fast path, every tick of every sampler: a (list of floats, None) pair needs no conversion
    # (NaN included: the caller records it as a failed read). The values list is returned as it
    # is; the caller only reads it.
    if type(answer) is tuple and len(answer) == 2:
        raw_values, raw_errors = answer
        if raw_errors is None and type(raw_values) is list and len(raw_values) == n:
            for v in raw_values:
                if type(v) is not float:
                    break
            else:
                return raw_values, {}
    if not isinstance(answer, tuple | list) or len(answer) != 2:
        raise BadReading(f"returned {short_repr(answer)}, not a (values, errors) pair")
    raw_values, raw_errors = answer
    if raw_values is None or isinstance(raw_values, str | bytes | bytearray | Mapping):
        raise BadReading(f"returned values {short_repr(raw_values)}, not a list of numbers")
    try:
        items = list(raw_values)
    except Exception as err:
        raise BadReading(
            f"returned values {short_repr(raw_values)} that cannot be listed ({type(err).__name__})"
        ) from None
    if len(items) != n:
        raise BadReading(f"returned {len(items)} value(s) for {n} channel(s)")
    errors: dict[int, str] = {}
    if raw_errors is not None:
        if not isinstance(raw_errors, Mapping):
            raise BadReading(
                f"returned errors {short_repr(raw_errors)}, not a mapping of channel index to text"
            )
        for key, msg in raw_errors.items():
            if isinstance(key, bool) or not isinstance(key, int) or not 0 <= key < n:
                raise BadReading(f"returned an error for {short_repr(key)}, not a channel index")
            errors[key] = msg[:200] if isinstance(msg, str) else short_repr(msg)
    values: list[float] = []
    for i, v in enumerate(items):
        if isinstance(v, bool) or not isinstance(v, Real):
            values.append(math.nan)
            errors[i] = f"{who} returned {short_repr(v)} for channel {i}, not a number"
            continue
        try:
            values.append(float(v))
        except (OverflowError, ValueError, TypeError):
            values.append(math.nan)
            errors[i] = f"{who} returned {short_repr(v)} for channel {i}, not a float"
    return values, errors


class BoundedCall(Generic[T]):
    """Run ``fn()`` on a daemon thread; :meth:`wait` for it at most a given time.

    A call that does not return in time keeps running on its thread (Python cannot stop it);
    ``on_late`` then runs on that thread with the late result (or exception), if it ever comes.
    """

    def __init__(self, fn: Callable[[], T], name: str) -> None:
        self._fn = fn
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._abandoned = False
        self._on_late: Callable[[T | None, BaseException | None], None] | None = None
        self.result: T | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.result = self._fn()
        except BaseException as err:  # reported to the caller, never raised on this thread
            self.error = err
        with self._lock:
            self._done.set()
            late = self._on_late if self._abandoned else None
        if late is not None:
            with contextlib.suppress(Exception):  # the late handler only releases handles
                late(self.result, self.error)

    @property
    def done(self) -> bool:
        """Whether the call has returned (or raised)."""
        return self._done.is_set()

    def wait(self, timeout_s: float) -> bool:
        """Wait at most ``timeout_s``; return whether the call finished."""
        return self._done.wait(max(0.0, timeout_s))

    def abandon(self, on_late: Callable[[T | None, BaseException | None], None] | None) -> bool:
        """Give up on the call; ``on_late`` runs if it returns later. False if it already has."""
        with self._lock:
            if self._done.is_set():
                return False
            self._abandoned = True
            self._on_late = on_late
            return True


# ---------------------------------------------------------------- sharing between meters
@dataclass
class _Use:
    backend: Any
    availability: Availability
    users: int


_uses: dict[int, _Use] = {}
_uses_lock = threading.Lock()


def acquire(backend: object) -> Availability | None:
    """If a running meter already uses ``backend``, join it and return its probe result.

    Returns None when nobody uses it: the caller probes it, then calls :func:`register`.
    """
    with _uses_lock:
        use = _uses.get(id(backend))
        if use is None or use.backend is not backend:
            return None
        use.users += 1
        return use.availability


def register(backend: object, availability: Availability) -> Availability:
    """Record a first user of ``backend`` after its probe; returns the probe result to use.

    If another meter registered it meanwhile (two meters started at once), that one's result is
    kept and this caller becomes one more user.
    """
    with _uses_lock:
        use = _uses.get(id(backend))
        if use is not None and use.backend is backend:
            use.users += 1
            return use.availability
        _uses[id(backend)] = _Use(backend, availability, 1)
        return availability


def release(backend: object) -> bool:
    """One user is done with ``backend``; True when it was the last (the caller closes it)."""
    with _uses_lock:
        use = _uses.get(id(backend))
        if use is None or use.backend is not backend:
            return True
        use.users -= 1
        if use.users > 0:
            return False
        del _uses[id(backend)]
        return True


def users(backend: object) -> int:
    """How many running meters use ``backend`` now."""
    with _uses_lock:
        use = _uses.get(id(backend))
        return use.users if use is not None and use.backend is backend else 0
