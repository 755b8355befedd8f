"""bertwatt side by side with CodeCarbon, Zeus and carbontracker, on one simulated GPU.

Run from the repository root (about 12 minutes on a 2-core machine once the peers are installed;
the first run adds about 3 minutes to install them)::

    python benchmarks/peers/run.py            # everything; rewrites docs/performance.md tables
    python benchmarks/peers/run.py --quick --tools bertwatt,zeus --traces constant --no-docs

What it does:

1. Creates a venv of its own (``--venv``, default under ``~/.cache/bertwatt``) and installs the
   pinned peers of ``benchmarks/peers/requirements.txt`` into it, nothing into bertwatt's
   environment; bertwatt itself comes from this checkout's ``src/`` on ``PYTHONPATH``.
2. Simulates one NVIDIA A100 at the ``pynvml`` boundary: ``_shim/sitecustomize.py`` puts
   bertwatt's fake ``pynvml`` (:class:`bertwatt.testing.nvml.FakeNVML`) in every process of the
   benchmark, all sharing one time origin, so every tool reads the same GPU at the same time.
   The sensor is the A100 model of docs/accuracy.md: instant power over 25 ms of every 100 ms,
   an energy counter moving every 100 ms (sensor phase 37 ms), no gain error (a gain error
   scales every tool alike). An ``nvidia-smi`` stand-in answering ``--help`` is put on PATH:
   CodeCarbon tracks GPUs only when one answers. Connections other than to 127.0.0.1 are refused
   in these processes (CodeCarbon runs offline with ``country_iso_code="FRA"``; carbontracker's
   location lookup fails and it falls back to its default intensity).
3. For each trace, with and without the energy counter, runs every tool at its defaults and at
   its best settings in parallel processes over the same windows, and compares each window's
   GPU energy with the exact integral of the trace over the time the tool's window was open
   (from its start call returning to its stop call). Every tool's start call is made at the
   same time of the trace; its window then lasts the nominal length from the moment that call
   returns, so a slow start shifts a tool's window (by up to a few seconds for CodeCarbon,
   whose first ``start()`` detects the hardware) but never shortens it.
4. Finds each tool's shortest window measured within 5 % on a workload that starts with the
   window (60 W idle, then 300 W), then measures each tool's cost, one process at a time:
   import time (fresh interpreter, no fake), construct + start + stop (first in a process, then
   repeated; bertwatt's as a ``with`` block, whose report is built when first read: that read
   is timed by benchmarks/bench_startup.py), background CPU over a 10 s window with the main
   thread asleep, peak RSS added.
5. Prints the tables and rewrites them between the ``peers:`` markers: the full tables in
   docs/performance.md, the short one (defaults only) in README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "src"))

TOOLS = ("bertwatt", "zeus", "codecarbon", "carbontracker")
CONFIGS = ("default", "best")
PACKAGE = {"zeus": "zeus", "codecarbon": "codecarbon", "carbontracker": "carbontracker"}
SETTINGS = {
    ("bertwatt", "default"): "`EnergyMeter()`",
    ("bertwatt", "best"): "`EnergyMeter(interval_s=0.05)`",
    ("zeus", "default"): "`ZeusMonitor(gpu_indices=[0])`",
    ("zeus", "best"): "`approx_instant_energy=True`",
    ("codecarbon", "default"): "`OfflineEmissionsTracker()` (15 s)",
    ("codecarbon", "best"): "`measure_power_secs=1`",
    ("carbontracker", "default"): "`CarbonTracker()` (1 s)",
    ("carbontracker", "best"): "`update_interval=0.1`",
}
SENSOR = {"power_reading": "instant", "energy_update_s": 0.1, "phase_s": 0.037}
LEAD_S = 3.0  # from GO (every tool imported and built) to the first window
GAP_S = 5.0  # between windows: one-shot tools build their next tracker here
SHORT_LENGTHS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
RESULT = "BERTWATT-PEERS-RESULT "


# --------------------------------------------------------------------------- traces
def square(period_s: float, duty: float, span_s: float, hi: float = 300.0, lo: float = 80.0):
    steps, t = [], 0.0
    while t < span_s:
        steps += [(t, hi), (t + duty * period_s, lo)]
        t += period_s
    return steps


def spikes(span_s: float) -> list[tuple[float, float]]:
    steps, t = [(0.0, 100.0)], 0.31
    while t < span_s:
        steps += [(t, 400.0), (t + 0.02, 100.0)]
        t += 0.737
    return steps


def ramp(span_s: float) -> list[tuple[float, float]]:
    # 50 W -> 350 W over the span in 10 ms steps (a ramp, to 10 ms resolution, integrated exactly)
    n = int(span_s / 0.01)
    return [(i * 0.01, 50.0 + 300.0 * i / n) for i in range(n)]


def traces(span_s: float) -> dict[str, list[tuple[float, float]]]:
    return {
        "constant 250 W": [(0.0, 250.0)],
        "square 0.2 s 50 %": square(0.2, 0.5, span_s),
        "square 1 s 10 %": square(1.0, 0.1, span_s),
        "square 1 s 50 %": square(1.0, 0.5, span_s),
        "square 1 s 90 %": square(1.0, 0.9, span_s),
        "square 5 s 50 %": square(5.0, 0.5, span_s),
        "square 30 s 50 %": square(30.0, 0.5, span_s),
        "spikes 20 ms every 0.737 s": spikes(span_s),
        "ramp 50-350 W": ramp(span_s),
    }


def short_trace(lengths: list[float], starts: list[float]) -> list[tuple[float, float]]:
    steps = [(0.0, 60.0)]
    for start, length in zip(starts, lengths, strict=True):
        steps += [(start, 300.0), (start + length, 60.0)]
    return steps


def truth_j(steps: list[tuple[float, float]], a: float, b: float) -> float:
    from bertwatt.testing.nvml import FakeGPU

    gpu = FakeGPU(power_w=steps)
    return gpu.energy_j(b) - gpu.energy_j(a)


# --------------------------------------------------------------------------- the venv
def requirement_lines(tools: list[str]) -> list[str]:
    wanted = {PACKAGE[t] for t in tools if t in PACKAGE} | {"nvidia-ml-py", "psutil"}
    lines = []
    for line in (HERE / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and re.split(r"[=<>!~\[ ]", line, maxsplit=1)[0].lower() in wanted:
            lines.append(line)
    return lines


def ensure_venv(path: Path | None, tools: list[str]) -> Path:
    lines = requirement_lines(tools)
    key = hashlib.sha256(("\n".join(lines) + sys.version).encode()).hexdigest()[:10]
    if path is None:
        cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        path = cache / "bertwatt" / f"peers-venv-{key}"
    python = path / "bin" / "python"
    marker = path / ".bertwatt-peers-installed"
    if marker.is_file() and marker.read_text() == "\n".join(lines):
        return python
    print(f"installing the peers into {path} (once): {' '.join(lines)}", flush=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *lines],
        check=True,
    )
    marker.write_text("\n".join(lines))
    return python


# --------------------------------------------------------------------------- running workers
@dataclass
class Env:
    python: Path
    tmp: Path

    def environ(self, spec: Path | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BERTWATT")}
        env["PYTHONPATH"] = os.pathsep.join([str(HERE / "_shim"), str(REPO / "src")])
        env["PATH"] = os.pathsep.join([str(self.tmp / "bin"), env.get("PATH", "/usr/bin:/bin")])
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["CODECARBON_LOG_LEVEL"] = "error"
        env["HF_HUB_OFFLINE"] = "1"
        if spec is not None:
            env["BERTWATT_PEERS_SPEC"] = str(spec)
        return env

    def spec(
        self, name: str, steps: list[tuple[float, float]], counter: bool, origin: int, go: bool
    ) -> Path:
        path = self.tmp / f"{name}.json"
        data = {"origin_ns": origin, "counter": counter, "steps": steps, "sensor": SENSOR}
        if go:
            data["go_path"] = str(self.tmp / f"{name}.go")
        path.write_text(json.dumps(data), encoding="utf-8")
        return path

    def worker(self, args: list[str], spec: Path | None, timeout: float) -> Any:
        proc = subprocess.run(
            [str(self.python), str(HERE / "_worker.py"), *args],
            env=self.environ(spec),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.tmp,
            stdin=subprocess.DEVNULL,
        )
        for line in proc.stdout.splitlines():
            if line.startswith(RESULT):
                return json.loads(line[len(RESULT) :])
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": f"worker exited {proc.returncode}: {' | '.join(tail)[:300]}"}


def make_env(python: Path) -> Env:
    tmp = Path(tempfile.mkdtemp(prefix="bertwatt-peers-"))
    (tmp / "bin").mkdir()
    smi = tmp / "bin" / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\n"
        'echo "NVIDIA System Management Interface (stand-in of the bertwatt peers benchmark)"\n'
        "exit 0\n"
    )
    smi.chmod(0o755)
    return Env(python, tmp)


def run_windows(
    env: Env,
    name: str,
    steps: list[tuple[float, float]],
    counter: bool,
    windows: list[tuple[float, float]],
    combos: list[tuple[str, str]],
) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Run every (tool, config) in parallel over the same windows; add each window's truth.

    The workers import their tool, build their first tracker and say READY; once all have, the
    trace's time 0 is set to now (the GO file), so slow start-ups shift nothing. Trackers that
    measure one window each build the next one in the gap between windows.
    """
    spec = env.spec(re.sub(r"\W+", "-", f"{name}-{counter}"), steps, counter, 0, go=True)
    go_path = Path(json.loads(spec.read_text())["go_path"])
    args = json.dumps(windows)
    procs = {
        c: subprocess.Popen(
            [str(env.python), str(HERE / "_worker.py"), "energy", c[0], c[1], args],
            env=env.environ(spec),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=env.tmp,
        )
        for c in combos
    }
    results: dict[tuple[str, str], Any] = {}
    for c, proc in procs.items():
        assert proc.stdout is not None
        while True:
            line = proc.stdout.readline()
            if not line or line.strip() == "READY":
                break
        if not line:
            results[c] = {"error": "worker exited before READY: " + proc.stderr.read()[-300:]}
    tmp_go = go_path.with_suffix(".tmp")
    tmp_go.write_text(str(time.monotonic_ns()), encoding="ascii")
    tmp_go.replace(go_path)  # atomic: every process reads the whole number or nothing
    timeout = windows[-1][1] + 120.0
    for c, proc in procs.items():
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        if c in results:
            continue
        found = [ln for ln in stdout.splitlines() if ln.startswith(RESULT)]
        if found:
            results[c] = json.loads(found[-1][len(RESULT) :])
        else:
            tail = " | ".join(stderr.strip().splitlines()[-3:])[:300]
            results[c] = {"error": f"worker exited {proc.returncode}: {tail}"}
    for rows in results.values():
        if isinstance(rows, dict):  # the worker failed as a whole
            continue
        for row, (start, end) in zip(rows, windows, strict=True):
            if (
                row.get("energy_j") is not None
                and row["t_end"] - row["t_begin"] < (end - start) / 2
            ):
                late = row["t_begin"] - start
                row["error"] = f"missed the window: its start returned {late:.1f} s late"
                row["energy_j"] = None
            if row.get("energy_j") is not None:
                exact = truth_j(steps, row["t_begin"], row["t_end"])
                row["truth_j"] = exact
                row["error"] = None
                row["rel"] = row["energy_j"] / exact - 1.0 if exact > 0 else math.inf
    return results


