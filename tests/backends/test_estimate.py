"""Tests for the labelled TDP x utilisation estimate and its packaged CPU TDP table.

psutil is real here; the few tests that need scripted CPU times or failures put a fake ``psutil``
module in ``sys.modules`` (the vendor-library boundary). CPU brand strings, sockets and the
hypervisor flag come from a real ``cpuinfo`` file in ``tmp_path``.
"""

from __future__ import annotations

import csv
import io
import math
import os
import subprocess
import sys
import threading
import time
import types
from collections import namedtuple
from importlib import resources
from pathlib import Path

import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bertwatt.backends.base import Backend, Channel
from bertwatt.backends.estimate import (
    DEFAULT_MEMORY_W_PER_GIB,
    FALLBACK_W_PER_LOGICAL_CPU,
    IDLE_FRACTION,
    EstimateBackend,
    TdpRecord,
    lookup_tdp,
)
from bertwatt.errors import ConfigError

SHARED_TABLE = Path("/work/shared/data/cpu_tdp.csv")
GIB = 1024**3
USABLE = len(os.sched_getaffinity(0))
HOST = psutil.cpu_count(logical=True)


def package_rows() -> list[dict[str, str]]:
    text = resources.files("bertwatt.backends").joinpath("data/cpu_tdp.csv").read_text("utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def cpuinfo(tmp_path: Path, model: str, sockets: int = 1, hypervisor: bool = False) -> Path:
    """A /proc/cpuinfo with two logical CPUs per socket."""
    flags = "fpu vme sse2" + (" hypervisor" if hypervisor else "")
    blocks = [
        f"processor\t: {2 * s + i}\nvendor_id\t: GenuineIntel\nmodel name\t: {model}\n"
        f"physical id\t: {s}\nflags\t\t: {flags}\n"
        for s in range(sockets)
        for i in range(2)
    ]
    path = tmp_path / "cpuinfo"
    path.write_text("\n".join(blocks), encoding="utf-8")
    return path


def probe_cpu(backend: EstimateBackend) -> Channel:
    av = backend.probe()
    assert av.ok, av.unavailable
    return av.channels[0]


def full_load_w(channel: Channel) -> float:
    assert channel.max_power_w is not None
    return channel.max_power_w


# --- the packaged table -------------------------------------------------------------------------


def test_package_table_has_source_and_year_on_every_row() -> None:
    rows = package_rows()
    assert list(rows[0]) == ["model", "tdp_watts", "source", "year"]
    assert all(r["source"].strip() and r["year"].strip() for r in rows)
    assert {r["year"] for r in rows} == {"unknown"}  # not established, so not invented
    assert {r["source"] for r in rows} == {
        "manufacturers' published TDP figures as compiled in public CPU power tables"
    }


@pytest.mark.skipif(not SHARED_TABLE.exists(), reason="shared reference data not on this machine")
def test_package_table_keeps_every_row_of_the_shared_table() -> None:
    with SHARED_TABLE.open(newline="", encoding="utf-8") as fh:
        shared = list(csv.DictReader(fh))
    rows = package_rows()
    assert len(rows) == len(shared) == 4918
    assert [(r["model"], r["tdp_watts"]) for r in rows] == [
        (r["model"], r["tdp_watts"]) for r in shared
    ]


# --- lookup_tdp ---------------------------------------------------------------------------------

REAL_BRAND_STRINGS = [
    # Intel server
    ("Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz", "Intel Xeon Gold 6248", 150.0),
    ("Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz", "Intel Xeon Gold 6248R", 205.0),
    ("Intel(R) Xeon(R) Platinum 8380 CPU @ 2.30GHz", "Intel Xeon Platinum 8380", 270.0),
    ("Intel(R) Xeon(R) Platinum 8480+", "Intel Xeon Platinum 8480+", 350.0),
    ("Intel(R) Xeon(R) Silver 4214 CPU @ 2.20GHz", "Intel Xeon Silver 4214", 85.0),
    ("Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz", "Intel Xeon E5-2680 v4", 120.0),
    ("Intel(R) Xeon(R) CPU E5-2680 v2 @ 2.80GHz", "Intel Xeon E5-2680 v2", 115.0),
    ("Intel(R) Xeon(R) CPU E5-2680 0 @ 2.70GHz", "Intel Xeon E5-2680", 130.0),
    ("Intel(R) Xeon(R) CPU E3-1240 V2 @ 3.40GHz", "Intel Xeon E3-1240 v2", 69.0),
    ("Intel(R) Xeon(R) W-2245 CPU @ 3.90GHz", "Intel Xeon W-2245", 155.0),
    # Intel client
    ("Intel(R) Core(TM) i7-8700K CPU @ 3.70GHz", "Intel Core i7-8700K", 95.0),
    ("Intel(R) Core(TM) i5-8250U CPU @ 1.60GHz", "Intel Core i5-8250U", 15.0),
    ("12th Gen Intel(R) Core(TM) i7-12700H", "Intel Core i7-12700H", 45.0),
    ("Intel(R) Core(TM) Ultra 7 155H", "Intel Core Ultra 7 155H", 28.0),
    ("Intel(R) Core(TM) i7 CPU         920  @ 2.67GHz", "Intel Core i7-920", 130.0),
    ("Intel(R) Core(TM)2 Duo CPU     E8400  @ 3.00GHz", "Intel Core 2 Duo E8400", 65.0),
    ("Intel(R) Pentium(R) CPU G4560 @ 3.50GHz", "Intel Pentium G4560", 54.0),
    ("Intel(R) Celeron(R) CPU N3350 @ 1.10GHz", "Intel Celeron N3350", 6.0),
    # AMD server
    ("AMD EPYC 7763 64-Core Processor", "AMD EPYC 7763", 280.0),
    ("AMD EPYC 9654 96-Core Processor", "AMD EPYC 9654", 360.0),
    ("AMD EPYC 7B12", "AMD EPYC 7B12", 240.0),
    ("AMD Opteron(tm) Processor 6276", "AMD Opteron 6276", 115.0),
    # AMD Ryzen and Threadripper
    ("AMD Ryzen 9 5950X 16-Core Processor", "AMD Ryzen 9 5950X", 105.0),
    ("AMD Ryzen 5 3600 6-Core Processor", "AMD Ryzen 5 3600", 65.0),
    ("AMD Ryzen 5 5600X 6-Core Processor", "AMD Ryzen 5 5600X", 65.0),
    ("AMD Ryzen 7 PRO 4750U with Radeon Graphics", "AMD Ryzen 7 PRO 4750U", 15.0),
    ("AMD Ryzen 7 7840HS w/ Radeon 780M Graphics", "AMD Ryzen 7 7840HS", 54.0),
    ("AMD Ryzen Threadripper 2950X 16-Core Processor", "AMD Ryzen Threadripper 2950X", 180.0),
    ("AMD Ryzen Threadripper 3990X 64-Core Processor", "AMD Ryzen Threadripper 3990X", 280.0),
    ("AMD Ryzen Threadripper PRO 5995WX 64-Cores", "AMD Ryzen Threadripper PRO 5995WX", 280.0),
    ("AMD Athlon(tm) 64 X2 Dual Core Processor 4200+", "AMD Athlon 64 X2 4200+", 89.0),
    # Apple, and table names typed by a user
    ("Apple M1", "Apple M1", 10.0),
    ("Apple M2 Pro", "Apple M2 Pro", 35.0),
    ("Xeon Gold 6248", "Intel Xeon Gold 6248", 150.0),
    ("EPYC 7763", "AMD EPYC 7763", 280.0),
]


@pytest.mark.parametrize(("brand", "model", "tdp_w"), REAL_BRAND_STRINGS)
def test_lookup_tdp_matches_real_brand_strings(brand: str, model: str, tdp_w: float) -> None:
    record = lookup_tdp(brand)
    assert record is not None
    assert (record.model, record.tdp_w) == (model, tdp_w)
    assert record.source.startswith("manufacturers' published TDP figures")
    assert record.year == "unknown"
    assert record.matched_on == "exact table name" or record.matched_on.startswith("model number")


@pytest.mark.parametrize(
    "brand",
    [
        "Intel(R) Xeon(R) Processor",  # this machine: a generic VM string
        "Intel(R) Xeon(R) CPU @ 2.20GHz",  # GCP's generic string
        "Intel Xeon",
        "Xeon",
        "AMD EPYC Processor",
        "Common KVM processor",
        "QEMU Virtual CPU version 2.5+",
        "x86_64",
        "",
        "AMD EPYC 7R32",  # AWS-only part, not in the table
        "12th Gen Intel(R) Core(TM) i7-12700",  # only 12700H and 12700K are: no near miss
        "Intel(R) Celeron(R) CPU 1000A",  # in the file without a usable figure
        "AMD Ryzen 9",
    ],
)
def test_lookup_tdp_refuses_generic_or_unknown_strings(brand: str) -> None:
    assert lookup_tdp(brand) is None


def test_lookup_tdp_never_changes_generation_or_variant() -> None:
    # a version or suffix the row lacks must not fall back to the bare model number
    assert lookup_tdp("Intel(R) Xeon(R) CPU E5-2680 v9 @ 2.40GHz") is None
    assert lookup_tdp("AMD Ryzen 5 3600X").tdp_w == 95.0  # type: ignore[union-attr]
    assert lookup_tdp("AMD Ryzen 5 3600").tdp_w == 65.0  # type: ignore[union-attr]
    assert lookup_tdp("Intel EPYC 7763") is None  # another vendor's model number


def usable_rows() -> list[dict[str, str]]:
    def usable(tdp: str) -> bool:
        try:
            return float(tdp) > 0
        except ValueError:
            return False

    return [r for r in package_rows() if usable(r["tdp_watts"])]


def test_every_row_is_found_by_its_exact_name() -> None:
    for r in usable_rows():
        record = lookup_tdp(f"  {r['model'].upper()} ")
        assert record is not None
        assert record.matched_on == "exact table name"
        # names equal up to case and spacing ("Intel Atom\xa0E625CT") tie to the higher TDP
        assert record.model.lower().split() == r["model"].lower().split()
        assert record.tdp_w >= float(r["tdp_watts"])


def test_every_row_with_a_model_number_is_found_through_the_token_match() -> None:
    missed, lower = [], []
    for r in usable_rows():
        record = lookup_tdp(f"{r['model']} CPU @ 2.00GHz")  # not a table name: token path
        if record is None:
            missed.append(r["model"])
        elif record.tdp_w < float(r["tdp_watts"]):
            lower.append((r["model"], record.model))  # a tie must take the higher TDP
        else:
            assert record.matched_on.startswith("model number")
    assert missed == ["Intel Aubrey Isle"]  # the one row without a model number
    assert lower == []


def test_rows_told_apart_only_by_a_note_tie_to_the_higher_tdp() -> None:
    assert lookup_tdp("AMD Phenom(tm) II X4 945 Processor").tdp_w == 125.0  # type: ignore[union-attr]
    assert lookup_tdp("AMD Phenom II X4 945 (95W)").tdp_w == 95.0  # type: ignore[union-attr]


INTEL_SERVER = [
    r["model"]
    for r in package_rows()
    if r["model"].startswith("Intel Xeon ")
    and any(c.isdigit() for c in r["model"])
    and float(r["tdp_watts"] or 0) > 0
    and " v" not in r["model"]
]


@settings(max_examples=150, deadline=None)
@given(
    model=st.sampled_from(INTEL_SERVER),
    ghz=st.floats(min_value=1.0, max_value=5.0),
    cpu_word=st.booleans(),
)
def test_intel_decorations_do_not_change_the_match(model: str, ghz: float, cpu_word: bool) -> None:
    plain = lookup_tdp(model)
    assert plain is not None
    brand = model.replace("Intel Xeon", "Intel(R) Xeon(R)") + (" CPU" if cpu_word else "")
    record = lookup_tdp(f"{brand} @ {ghz:.2f}GHz")
    assert record is not None
    assert record.tdp_w == plain.tdp_w


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_lookup_tdp_never_raises(text: str) -> None:
    record = lookup_tdp(text)
    assert record is None or (isinstance(record, TdpRecord) and record.tdp_w > 0)


# --- construction -------------------------------------------------------------------------------


def test_backend_meets_the_protocol() -> None:
    backend = EstimateBackend()
    assert isinstance(backend, Backend)
    assert (backend.name, backend.blocking) == ("estimate", False)
    assert backend.read() == ([], None)  # nothing probed yet: no channels, no invented zeros
    assert "utilisation='process'" in repr(backend)


def test_arguments_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        EstimateBackend(150)  # type: ignore[call-arg]


not_positive = st.one_of(
    st.floats(max_value=0.0),
    st.just(math.nan),
    st.just(math.inf),
    st.booleans(),
    st.text(max_size=5),
    st.none(),
)


@given(value=st.one_of(not_positive.filter(lambda v: v is not None), st.floats(min_value=2000.5)))
def test_bad_tdp_is_a_config_error(value: object) -> None:
    with pytest.raises(ConfigError, match="tdp_w"):
        EstimateBackend(tdp_w=value)  # type: ignore[arg-type]


@given(value=st.one_of(not_positive, st.floats(min_value=10.5)))
def test_bad_memory_w_per_gib_is_a_config_error(value: object) -> None:
    with pytest.raises(ConfigError, match="memory_w_per_gib"):
        EstimateBackend(memory_w_per_gib=value)  # type: ignore[arg-type]


@given(
    kwargs=st.one_of(
        st.fixed_dictionaries(
            {"utilisation": st.text().filter(lambda s: s not in ("system", "process"))}
        ),
        st.fixed_dictionaries({"utilisation": st.integers()}),
        st.fixed_dictionaries({"memory": st.one_of(st.integers(), st.text(), st.none())}),
        st.fixed_dictionaries(
            {"cpu_count": st.one_of(st.integers(max_value=0), st.floats(), st.booleans())}
        ),
        st.fixed_dictionaries({"cpu_model": st.one_of(st.just(""), st.just("  "), st.integers())}),
        st.fixed_dictionaries({"cpuinfo_path": st.integers()}),
    )
)
def test_other_bad_arguments_are_config_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError) as info:
        EstimateBackend(**kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith("estimate: ")
    assert next(iter(kwargs)) in str(info.value)


@given(tdp_w=st.floats(min_value=0.001, max_value=2000.0), cpu_count=st.integers(1, 4096))
def test_good_arguments_are_accepted(tdp_w: float, cpu_count: int) -> None:
    backend = EstimateBackend(tdp_w=tdp_w, cpu_count=cpu_count, utilisation="process")
    assert f"tdp_w={tdp_w!r}" in repr(backend)


# --- probe and read on this machine (real psutil) -----------------------------------------------

CPU_ASSUMPTIONS = {
    "cpu_model",
    "cpu_model_from",
    "detected_cpu_model",
    "logical_cpus_usable",
    "tdp_w",
    "tdp_source",
    "capacity_w",
    "utilisation",
    "power_model",
}
TABLE_ASSUMPTIONS = {"sockets", "logical_cpus_host", "share_of_packages"}


def test_fallback_is_labelled_with_its_source_and_fix(tmp_path: Path) -> None:
    path = cpuinfo(tmp_path, "Intel(R) Xeon(R) Processor", hypervisor=True)
    ch = probe_cpu(EstimateBackend(cpuinfo_path=path))
    prov = ch.provenance
    assert (ch.name, ch.domain, ch.kind, ch.counted) == ("cpu:estimate", "cpu", "power", True)
    assert (prov.kind, prov.scope) == ("estimated", "cpu-package")
    assert prov.source == "TDP x CPU utilisation (/proc)"  # process mode on Linux: no psutil
    assert set(prov.assumptions) == CPU_ASSUMPTIONS
    assert prov.assumptions["tdp_source"].startswith("fallback: CPU model not in table")
    assert "Green Algorithms" in prov.assumptions["tdp_source"]
    assert prov.assumptions["cpu_model"] == "'Intel(R) Xeon(R) Processor'"
    assert prov.assumptions["cpu_model_from"] == f"{path} 'model name'"
    capacity_w = FALLBACK_W_PER_LOGICAL_CPU * USABLE
    assert ch.max_power_w == capacity_w
    notes = " ".join(prov.notes)
    assert "NOT measured" in notes
    assert "chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj" in notes
    assert "nvidia-ml-py" in notes
    assert "not in bertwatt's TDP table" in notes and "EstimateBackend(tdp_w=" in notes
    assert "hypervisor" not in notes  # the fallback is already per usable CPU


def test_table_row_sockets_and_hypervisor(tmp_path: Path) -> None:
    brand = "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz"
    ch = probe_cpu(EstimateBackend(cpuinfo_path=cpuinfo(tmp_path, brand, sockets=2)))
    a = ch.provenance.assumptions
    assert set(a) == CPU_ASSUMPTIONS | TABLE_ASSUMPTIONS
    assert "table row 'Intel Xeon Gold 6248'" in a["tdp_source"]
    assert "year: unknown" in a["tdp_source"] and "source: manufacturers'" in a["tdp_source"]
    assert a["tdp_w"] == "150 per package"
    assert a["sockets"].startswith("2 (distinct 'physical id'")
    assert ch.max_power_w == pytest.approx(150.0 * 2 * USABLE / HOST)
    assert "TDP multiplied by 2 sockets." in ch.provenance.notes

    path = cpuinfo(tmp_path, brand, hypervisor=True)
    vm = probe_cpu(EstimateBackend(cpuinfo_path=path))
    assert any("hypervisor" in n and "cpu_count=" in n for n in vm.provenance.notes)
    scaled = probe_cpu(EstimateBackend(cpuinfo_path=path, cpu_count=80))
    assert scaled.max_power_w == pytest.approx(150.0 * USABLE / 80)
    assert scaled.provenance.assumptions["share_of_packages"] == f"{USABLE}/80 = {USABLE / 80:.4g}"
    assert not any("hypervisor" in n for n in scaled.provenance.notes)


def test_overrides_are_recorded(tmp_path: Path) -> None:
    path = cpuinfo(tmp_path, "Intel(R) Xeon(R) Processor")
    ch = probe_cpu(EstimateBackend(tdp_w=100.0, cpuinfo_path=path))
    assert ch.provenance.assumptions["tdp_source"] == "user override: EstimateBackend(tdp_w=100)"
    assert ch.max_power_w == pytest.approx(100.0 * USABLE / HOST)
    ch = probe_cpu(EstimateBackend(cpu_model="AMD EPYC 7763", cpuinfo_path=path))
    a = ch.provenance.assumptions
    assert a["cpu_model_from"] == "constructor argument"
    assert a["detected_cpu_model"] == "'Intel(R) Xeon(R) Processor'"
    assert "table row 'AMD EPYC 7763'" in a["tdp_source"]


def test_real_cpuinfo_is_labelled_consistently() -> None:
    ch = probe_cpu(EstimateBackend())
    a = ch.provenance.assumptions
    model = a["cpu_model"].strip("'")
    if lookup_tdp(model) is None:
        assert a["tdp_source"].startswith("fallback: CPU model not in table")
    else:
        assert a["tdp_source"].startswith("table row")


@pytest.mark.parametrize("mode", ["system", "process"])
def test_power_stays_within_the_model_range(tmp_path: Path, mode: str) -> None:
    path = cpuinfo(tmp_path, "AMD EPYC 7763 64-Core Processor")
    backend = EstimateBackend(utilisation=mode, cpuinfo_path=path)  # type: ignore[arg-type]
    capacity_w = full_load_w(probe_cpu(backend))
    floor_w = capacity_w * IDLE_FRACTION if mode == "system" else 0.0
    for _ in range(4):
        values, errors = backend.read()  # the first read may come right after probe()
        assert errors is None
        assert floor_w <= values[0] <= capacity_w
        time.sleep(0.03)
    backend.close()


def test_busy_thread_raises_process_power() -> None:
    backend = EstimateBackend(utilisation="process", tdp_w=100.0)
    capacity_w = full_load_w(probe_cpu(backend))
    time.sleep(0.2)
    start = time.monotonic()
    idle_w = backend.read()[0][0]
    spun_s: list[float] = []

    def spin() -> None:
        # Spin until this thread got 0.15 s of CPU, however long a busy machine takes to give
        # it (a fixed 0.3 s of wall time got 27 ms of CPU beside two CPU-bound processes).
        give_up = time.monotonic() + 60.0
        while time.thread_time() < 0.15 and time.monotonic() < give_up:
            pass
        spun_s.append(time.thread_time())

    worker = threading.Thread(target=spin)
    worker.start()
    worker.join()
    busy_w = backend.read()[0][0]
    window_s = time.monotonic() - start
    # the window holds at least the spinning thread's CPU time (psutil ticks are 10 ms)
    assert spun_s[0] >= 0.15
    assert busy_w >= capacity_w * (spun_s[0] - 0.02) / (window_s * USABLE)
    assert idle_w < busy_w <= capacity_w


def test_memory_channel_uses_installed_memory_or_rss() -> None:
    backend = EstimateBackend(memory=True, utilisation="system")
    av = backend.probe()
    assert [c.name for c in av.channels] == ["cpu:estimate", "dram:estimate"]
    dram = av.channels[1]
    assert (dram.domain, dram.kind, dram.counted) == ("dram", "power", True)
    assert (dram.provenance.kind, dram.provenance.scope) == ("estimated", "dram")
    assert set(dram.provenance.assumptions) == {"w_per_gib", "memory"}
    assert "Crucial" in dram.provenance.assumptions["w_per_gib"]
    assert "NOT measured" in " ".join(dram.provenance.notes)
    total_w = psutil.virtual_memory().total / GIB * DEFAULT_MEMORY_W_PER_GIB
    assert backend.read()[0][1] == pytest.approx(total_w)

    doubled = EstimateBackend(memory=True, memory_w_per_gib=0.75, utilisation="system")
    doubled.probe()
    assert doubled.read()[0][1] == pytest.approx(2 * total_w)

    proc = EstimateBackend(memory=True, utilisation="process", memory_w_per_gib=1.0)
    proc.probe()
    rss_w = psutil.Process().memory_info().rss / GIB
    assert proc.read()[0][1] == pytest.approx(rss_w, rel=0.2)
    assert "constructor argument" in proc.probe().channels[1].provenance.assumptions["w_per_gib"]


def test_close_then_probe_again() -> None:
    backend = EstimateBackend()
    backend.probe()
    backend.close()
    assert backend.read() == ([], None)
    assert backend.probe().ok
    assert len(backend.read()[0]) == 1


def test_pinned_to_one_cpu_takes_that_share(tmp_path: Path) -> None:
    if HOST < 2:
        pytest.skip("needs two CPUs")
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {0})
    try:
        path = cpuinfo(tmp_path, "AMD EPYC 7763 64-Core Processor")
        ch = probe_cpu(EstimateBackend(cpuinfo_path=path, utilisation="system"))
    finally:
        os.sched_setaffinity(0, before)
    a = ch.provenance.assumptions
    assert ch.max_power_w == pytest.approx(280.0 / HOST)
    assert a["logical_cpus_usable"] == "1 (os.sched_getaffinity)"
    assert a["utilisation"].startswith("busy share of CPUs [0]")


