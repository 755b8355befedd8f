"""The estimate's default attribution: this process tree (the children it starts included).

On a shared machine, ``utilisation="system"`` charged every other user's load to the window: a
``sleep 3`` was charged 71 J at 23.7 W (issue #11). The default, ``"process"``, charges the CPU
time of this process and every process it starts, so a busy child is counted and a sleeping one
is not. Real psutil, real child processes.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from bertwatt import EnergyMeter
from bertwatt.backends.estimate import EstimateBackend


def _burn(cpu_s: float) -> list[str]:
    code = f"import time\nt = time.process_time()\nwhile time.process_time() - t < {cpu_s}: pass\n"
    return [sys.executable, "-c", code]


def _capacity_per_cpu_w(assumptions: dict[str, str]) -> float:
    capacity = float(assumptions["capacity_w"].split()[0])
    return capacity / int(assumptions["logical_cpus_usable"].split()[0])


def test_the_default_is_this_process_tree() -> None:
    backend = EstimateBackend()
    assert "utilisation='process'" in repr(backend)


@pytest.mark.filterwarnings("ignore::bertwatt.errors.EstimateWarning")
def test_a_busy_child_is_charged_to_the_window() -> None:
    with EnergyMeter(backends=[EstimateBackend(tdp_w=100.0, cpu_count=2)]) as m:
        subprocess.run(_burn(0.6), check=True)
        time.sleep(0.3)  # a few sampler reads after the child is gone
    ch = m.report.channel("cpu:estimate")
    assert "process tree" in ch.provenance.assumptions["utilisation"]
    # 0.6 CPU s of the child at capacity / usable CPUs per CPU second (psutil ticks are 10 ms)
    per_cpu_w = _capacity_per_cpu_w(ch.provenance.assumptions)
    assert ch.energy_j is not None and ch.energy_j >= per_cpu_w * 0.55


@pytest.mark.filterwarnings("ignore::bertwatt.errors.EstimateWarning")
def test_a_sleeping_child_is_charged_almost_nothing() -> None:
    sleeper = [sys.executable, "-c", "import time; time.sleep(1.0)"]
    with EnergyMeter(backends=[EstimateBackend(tdp_w=100.0, cpu_count=2)]) as m:
        subprocess.run(sleeper, check=True)
    ch = m.report.channel("cpu:estimate")
    per_cpu_w = _capacity_per_cpu_w(ch.provenance.assumptions)
    # the interpreter's start-up costs some CPU time; far below one busy CPU for the window
    assert ch.energy_j is not None and ch.energy_j < 0.3 * per_cpu_w * m.report.duration_s
    assert not any("whole machine" in w for w in m.report.warnings)