# --------------------------------------------------------------------------- the measurements
def energy_rows(env: Env, combos, names: list[str], quick: bool) -> list[dict[str, Any]]:
    lengths = (10.37, 7.71) if not quick else (6.37,)
    windows, t = [], LEAD_S
    for length in lengths:
        windows.append((t, t + length))
        t += length + GAP_S
    span = t + 30.0
    all_traces = traces(span)
    rows = []
    for name in names:
        steps = all_traces[name]
        with ThreadPoolExecutor(2) as pool:
            fut = {
                c: pool.submit(run_windows, env, name, steps, c, windows, combos)
                for c in (True, False)
            }
            done = {c: f.result() for c, f in fut.items()}
        for counter, results in done.items():
            for combo, res in results.items():
                rows.append({"trace": name, "counter": counter, "tool": combo, "windows": res})
        print(f"  {name}: done", flush=True)
    return rows


def shortest_rows(env: Env, combos, quick: bool) -> dict[tuple[bool, tuple[str, str]], Any]:
    lengths = list(SHORT_LENGTHS) * (1 if quick else 2)
    lengths.sort()
    starts, t = [], LEAD_S
    for i, length in enumerate(lengths):
        t += 0.037 * i % 0.1  # different phases against the sensor's 100 ms grid
        starts.append(t)
        t += length + GAP_S
    windows = [(s, s + length) for s, length in zip(starts, lengths, strict=True)]
    steps = short_trace(lengths, starts)
    out = {}
    with ThreadPoolExecutor(2) as pool:
        fut = {
            c: pool.submit(run_windows, env, "short", steps, c, windows, combos)
            for c in (True, False)
        }
        for counter, f in fut.items():
            for combo, res in f.result().items():
                out[(counter, combo)] = (lengths, res)
    return out