def test_importing_the_module_does_not_import_psutil() -> None:
    code = "import sys, bertwatt.backends.estimate; print('psutil' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- scripted CPU times and failures through a fake psutil --------------------------------------

CpuTimes = namedtuple("CpuTimes", "user nice system idle iowait irq softirq steal guest guest_nice")
ProcTimes = namedtuple("ProcTimes", "user system children_user children_system")


class FakePsutilError(Exception):
    pass


def fake_psutil(script: list[CpuTimes | Exception]) -> types.ModuleType:
    """A psutil with scripted aggregate CPU times; anything else answers for a 2-CPU box."""
    mod = types.ModuleType("psutil")
    calls = iter(script)

    def cpu_times(percpu: bool = False) -> object:
        if percpu:
            return [CpuTimes(0, 0, 0, 1, 0, 0, 0, 0, 0, 0)] * 2
        item = next(calls)
        if isinstance(item, Exception):
            raise item
        return item

    class Process:
        def cpu_times(self) -> ProcTimes:
            raise FakePsutilError("process vanished")

    mod.Error = FakePsutilError  # type: ignore[attr-defined]
    mod.cpu_times = cpu_times  # type: ignore[attr-defined]
    mod.cpu_count = lambda logical=True: 2  # type: ignore[attr-defined]
    mod.Process = Process  # type: ignore[attr-defined]
    return mod


