"""Benchmark 1: the cost of ``import bertwatt`` over a bare ``python -c pass``.

Method: fresh interpreter processes, rotating ``python -c pass`` and ``python -c "import
bertwatt"`` (the order inside each round rotates), timed from the parent with
``time.perf_counter`` around ``subprocess.run``. Three warm-up rounds are discarded (disk cache).
The headline is the median of the per-pair differences; both medians are printed beside it. For
information, a third variant also resolves ``bertwatt.EnergyMeter`` (the lazy import of the meter
core, paid on first use).

It also lists the modules ``import bertwatt`` adds to ``sys.modules`` in a fresh process and
fails if any of torch, transformers, matplotlib, pynvml, numpy or pydantic is among them.

Target (issue #2): <= 50 ms.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import time

import _common as c

TARGET_MS = 50.0
FORBIDDEN = ("torch", "transformers", "matplotlib", "pynvml", "numpy", "pydantic")

_LIST_MODULES = (
    "import sys; before = set(sys.modules); import bertwatt; "
    "print(repr(sorted(set(sys.modules) - before)))"
)


def _time_run(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def _added_modules() -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", _LIST_MODULES], check=True, capture_output=True, text=True
    ).stdout
    return list(ast.literal_eval(out.strip()))


def _importtime_us() -> int:
    """bertwatt's cumulative import time reported by ``python -X importtime`` (one run)."""
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import bertwatt"],
        check=True,
        capture_output=True,
        text=True,
    ).stderr
    for line in err.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 3 and parts[2] == "bertwatt":
            return int(parts[1])
    raise RuntimeError("bertwatt not found in -X importtime output")


def main() -> int:
    args = c.parser(__doc__.splitlines()[0]).parse_args()
    c.header("import bertwatt over python -c pass")
    n = 10 if args.quick else 40
    c.wait_quiet(timeout_s=5 if args.quick else 120)
    load = c.ForeignLoad()
    bare = [sys.executable, "-c", "pass"]
    imp = [sys.executable, "-c", "import bertwatt"]
    use = [sys.executable, "-c", "import bertwatt; bertwatt.EnergyMeter"]
    for _ in range(3):  # warm-up, discarded
        _time_run(bare)
        _time_run(imp)
        _time_run(use)
    t_bare: list[float] = []
    t_imp: list[float] = []
    t_use: list[float] = []
    for i in range(n):
        # rotate the order inside each round so that no variant always runs first
        order = [(bare, t_bare), (imp, t_imp), (use, t_use)]
        order = order[i % 3 :] + order[: i % 3]
        for argv, sink in order:
            sink.append(_time_run(argv) * 1e3)
    other = load.cores()
    diffs = [m - b for m, b in zip(t_imp, t_bare, strict=True)]
    s_diff, s_bare, s_imp = c.spread(diffs), c.spread(t_bare), c.spread(t_imp)
    s_use = c.spread([u - b for u, b in zip(t_use, t_bare, strict=True)])
    ci = c.bootstrap_median_interval(diffs)
    importtime = sorted(_importtime_us() for _ in range(5 if args.quick else 11))
    added = _added_modules()
    tops = sorted({m.split(".")[0] for m in added})
    stdlib = set(sys.stdlib_module_names)
    non_stdlib = [m for m in tops if m not in stdlib and not m.startswith("_")]
    bad = [m for m in tops if m in FORBIDDEN]
    print(f"python -c pass          : {s_bare.text('{:.1f}', ' ms')}")
    print(f"python -c import bertwatt: {s_imp.text('{:.1f}', ' ms')}")
    print(f"per-pair difference     : {s_diff.text('{:.1f}', ' ms')}")
    print(f"  (for information) + resolving bertwatt.EnergyMeter: {s_use.text('{:.1f}', ' ms')}")
    print(f"  95% bootstrap interval of the median difference: {ci[0]:.1f}..{ci[1]:.1f} ms")
    print(
        f"-X importtime, bertwatt cumulative: median {importtime[len(importtime) // 2] / 1e3:.1f}"
        f" ms (min {importtime[0] / 1e3:.1f}, max {importtime[-1] / 1e3:.1f})"
    )
    print(f"other processes used {other:.2f} cores on average during the timed runs")
    print(f"modules added by import bertwatt ({len(added)}): {', '.join(added)}")
    print(f"non-stdlib top-level modules: {non_stdlib or 'none'}")
    print(f"forbidden modules loaded: {bad or 'none'}")
    result = c.Result(
        name="import",
        what="`import bertwatt` over bare `python -c pass`",
        figure=s_diff.median,
        unit="ms",
        target=TARGET_MS,
        passed=s_diff.median <= TARGET_MS and not bad,
        spread=(
            f"IQR {s_diff.q1:.1f}..{s_diff.q3:.1f} ms, min..max {s_diff.min:.1f}..{s_diff.max:.1f}"
            f" ms, n={n} pairs; 95% CI of median {ci[0]:.1f}..{ci[1]:.1f} ms; other processes "
            f"{other:.2f} cores"
        ),
        rule="median of paired differences <= target, and no forbidden module imported",
        details={
            "bare_ms": vars(s_bare),
            "import_ms": vars(s_imp),
            "diff_ms": vars(s_diff),
            "diff_median_ci95_ms": ci,
            "energymeter_attr_diff_ms": vars(s_use),
            "importtime_cumulative_ms": [x / 1e3 for x in importtime],
            "added_modules": added,
            "non_stdlib_top_level": non_stdlib,
            "forbidden_loaded": bad,
            "other_processes_cores": other,
        },
    )
    return c.finish(result, args)


if __name__ == "__main__":
    sys.exit(main())