def shortest_within(lengths: list[float], res: Any, tol: float = 0.05) -> tuple[float | None, str]:
    if isinstance(res, dict):
        return None, res.get("error", "failed")
    ok_from = None
    for length in sorted(set(lengths), reverse=True):
        rows = [r for r, n in zip(res, lengths, strict=True) if n == length]
        if all(r.get("rel") is not None and abs(r["rel"]) <= tol for r in rows):
            ok_from = length
        else:
            break
    if ok_from is not None:
        return ok_from, ""
    worst = [r for r in res if r.get("rel") is not None]
    why = next((r["error"] for r in res if r.get("error")), None)
    if why:
        return None, why
    if worst:
        return None, f"{100 * max(abs(r['rel']) for r in worst):.1f} % error at 5 s"
    return None, "no window measured"


def import_time(env: Env, tool: str, n: int) -> float | None:
    module = {
        "bertwatt": "bertwatt.backends.nvml, bertwatt.meter",
        "zeus": "zeus.monitor",
        "codecarbon": "codecarbon",
        "carbontracker": "carbontracker.tracker",
    }[tool]
    code = (
        "import time; t = time.perf_counter(); import "
        + module
        + "; print(time.perf_counter() - t)"
    )
    times = []
    for _ in range(n):
        proc = subprocess.run(
            [str(env.python), "-c", code],
            env=env.environ(None),
            capture_output=True,
            text=True,
            cwd=env.tmp,
            timeout=120,
        )
        try:
            times.append(float(proc.stdout.strip().splitlines()[-1]))
        except (ValueError, IndexError):
            return None
    return statistics.median(times)