def times(busy: float, idle: float, steal: float = 0.0, guest: float = 0.0) -> CpuTimes:
    """Aggregate CPU times; as on Linux, ``guest`` is part of ``user`` (here: of ``busy``)."""
    return CpuTimes(busy, 0, 0, idle, 0, 0, 0, steal, guest, 0)


def test_utilisation_follows_cpu_time_deltas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script: list[CpuTimes | Exception] = [
        times(1, 1),  # probe(): one sample, no sleep (50 % busy since boot)
        times(4, 2, steal=1.0, guest=3.0),  # +3 busy, +1 idle, +1 steal: 3/5; guest once
        FakePsutilError("cpu_times failed"),
        times(4, 12),  # +0 busy since the last good read
    ]
    monkeypatch.setitem(sys.modules, "psutil", fake_psutil(script))
    path = cpuinfo(tmp_path, "AMD EPYC 7763 64-Core Processor")
    backend = EstimateBackend(cpuinfo_path=path, tdp_w=100.0, utilisation="system")
    capacity_w = full_load_w(probe_cpu(backend))
    assert capacity_w == pytest.approx(100.0 * USABLE / 2)

    def power(u: float) -> float:
        return capacity_w * (IDLE_FRACTION + (1 - IDLE_FRACTION) * u)

    time.sleep(0.025)
    assert backend.read() == ([pytest.approx(power(3 / 5))], None)
    # reads closer than 20 ms repeat the last utilisation without touching psutil
    assert backend.read() == ([pytest.approx(power(3 / 5))], None)
    time.sleep(0.025)
    values, errors = backend.read()  # a psutil failure: nan and the reason, never an exception
    assert math.isnan(values[0])
    assert errors == {0: "cpu:estimate: FakePsutilError: cpu_times failed"}
    time.sleep(0.025)
    assert backend.read() == ([pytest.approx(power(0.0))], None)


