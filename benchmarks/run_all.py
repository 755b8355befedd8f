"""Run every bertwatt benchmark, each in its own process, and print a Markdown table.

Usage::

    .venv/bin/python benchmarks/run_all.py            # full runs (about 15 minutes idle)
    .venv/bin/python benchmarks/run_all.py --quick    # smoke run (about 3 minutes)
    .venv/bin/python benchmarks/run_all.py --only import,enter_exit

Each benchmark's own output is streamed as it runs; the table follows at the end, with the
machine facts. Exit status: 0 when every target is met, 1 when any is missed, 2 when a benchmark
crashed. ``--json PATH`` also writes every result.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as c

#: name -> script, in the order of issue #2's table.
BENCHMARKS = {
    "import": "bench_import.py",
    "enter_exit": "bench_enter_exit.py",
    "background_cpu": "bench_background_cpu.py",
    "slowdown": "bench_slowdown.py",
    "sampler_8gpu_rapl": "bench_sampler_8gpu.py",
    "energy_error": "bench_energy_error.py",
    "memory_72h": "bench_memory_72h.py",
    "long_run": "bench_long_run.py",
    "merge": "bench_merge.py",
    "startup": "bench_startup.py",
    "gather": "bench_gather.py",
    "step_overhead": "bench_step_overhead.py",
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(results: list[dict[str, object]]) -> str:
    """The Markdown table of ``results`` (as written by ``_common.finish``)."""
    rows = [
        "| what | target | measured (median) | spread | result | command |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        if "error" in r:
            rows.append(f"| {r['name']} | | | | CRASHED: {_cell(str(r['error']))} | |")
            continue
        verdict = "met" if r["passed"] else "**missed**"
        if r.get("quick"):
            verdict += " (quick)"
        rows.append(
            f"| {_cell(str(r['what']))} | <= {r['target']:g} {r['unit']} "
            f"| {r['figure']:.4g} {r['unit']} | {_cell(str(r['spread']))} | {verdict} "
            f"| `{r['command']}` |"
        )
    return "\n".join(rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    p.add_argument("--only", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    p.add_argument("--json", metavar="PATH", help="write all results as JSON to PATH")
    args = p.parse_args()
    names = list(BENCHMARKS)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in BENCHMARKS]
        if unknown:
            p.error(f"unknown benchmark(s) {unknown}; known: {', '.join(BENCHMARKS)}")
    results: list[dict[str, object]] = []
    status = 0
    with tempfile.TemporaryDirectory(prefix="bertwatt-bench-") as tmp:
        for name in names:
            out = Path(tmp) / f"{name}.json"
            argv = [sys.executable, str(c.BENCH_DIR / BENCHMARKS[name]), "--json", str(out)]
            if args.quick:
                argv.append("--quick")
            print(f"\n######## {name}", flush=True)
            t0 = time.perf_counter()
            rc = subprocess.run(argv, check=False).returncode
            elapsed = time.perf_counter() - t0
            if out.exists():
                res = json.loads(out.read_text())
                res["elapsed_s"] = elapsed
                results.append(res)
                status = max(status, 0 if res["passed"] else 1)
            else:
                results.append({"name": name, "error": f"exit status {rc}, no result"})
                status = 2
    m = c.machine()
    print("\n## Results\n")
    print(
        f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), Linux {m['kernel']}, Python "
        f"{m['python']}, torch {m['torch']}, bertwatt {m['bertwatt']}; {m['date_utc']}.\n"
    )
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