def cost_rows(env: Env, combos, quick: bool) -> dict[tuple[str, str], dict[str, Any]]:
    origin = time.monotonic_ns()
    spec = env.spec("cost", [(0.0, 250.0)], True, origin, go=False)
    seconds = 4.0 if quick else 10.0
    out = {}
    for combo in combos:  # one at a time: background CPU must not compete
        out[combo] = env.worker(["cost", combo[0], combo[1], str(seconds)], spec, 180)
        if combo[1] == "default":
            out[combo]["import_s"] = import_time(env, combo[0], 3 if quick else 7)
    return out


# --------------------------------------------------------------------------- tables
def _pct(x: float) -> str:
    return f"{100 * x:.2f} %" if abs(x) < 10 else f"{100 * x:.0f} %"


def _cell(res: Any) -> tuple[float | None, str]:
    """(worst |relative error| over the windows, text)."""
    if isinstance(res, dict):
        return None, "fails: " + res.get("error", "?")[:120]
    rels = [abs(r["rel"]) for r in res if r.get("rel") is not None]
    errors = [r["error"] for r in res if r.get("error")]
    if errors:
        return None, "fails: " + errors[0][:120]
    return max(rels), _pct(max(rels))


def error_table(rows: list[dict[str, Any]], combos, counter: bool) -> str:
    head = "| trace | " + " | ".join(f"{t} {c}" for t, c in combos) + " |"
    lines = [head, "| --- |" + " ---: |" * len(combos)]
    worst: dict[tuple[str, str], float] = {}
    for name in dict.fromkeys(r["trace"] for r in rows):
        cells = []
        for combo in combos:
            (row,) = [
                r
                for r in rows
                if r["trace"] == name and r["counter"] == counter and r["tool"] == combo
            ]
            value, text = _cell(row["windows"])
            if value is not None:
                worst[combo] = max(worst.get(combo, 0.0), value)
            cells.append(text)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append(
        "| **worst** | "
        + " | ".join(f"**{_pct(worst[c])}**" if c in worst else "—" for c in combos)
        + " |"
    )
    return "\n".join(lines)