def test_psutil_failures_in_probe_are_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psutil", fake_psutil([FakePsutilError("no /proc/stat")]))
    av = EstimateBackend(utilisation="system").probe()
    assert not av.ok
    assert av.unavailable[0].what == "estimate"
    assert "no /proc/stat" in av.unavailable[0].reason

    # process mode answers from /proc without psutil; where /proc cannot be read, psutil answers
    monkeypatch.setitem(sys.modules, "psutil", fake_psutil([]))
    av = EstimateBackend(utilisation="process", procfs_path="/nonexistent/proc").probe()
    assert not av.ok and "process vanished" in av.unavailable[0].reason


def test_missing_psutil_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psutil", None)
    av = EstimateBackend(utilisation="system").probe()
    assert not av.ok
    assert av.unavailable[0].fix == "pip install psutil"


# --- process mode on Linux: os.times() and a fake /proc tree, psutil not imported -------------


def _fake_proc(root: Path, kid_ticks: int) -> int:
    """A /proc tree in ``root``: this process (stat, one task listing a child), a child with
    ``kid_ticks`` of CPU time, and uptime. Returns the child's pid."""
    kid = 4_000_000  # above any real pid_max: cannot collide with a live process
    me = root / str(os.getpid())
    (me / "task" / "1").mkdir(parents=True)
    (me / "task" / "1" / "children").write_text(f"{kid} ")
    # proc(5): pid (comm) state, then fields 4.. ; starttime is field 22
    fields = ["S"] + ["0"] * 18 + ["100"] + ["0"] * 30
    (me / "stat").write_text(f"{os.getpid()} (py thon) " + " ".join(fields))
    (root / "uptime").write_text("1000.00 1900.00\n")
    _write_kid(root, kid, kid_ticks)
    return kid


