"""Diagnostic: CPU per wake-up of an idle Python thread at 10 Hz, by how it sleeps.

Method: the CPU training loop of ``_workload.py`` runs in rounds; in each round, in rotating
order, it runs beside one thread that does nothing but sleep 0.1 s at a time, by one of:

- ``event``: ``threading.Event.wait(0.1)`` (then ``clear()``): a ``Condition`` in Python;
- ``lock``: ``acquire(True, 0.1)`` on a raw lock nobody releases: one C call (what bertwatt's
  sampler threads use; another thread wakes one early by releasing the lock);
- ``sleep``: ``time.sleep(0.1)``: one C call, but nothing can wake it early;
- ``condition``: ``threading.Condition.wait(0.1)`` with the condition's lock held.

The figure per mechanism is the thread's CPU time (its POSIX CPU-time clock) per wake-up, and as
a share of the loop's wall time: the floor any Python sampling thread pays at 10 Hz on this
machine, before it reads anything. No target: it sets what the sampler's targets can be.
"""

from __future__ import annotations

import _thread
import json
import sys
import threading
import time
from collections.abc import Callable

import _common as c
import _workload as wl

KINDS = ("event", "lock", "sleep", "condition")
INTERVAL_S = 0.1


def _sleeper(kind: str, stop: threading.Event, wakes: list[int]) -> Callable[[], None]:
    if kind == "event":
        ev = threading.Event()

        def body() -> None:
            while not stop.is_set():
                ev.wait(INTERVAL_S)
                ev.clear()
                wakes[0] += 1

    elif kind == "lock":
        held = _thread.allocate_lock()
        held.acquire()

        def body() -> None:
            acquire = held.acquire
            while not stop.is_set():
                acquire(True, INTERVAL_S)
                wakes[0] += 1

    elif kind == "sleep":

        def body() -> None:
            while not stop.is_set():
                time.sleep(INTERVAL_S)
                wakes[0] += 1

    else:
        cv = threading.Condition()

        def body() -> None:
            with cv:
                while not stop.is_set():
                    cv.wait(INTERVAL_S)
                    wakes[0] += 1

    return body


def _one(loop: wl.Loop, kind: str) -> tuple[float, float, float]:
    """(CPU us per wake-up, % of loop wall time, other processes' cores) for one run."""
    stop, wakes = threading.Event(), [0]
    th = threading.Thread(target=_sleeper(kind, stop, wakes), name=f"wake-{kind}", daemon=True)
    th.start()
    clock = c.thread_cpu_clock(th)
    time.sleep(0.05)
    load = c.ForeignLoad()
    loop.reset()
    n0, t0, w0 = wakes[0], clock(), time.perf_counter()
    loop.run()
    n1, t1, w1 = wakes[0], clock(), time.perf_counter()
    stop.set()
    th.join()
    cpu_s = (t1 - t0) / 1e9
    return 1e6 * cpu_s / max(1, n1 - n0), 100 * cpu_s / (w1 - w0), load.cores()


def main() -> int:
    p = c.parser(__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=None, help="default 10 (--quick 3)")
    p.add_argument("--loop-s", type=float, default=None, help="seconds per run (default 2)")
    args = p.parse_args()
    c.header("CPU per wake-up of an idle thread at 10 Hz, by how it sleeps")
    rounds = args.rounds or (3 if args.quick else 10)
    loop = wl.Loop(args.loop_s or 2.0)
    got: dict[str, list[tuple[float, float, float]]] = {k: [] for k in KINDS}
    for r in range(rounds):
        order = KINDS[r % len(KINDS) :] + KINDS[: r % len(KINDS)]
        for kind in order:
            got[kind].append(_one(loop, kind))
    foreign = c.spread([x[2] for xs in got.values() for x in xs])
    figures = {}
    for kind in KINDS:
        per = c.spread([x[0] for x in got[kind]])
        pct = c.spread([x[1] for x in got[kind]])
        print(f"{kind:>9}: {per.text('{:.1f}', ' us')} per wake-up; {pct.text('{:.4f}', ' %')}")
        figures[kind] = {"cpu_per_wake_us": vars(per), "pct_of_loop": vars(pct)}
    print(f"other processes' load: {foreign.text('{:.2f}', ' cores')}; n = {rounds} per kind")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"rounds": rounds, "foreign_load_cores": vars(foreign), **figures}, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