def summary_table(rows, short, costs, combos) -> tuple[str, dict[str, Any]]:
    def worst(combo, counter):
        vals = []
        for r in rows:
            if r["tool"] == combo and r["counter"] == counter:
                value, text = _cell(r["windows"])
                if value is None:
                    return None, text
                vals.append(value)
        return (max(vals), _pct(max(vals))) if vals else (None, "not run")

    def fmt_short(counter, combo):
        lengths, res = short[(counter, combo)]
        value, why = shortest_within(lengths, res)
        return value, (f"{value:g} s" if value is not None else f"none ≤ 5 s ({why[:80]})")

    def fmt_ms(x):
        return "—" if x is None else (f"{1e3 * x:.1f} ms" if x < 10 else f"{x:.1f} s")

    head = "| row | " + " | ".join(f"{t} ({c})" for t, c in combos) + " |"
    lines = [head, "| --- |" + " ---: |" * len(combos)]
    facts: dict[str, Any] = {}
    spec_rows = [
        ("energy error, counter path (worst)", lambda c: worst(c, True)),
        ("energy error, power path (worst)", lambda c: worst(c, False)),
        ("shortest window within 5 %, counter", lambda c: fmt_short(True, c)),
        ("shortest window within 5 %, power", lambda c: fmt_short(False, c)),
    ]
    for label, fn in spec_rows:
        cells = []
        for combo in combos:
            value, text = fn(combo)
            facts[f"{label}|{combo}"] = value
            cells.append(text)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    def cost_cell(combo, key, fmt):
        data = costs.get(combo, {})
        if "error" in data:
            return "fails: " + data["error"][:80]
        value = data.get(key)
        facts[f"{key}|{combo}"] = value
        return fmt(value) if value is not None else "—"

    for label, key, fmt in (
        ("import time", "import_s", fmt_ms),
        ("construct + start + stop, first", "cycle_fresh_s", fmt_ms),
        ("construct + start + stop, repeated", "cycle_repeated_s", fmt_ms),
        ("background CPU (% of one core)", "background_cpu_pct", lambda x: f"{x:.3f} %"),
        ("peak RSS added", "rss_added_mib", lambda x: f"{x:.1f} MiB"),
    ):
        lines.append(f"| {label} | " + " | ".join(cost_cell(c, key, fmt) for c in combos) + " |")
    lines.insert(2, "| settings | " + " | ".join(SETTINGS[c] for c in combos) + " |")
    return "\n".join(lines), facts