def _write_kid(root: Path, kid: int, ticks: int) -> None:
    (root / str(kid)).mkdir(exist_ok=True)
    fields = ["R", "1"] + ["0"] * 9 + [str(ticks), "0", "0", "0"] + ["0"] * 30
    (root / str(kid) / "stat").write_text(f"{kid} (burn (x)) " + " ".join(fields))


def test_process_tree_from_procfs_without_psutil(tmp_path: Path) -> None:
    hz = os.sysconf("SC_CLK_TCK")
    kid = _fake_proc(tmp_path, kid_ticks=5 * hz)
    # this machine's /proc, in a fresh process: psutil is not imported by process mode
    code = (
        "import sys\n"
        "from bertwatt.backends.estimate import EstimateBackend\n"
        "av = EstimateBackend(tdp_w=100.0).probe()\n"
        "print(av.ok, 'psutil' in sys.modules, av.channels[0].provenance.source)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split(None, 2) == ["True", "False", "TDP x CPU utilisation (/proc)\n"]

    backend = EstimateBackend(procfs_path=tmp_path, tdp_w=100.0, cpu_count=USABLE)
    ch = probe_cpu(backend)
    assert "/proc/<pid>/stat" in ch.provenance.assumptions["utilisation"]
    capacity_w = full_load_w(ch)
    time.sleep(0.2)
    _write_kid(tmp_path, kid, 6 * hz)  # the child used 1 more CPU second in 0.2 s of wall time
    values, errors = backend.read()
    assert errors is None
    assert values[0] == pytest.approx(min(1.0, 1.0 / (0.2 * USABLE)) * capacity_w, rel=0.35)
    (tmp_path / str(kid) / "stat").unlink()  # the child is gone (not yet reaped): no error,
    time.sleep(0.05)  # and the tree's CPU time never goes backwards (no negative power)
    values, errors = backend.read()
    assert errors is None and 0.0 <= values[0] < capacity_w


def test_tdp_lookup_reads_only_the_lines_it_needs() -> None:
    from bertwatt.backends import tdp

    # every table name finds its own row, whatever its case and runs of blanks
    assert lookup_tdp("intel   XEON gold 6248") == lookup_tdp("Intel Xeon Gold 6248")
    assert lookup_tdp("INTEL AUBREY ISLE") is not None  # a name without any digit
    # a model number matches whole runs of digits only: 6248 is not 62480 or 16248
    lines = tdp._lines_containing("6248", digits=True)
    assert lines and all("6248" in line for line in lines)
    assert not any("62480" in line or "16248" in line for line in lines if line.count("6248") == 1)
    # the table is parsed lazily, line by line: nothing is normalised but the lines found
    tdp._row.cache_clear()
    lookup_tdp.cache_clear()
    lookup_tdp("Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz")
    assert 0 < tdp._row.cache_info().currsize < 50
