"""Benchmark 4: slowdown of the CPU training loop, metered vs bare, beside a bare-vs-bare band.

Method: the torch training loop of ``_workload.py`` (fixed step count, a few seconds) is run in
rounds; each round runs ``bare`` twice, ``auto`` (``EnergyMeter()``, auto-detected backends: the
psutil CPU estimate on this machine) and ``fake`` (``EnergyMeter(backends=[FakeBackend(...)])``),
in an order that rotates from round to round so that no configuration always runs first or after
another. Only the loop is timed (meter start/stop are outside it; see bench_enter_exit.py).

Per round: slowdown = metered wall / wall of the round's first bare run - 1; noise = second bare
run / first bare run - 1 (the same statistic with no meter). The headline is the median slowdown
over rounds; the noise band is the 95 % bootstrap interval of the median of the noise.

Target (issue #2): median slowdown <= 0.5 %, or within the bare-vs-bare noise band.
"""

from __future__ import annotations

import sys

import _common as c
import _workload as wl

TARGET_PCT = 0.5
QUICK_ROUNDS, FULL_ROUNDS = 3, 16


def main() -> int:
    p = c.parser(__doc__.splitlines()[0])
    wl.add_loop_options(p, quick_rounds=QUICK_ROUNDS, full_rounds=FULL_ROUNDS)
    args = p.parse_args()
    c.header("slowdown of a CPU training loop, metered vs bare")
    loop_s, _, _ = wl.loop_settings(args)
    loop = wl.Loop(loop_s)
    print(f"loop: {loop.steps} steps (~{loop_s:g} s), torch threads={loop.threads}")
    for name in ("auto", "fake"):  # untimed: first-use imports
        wl.run_once(loop, name, wl.CONFIGS[name])
    order = ["bare", "auto", "bare", "fake"]
    slow: dict[str, list[float]] = {"auto": [], "fake": []}
    noise: list[float] = []
    walls: list[float] = []
    foreign: list[float] = []
    done = wl.run_rounds(loop, order, args)
    print(done.note)
    for got in done.used:
        foreign.append(max(x.foreign_cores for x in got))
        bares = [x for x in got if x.config == "bare"]
        ref = bares[0].wall_s
        noise.append(100 * (bares[1].wall_s / ref - 1))
        walls.extend(x.wall_s for x in bares)
        for x in got:
            if x.config in slow:
                slow[x.config].append(100 * (x.wall_s / ref - 1))
    s_noise = c.spread(noise)
    band = c.bootstrap_median_interval(noise)
    s_walls = c.spread(walls)
    s_foreign = c.spread(foreign)
    print(f"bare loop wall time: {s_walls.text('{:.3f}', ' s')}")
    print(f"other processes' load per round: {s_foreign.text('{:.2f}', ' cores')}")
    print(f"bare-vs-bare: {s_noise.text('{:+.2f}', ' %')}")
    print(f"  noise band (95% bootstrap interval of its median): {band[0]:+.2f}..{band[1]:+.2f} %")
    figs: dict[str, object] = {}
    verdicts = {}
    for name, xs in slow.items():
        s = c.spread(xs)
        ci = c.bootstrap_median_interval(xs)
        within = s.median <= band[1]
        verdicts[name] = s.median <= TARGET_PCT or within
        print(
            f"{name}: slowdown {s.text('{:+.2f}', ' %')}\n"
            f"      95% bootstrap interval of the median {ci[0]:+.2f}..{ci[1]:+.2f} %; "
            f"{'within' if within else 'above'} the noise band"
        )
        figs[name] = {"slowdown_pct": vars(s), "median_ci95_pct": ci, "within_band": within}
    auto = c.spread(slow["auto"])
    fake = c.spread(slow["fake"])
    result = c.Result(
        name="slowdown",
        what="slowdown of that loop, metered vs bare (paired, alternating)",
        figure=auto.median,
        unit="%",
        target=TARGET_PCT,
        passed=all(verdicts.values()),
        spread=(
            f"auto: IQR {auto.q1:+.2f}..{auto.q3:+.2f} %; FakeBackend: median {fake.median:+.2f} %"
            f" (IQR {fake.q1:+.2f}..{fake.q3:+.2f} %); bare-vs-bare median {s_noise.median:+.2f} "
            f"%, IQR {s_noise.q1:+.2f}..{s_noise.q3:+.2f} %, band {band[0]:+.2f}..{band[1]:+.2f} %;"
            f" n={len(done.used)} rounds of {s_walls.median:.1f} s runs; {done.note}"
        ),
        rule=(
            "median slowdown <= target, or <= the upper end of the bare-vs-bare noise band, for "
            "both configurations (headline: auto-detected)"
        ),
        details={
            "rounds_kept": len(done.clean),
            "rounds_run": len(done.all),
            "rounds_note": done.note,
            "loop_steps": loop.steps,
            "torch_threads": loop.threads,
            "bare_wall_s": vars(s_walls),
            "bare_vs_bare_pct": vars(s_noise),
            "noise_band_pct": band,
            "foreign_load_cores": vars(s_foreign),
            **figs,
        },
    )
    return c.finish(result, args)


if __name__ == "__main__":
    sys.exit(main())