def _replace_between_markers(path: Path, text: str) -> None:
    doc = path.read_text(encoding="utf-8")
    begin, end = "<!-- peers:begin -->", "<!-- peers:end -->"
    if begin not in doc or end not in doc:
        raise SystemExit(f"{path}: markers {begin} ... {end} not found")
    new = re.sub(
        re.escape(begin) + ".*?" + re.escape(end),
        lambda m: f"{begin}\n{text}\n{end}",
        doc,
        flags=re.S,
    )
    path.write_text(new, encoding="utf-8")


def write_docs(block: str, readme: str) -> None:
    """Rewrite the tables in docs/performance.md and the short one in README.md."""
    _replace_between_markers(REPO / "docs" / "performance.md", block)
    _replace_between_markers(REPO / "README.md", readme)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--tools", default=",".join(TOOLS), help="comma-separated subset of " + ",".join(TOOLS)
    )
    p.add_argument("--traces", default=None, help="comma-separated trace names (default: all)")
    p.add_argument("--quick", action="store_true", help="one window per trace, shorter cost runs")
    p.add_argument(
        "--venv", type=Path, default=None, help="venv for the peers (created if missing)"
    )
    p.add_argument(
        "--no-docs", action="store_true", help="do not rewrite docs/performance.md and README.md"
    )
    p.add_argument("--json", type=Path, default=None, help="also write every raw result here")
    args = p.parse_args(argv)
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = sorted(set(tools) - set(TOOLS))
    if unknown or "bertwatt" not in tools:
        p.error(f"--tools takes bertwatt plus any of {TOOLS[1:]}, got {args.tools!r}")
    names = list(traces(60.0))
    if args.traces:
        wanted = [n.strip() for n in args.traces.split(",")]
        names = [n for n in names if any(n.startswith(w) for w in wanted)]
        if not names:
            p.error(f"--traces matches none of {list(traces(60.0))}")
    combos = [(t, c) for t in tools for c in CONFIGS]
    started = time.monotonic()
    env = make_env(ensure_venv(args.venv, tools))
    print(f"peers venv ready ({time.monotonic() - started:.0f} s); energy windows...", flush=True)
    rows = energy_rows(env, combos, names, args.quick)
    print("shortest windows...", flush=True)
    short = shortest_rows(env, combos, args.quick)
    print("costs...", flush=True)
    costs = cost_rows(env, combos, args.quick)
    summary, _ = summary_table(rows, short, costs, combos)
    elapsed = time.monotonic() - started
    block = "\n\n".join(
        [
            f"Measured with `python benchmarks/peers/run.py{' --quick' if args.quick else ''}` "
            f"on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} ({elapsed / 60:.1f} min, "
            f"Python {sys.version.split()[0]}, peers pinned in "
            "`benchmarks/peers/requirements.txt`).",
            summary,
            "Energy error per trace, worst over the windows, **counter path** (the GPU has "
            "`nvmlDeviceGetTotalEnergyConsumption`):",
            error_table(rows, combos, True),
            "Energy error per trace, worst over the windows, **power path** (no energy counter):",
            error_table(rows, combos, False),
        ]
    )
    print(block)
    readme_combos = [(t, "default") for t in tools]
    readme, _ = summary_table(rows, short, costs, readme_combos)
    readme = (
        f"At each tool's defaults, measured with `python benchmarks/peers/run.py"
        f"{' --quick' if args.quick else ''}` on {time.strftime('%Y-%m-%d', time.gmtime())}"
        " (full tables in [docs/performance.md](docs/performance.md)):\n\n" + readme
    )
    print("\nREADME table (defaults):\n" + readme)
    if not args.no_docs:
        write_docs(block, readme)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "energy": [{**r, "tool": list(r["tool"])} for r in rows],
                    "short": {f"{k[0]}|{k[1][0]}|{k[1][1]}": v for k, v in short.items()},
                    "costs": {f"{k[0]}|{k[1]}": v for k, v in costs.items()},
                },
                indent=1,
            )
        )
    print(f"total {elapsed / 60:.1f} min", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
