"""RAPLBackend against real powercap-shaped file trees built by FakePowercapTree."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bertwatt.backends.base import Backend
from bertwatt.backends.rapl import (
    DEFAULT_MAX_POWER_W,
    MIN_MAX_POWER_W,
    UPDATE_PERIOD_S,
    RAPLBackend,
)
from bertwatt.errors import ConfigError, SensorReadError
from bertwatt.testing.powercap import DEFAULT_MAX_ENERGY_RANGE_UJ, FakePowercapTree

NOBODY = 65534


@pytest.fixture
def tree(tmp_path: Path) -> FakePowercapTree:
    """One socket with core/uncore/dram sub-zones, plus psys: a typical Intel laptop."""
    fake = FakePowercapTree(tmp_path / "powercap")
    fake.add_package(0)
    fake.add_psys()
    return fake


@pytest.fixture
def backend(tree: FakePowercapTree) -> Iterator[RAPLBackend]:
    rapl = RAPLBackend(tree.root)
    yield rapl
    rapl.close()


def names(backend: RAPLBackend) -> list[str]:
    return [channel.name for channel in backend.probe().channels]


def by_name(backend: RAPLBackend) -> dict[str, Any]:
    return {channel.name: channel for channel in backend.probe().channels}


# ------------------------------------------------------------------------------- discovery


def test_discovers_packages_subzones_dram_and_psys(tmp_path: Path) -> None:
    fake = FakePowercapTree(tmp_path)
    fake.add_package(0)
    fake.add_package(1)
    fake.add_psys()
    rapl = RAPLBackend(tmp_path)
    availability = rapl.probe()
    assert availability.ok and availability.unavailable == ()
    table = [
        (c.name, c.domain, c.provenance.scope, c.counted, c.parent) for c in availability.channels
    ]
    assert table == [
        ("cpu:package-0", "cpu", "cpu-package", True, None),
        ("cpu:core-0", "cpu", "cpu-core", False, "cpu:package-0"),
        ("cpu:uncore-0", "cpu", "cpu-uncore", False, "cpu:package-0"),
        ("dram:0", "dram", "dram", True, None),
        ("cpu:package-1", "cpu", "cpu-package", True, None),
        ("cpu:core-1", "cpu", "cpu-core", False, "cpu:package-1"),
        ("cpu:uncore-1", "cpu", "cpu-uncore", False, "cpu:package-1"),
        ("dram:1", "dram", "dram", True, None),
        ("platform:psys", "platform", "platform", False, None),
    ]
    assert all(c.kind == "counter" for c in availability.channels)
    rapl.close()


def test_subzones_seen_nested_and_at_top_level_are_read_once(tree: FakePowercapTree) -> None:
    # The fake, like /sys/class/powercap, lists intel-rapl:0:2 at the top level and nested.
    assert (tree.root / "intel-rapl:0:2").is_symlink()
    assert (tree.root / "intel-rapl:0" / "intel-rapl:0:2").is_dir()
    flat = RAPLBackend(tree.root)
    nested = RAPLBackend(tree.root / "intel-rapl")  # the control-type dir, as Zeus reads it
    assert names(flat) == names(nested)
    assert len(names(flat)) == len(set(names(flat))) == len(tree.zones)
    paths = {c.name: c.info["path"] for c in nested.probe().channels}
    assert paths["dram:0"] == str(tree.root / "intel-rapl" / "intel-rapl:0" / "intel-rapl:0:2")
    flat.close()
    nested.close()


def test_zone_names_not_indexes_decide_the_channel(tmp_path: Path) -> None:
    fake = FakePowercapTree(tmp_path)
    fake.add_package(0, subzones=("dram",))  # server layout: dram at intel-rapl:0:0
    channels = by_name(RAPLBackend(tmp_path))
    assert set(channels) == {"cpu:package-0", "dram:0"}
    assert channels["dram:0"].info["zone"] == "intel-rapl:0:0"
    assert channels["dram:0"].counted


def test_multi_die_packages_keep_their_die_in_the_name(tmp_path: Path) -> None:
    fake = FakePowercapTree(tmp_path)
    fake.add_package(0, name="package-0-die-0", subzones=("dram",))
    fake.add_package(1, name="package-0-die-1", subzones=("dram",))
    assert names(RAPLBackend(tmp_path)) == [
        "cpu:package-0-die-0",
        "dram:0-die-0",
        "cpu:package-0-die-1",
        "dram:0-die-1",
    ]


@pytest.mark.parametrize(
    ("subzones", "expected"),
    [((), ["cpu:package-0"]), (("core",), ["cpu:package-0", "cpu:core-0"])],
)
def test_amd_style_trees(tmp_path: Path, subzones: tuple[str, ...], expected: list[str]) -> None:
    fake = FakePowercapTree(tmp_path)
    fake.add_package(0, subzones=subzones)
    fake.set_energy("intel-rapl:0", 7_000_000)
    rapl = RAPLBackend(tmp_path)
    assert names(rapl) == expected
    assert rapl.read()[0][0] == 7.0
    rapl.close()


def test_mmio_duplicate_of_the_package_is_ignored(tree: FakePowercapTree) -> None:
    tree.add_package(0, control_type="intel-rapl-mmio", subzones=())
    channels = by_name(RAPLBackend(tree.root))
    assert channels["cpu:package-0"].info["zone"] == "intel-rapl:0"
    assert not any("mmio" in c.info["zone"] for c in channels.values())


def test_mmio_is_read_when_it_is_the_only_interface(tmp_path: Path) -> None:
    fake = FakePowercapTree(tmp_path)
    fake.add_package(0, control_type="intel-rapl-mmio", subzones=())
    (channel,) = RAPLBackend(tmp_path).probe().channels
    assert channel.name == "cpu:package-0"
    assert channel.info["zone"] == "intel-rapl-mmio:0"
    assert "intel-rapl-mmio" in channel.provenance.source
    assert any("no intel-rapl (MSR) zones" in note for note in channel.provenance.notes)


def test_dangling_zone_symlink_is_reported(tree: FakePowercapTree) -> None:
    os.symlink("nowhere", tree.root / "intel-rapl:5")
    availability = RAPLBackend(tree.root).probe()
    assert "cpu:package-0" in [c.name for c in availability.channels]
    (problem,) = availability.unavailable
    assert problem.what == "rapl:intel-rapl:5"
    assert str(tree.root / "intel-rapl:5") in problem.reason and "dangling" in problem.reason


# --------------------------------------------------------------------------- filters


def test_zones_selects_channels_by_name(tree: FakePowercapTree) -> None:
    rapl = RAPLBackend(tree.root, zones=["dram:0", "cpu:package-0"])
    assert names(rapl) == ["cpu:package-0", "dram:0"]


def test_zones_naming_a_missing_channel_is_unavailable(tree: FakePowercapTree) -> None:
    availability = RAPLBackend(tree.root, zones=["cpu:package-0", "dram:7"]).probe()
    assert [c.name for c in availability.channels] == ["cpu:package-0"]
    (problem,) = availability.unavailable
    assert problem.what == "rapl:dram:7"
    assert str(tree.root) in problem.reason and "dram:0" in problem.reason


def test_include_flags(tree: FakePowercapTree) -> None:
    without_parts = names(RAPLBackend(tree.root, include_subzones=False))
    assert without_parts == ["cpu:package-0", "dram:0", "platform:psys"]  # DRAM is not a part
    assert "platform:psys" not in names(RAPLBackend(tree.root, include_psys=False))


# ------------------------------------------------------------------------ values and units


def test_values_are_joules_of_the_raw_counter(tree: FakePowercapTree) -> None:
    tree.set_energy("intel-rapl:0", 123_456_789)
    tree.set_energy("intel-rapl:0:2", 5)
    rapl = RAPLBackend(tree.root)
    channels = rapl.probe().channels
    values, errors = rapl.read()
    assert errors is None
    got = dict(zip([c.name for c in channels], values, strict=True))
    assert got["cpu:package-0"] == pytest.approx(123.456789, abs=1e-12)
    assert got["dram:0"] == pytest.approx(5e-6, abs=1e-15)
    assert got["cpu:core-0"] == 0.0
    rapl.close()


def test_counter_is_not_unwrapped_and_wrap_j_is_the_range(tmp_path: Path) -> None:
    fake = FakePowercapTree(tmp_path)
    fake.add_package(0, subzones=(), max_energy_range_uj=1_000_000, energy_uj=900_000)
    rapl = RAPLBackend(tmp_path)
    (channel,) = rapl.probe().channels
    assert channel.wrap_j == 1.0
    assert rapl.read()[0] == [0.9]
    fake.add_energy("intel-rapl:0", 0.3)
    assert rapl.read()[0] == [pytest.approx(0.2)]
    rapl.close()


def test_info_and_provenance(backend: RAPLBackend, tree: FakePowercapTree) -> None:
    channels = by_name(backend)
    package = channels["cpu:package-0"]
    assert package.info["path"] == str(tree.root / "intel-rapl:0")
    assert package.info["zone"] == "intel-rapl:0"
    assert package.info["zone_name"] == "package-0"
    assert package.info["max_energy_range_uj"] == str(DEFAULT_MAX_ENERGY_RANGE_UJ)
    assert package.wrap_j == DEFAULT_MAX_ENERGY_RANGE_UJ / 1e6
    for channel in channels.values():
        provenance = channel.provenance
        assert provenance.kind == "measured"
        assert provenance.source == "Linux powercap (intel-rapl) energy_uj"
        assert provenance.update_period_s == UPDATE_PERIOD_S == 1e-3
        assert provenance.resolution_j == 1e-6
        assert provenance.method and provenance.notes
    assert any("excludes DRAM" in note for note in package.provenance.notes)
    assert any("never added" in n for n in channels["platform:psys"].provenance.notes)


def test_max_power_comes_from_constraints_with_headroom(tmp_path: Path) -> None:
    fake = FakePowercapTree(tmp_path)
    # powercap/raplcap#14: max_power_uw (55 W) below the configured limit (135 W).
    fake.add_package(0, max_power_uw=55_000_000, power_limit_uw=135_000_000)
    fake.add_package(1, power_limit_uw=1_000_000, subzones=())
    fake.add_package(2, subzones=("dram",))
    channels = by_name(RAPLBackend(tmp_path))
    assert channels["cpu:package-0"].max_power_w == 270.0
    assert channels["cpu:core-0"].max_power_w == 270.0  # inside the package: same bound
    assert channels["cpu:package-1"].max_power_w == MIN_MAX_POWER_W
    assert channels["cpu:package-2"].max_power_w == DEFAULT_MAX_POWER_W
    assert channels["dram:2"].max_power_w == DEFAULT_MAX_POWER_W
    assert "constraint_0_power_limit_uw" in channels["cpu:package-0"].info["max_power_w_source"]


def test_unreadable_constraint_file_is_skipped(tmp_path: Path) -> None:
    fake = FakePowercapTree(tmp_path)
    fake.add_package(0, subzones=())
    (fake.path("intel-rapl:0") / "constraint_1_max_power_uw").mkdir()  # reads fail (EISDIR)
    (channel,) = RAPLBackend(tmp_path).probe().channels
    assert channel.max_power_w == DEFAULT_MAX_POWER_W


# ------------------------------------------------------------------------ not available


def test_missing_root_is_unavailable_with_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "no-powercap"
    availability = RAPLBackend(missing).probe()
    assert not availability.ok
    (problem,) = availability.unavailable
    assert problem.what == "rapl"
    assert str(missing) in problem.reason and "does not exist" in problem.reason
    assert problem.fix is not None and "modprobe intel_rapl_msr" in problem.fix


def test_root_without_rapl_zones_lists_what_it_found(tmp_path: Path) -> None:
    (tmp_path / "dtpm").mkdir()
    (problem,) = RAPLBackend(tmp_path).probe().unavailable
    assert problem.reason == f"no intel-rapl power zones under {tmp_path} (found: dtpm)"


def test_root_that_is_a_file_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    (problem,) = RAPLBackend(tmp_path / "file").probe().unavailable
    assert "is not a directory" in problem.reason


def test_default_root_on_this_machine_never_raises() -> None:
    rapl = RAPLBackend()
    availability = rapl.probe()
    if not os.path.isdir("/sys/class/powercap"):
        assert not availability.ok
        assert "/sys/class/powercap" in availability.unavailable[0].reason
    rapl.close()


@pytest.mark.parametrize(
    ("attr", "text", "zone", "what"),
    [
        ("energy_uj", "garbage\n", "intel-rapl:0:2", "rapl:dram:0"),
        ("energy_uj", "-5\n", "intel-rapl:0:2", "rapl:dram:0"),
        ("energy_uj", "1" * 40, "intel-rapl:0:2", "rapl:dram:0"),
        ("max_energy_range_uj", "0\n", "intel-rapl:0:1", "rapl:cpu:uncore-0"),
        ("max_energy_range_uj", "lots\n", "intel-rapl:0:1", "rapl:cpu:uncore-0"),
    ],
)
def test_malformed_files_are_unavailable_naming_the_file(
    tree: FakePowercapTree, attr: str, text: str, zone: str, what: str
) -> None:
    tree.corrupt(zone, text, attr=attr)
    availability = RAPLBackend(tree.root).probe()
    (problem,) = availability.unavailable
    assert problem.what == what
    assert str(tree.path(zone) / attr) in problem.reason and "malformed" in problem.reason
    assert len(availability.channels) == len(tree.zones) - 1


def test_unnamed_package_takes_its_subzones_with_it(tree: FakePowercapTree) -> None:
    tree.corrupt("intel-rapl:0", "\n", attr="name")
    availability = RAPLBackend(tree.root).probe()
    assert [c.name for c in availability.channels] == ["platform:psys"]
    whats = [p.what for p in availability.unavailable]
    assert whats == [
        "rapl:intel-rapl:0",
        "rapl:intel-rapl:0:0",
        "rapl:intel-rapl:0:1",
        "rapl:intel-rapl:0:2",
    ]
    assert str(tree.path("intel-rapl:0") / "name") in availability.unavailable[0].reason


def test_other_os_errors_carry_the_errno(tree: FakePowercapTree) -> None:
    energy = tree.path("intel-rapl:0:1") / "energy_uj"
    energy.unlink()
    energy.mkdir()  # opens fine, every read fails with EISDIR
    (problem,) = RAPLBackend(tree.root).probe().unavailable
    assert problem.what == "rapl:cpu:uncore-0"
    assert str(energy) in problem.reason and "EISDIR" in problem.reason


# ----------------------------------------------------------------------- permission denied


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A directory an unprivileged user can traverse (pytest's tmp_path parent is mode 0700)."""
    path = Path(tempfile.mkdtemp(prefix="bertwatt-rapl-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path)


def as_unprivileged_user(func: Callable[[], Any]) -> Any:
    """Run ``func`` as uid/gid 65534 in a forked child when we are root; else run it here.

    Root bypasses file modes, so a denied ``energy_uj`` only fails for an unprivileged reader.
    The child is a fork of this interpreter, so it runs the same, already imported, code.
    """
    if os.geteuid() != 0:
        return func()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        status = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            payload = json.dumps(func()).encode()
            status = 0
        except BaseException as err:
            payload = json.dumps({"child error": repr(err)}).encode()
        finally:
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(payload)
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    _, wait_status = os.waitpid(pid, 0)
    result = json.loads(data)
    assert os.waitstatus_to_exitcode(wait_status) == 0, result
    return result


def test_permission_denied_names_the_file_cve_and_chmod_fix(shared_tmp: Path) -> None:
    fake = FakePowercapTree(shared_tmp / "powercap")
    fake.add_package(0)
    fake.deny("intel-rapl:0")
    fake.deny("intel-rapl:0:2")

    def probe() -> dict[str, Any]:
        rapl = RAPLBackend(fake.root)
        availability = rapl.probe()
        values, errors = rapl.read()
        rapl.close()
        return {
            "channels": [c.name for c in availability.channels],
            "problems": [[p.what, p.reason, p.fix] for p in availability.unavailable],
            "values": values,
            "errors": errors,
        }

    result = as_unprivileged_user(probe)
    root = fake.root
    assert result["channels"] == ["cpu:core-0", "cpu:uncore-0"]  # the rest still reads
    assert result["values"] == [0.0, 0.0] and result["errors"] is None
    (what0, reason0, fix0), (what2, reason2, fix2) = result["problems"]
    assert (what0, what2) == ("rapl:cpu:package-0", "rapl:dram:0")
    assert reason0 == (
        f"cannot open {root}/intel-rapl:0/energy_uj: "
        "permission denied; root-only since Linux 5.10 (CVE-2020-8694)"
    )
    assert reason2.startswith(f"cannot open {root}/intel-rapl:0:2/energy_uj: permission denied")
    assert fix0 == fix2
    assert fix0.startswith(
        f"`sudo chmod a+r {root}/intel-rapl:*/energy_uj {root}/intel-rapl:*:*/energy_uj`"
    )
    assert "reboot" in fix0 and "udev" in fix0


def test_chmod_fix_follows_the_layout_of_the_root(shared_tmp: Path) -> None:
    fake = FakePowercapTree(shared_tmp / "powercap")
    fake.add_package(0)
    fake.deny("intel-rapl:0:2")
    root = fake.root / "intel-rapl"

    def probe() -> list[str | None]:
        return [p.fix for p in RAPLBackend(root).probe().unavailable]

    (fix,) = as_unprivileged_user(probe)
    assert fix.startswith(f"`sudo chmod a+r {root}/intel-rapl:*/intel-rapl:*:*/energy_uj`")


@pytest.mark.skipif(os.geteuid() != 0, reason="only root bypasses file modes")
def test_root_still_reads_a_denied_counter(tree: FakePowercapTree) -> None:
    tree.deny("intel-rapl:0")
    assert "cpu:package-0" in names(RAPLBackend(tree.root))


# ------------------------------------------------------------------------- failures mid-run


def test_zone_removed_mid_run_gives_nan_and_message_others_still_read(
    backend: RAPLBackend, tree: FakePowercapTree
) -> None:
    order = names(backend)
    tree.add_energy("intel-rapl:0", 2.0)
    tree.remove("intel-rapl:0:2")
    values, errors = backend.read()
    dram = order.index("dram:0")
    assert math.isnan(values[dram])
    assert errors is not None and set(errors) == {dram}
    assert errors[dram] == (
        f"{tree.root}/intel-rapl:0:2/energy_uj returned no data "
        "(zone removed, e.g. driver unloaded?)"
    )
    assert values[order.index("cpu:package-0")] == 2.0
    assert names(backend) == [n for n in order if n != "dram:0"]  # a new probe drops it


def test_kernel_read_error_mid_run_names_file_and_errno(
    tree: FakePowercapTree,
) -> None:
    # A /proc file reads as an integer until its process is gone, then every pread on the
    # already open descriptor fails with ESRCH: a real kernel errno on a kept-open descriptor,
    # as a removed sysfs node gives ENODEV.
    child = subprocess.Popen(["sleep", "60"])
    try:
        energy = tree.path("intel-rapl:0:1") / "energy_uj"
        energy.unlink()
        energy.symlink_to(f"/proc/{child.pid}/oom_score")
        rapl = RAPLBackend(tree.root)
        order = names(rapl)
        assert rapl.read()[1] is None
    finally:
        child.kill()
        child.wait()
    values, errors = rapl.read()
    uncore = order.index("cpu:uncore-0")
    assert math.isnan(values[uncore])
    assert errors is not None and set(errors) == {uncore}
    assert errors[uncore].startswith(f"cannot read {energy}: No such process (errno 3, ESRCH)")
    assert not any(math.isnan(v) for i, v in enumerate(values) if i != uncore)
    rapl.close()


def test_malformed_read_mid_run_recovers(backend: RAPLBackend, tree: FakePowercapTree) -> None:
    order = names(backend)
    package = order.index("cpu:package-0")
    tree.corrupt("intel-rapl:0", "oops\n")
    values, errors = backend.read()
    assert math.isnan(values[package])
    assert errors == {
        package: f"malformed content in {tree.root}/intel-rapl:0/energy_uj: b'oops\\n' "
        "(expected an integer in µJ)"
    }
    tree.set_energy("intel-rapl:0", 3_000_000)
    assert backend.read()[0][package] == 3.0


# ---------------------------------------------------------------------------- life cycle


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_close_releases_descriptors_and_probe_reopens(tree: FakePowercapTree) -> None:
    rapl = RAPLBackend(tree.root)
    before = _open_fds()
    count = len(rapl.probe().channels)
    assert _open_fds() == before + count
    rapl.probe()  # probing again replaces, not leaks, the descriptors
    assert _open_fds() == before + count
    rapl.close()
    assert _open_fds() == before
    with pytest.raises(SensorReadError, match=r"after close\(\)"):
        rapl.read()
    rapl.close()  # idempotent
    tree.set_energy("intel-rapl:0", 1_000_000)
    assert len(rapl.probe().channels) == count
    assert rapl.read()[0][0] == 1.0
    rapl.close()


def test_read_before_probe_raises() -> None:
    with pytest.raises(SensorReadError, match="before probe"):
        RAPLBackend().read()


def test_is_a_backend() -> None:
    rapl = RAPLBackend()
    assert isinstance(rapl, Backend)
    assert (rapl.name, rapl.blocking) == ("rapl", False)
    assert repr(RAPLBackend("/x", zones=["dram:0"], include_psys=False)) == (
        "RAPLBackend(root='/x', zones=['dram:0'], include_subzones=True, include_psys=False)"
    )


# ------------------------------------------------------------------------ configuration

_CHANNEL = re.compile(r"(?:cpu|dram|platform):[A-Za-z0-9_.-]+")
valid_names = st.from_regex(_CHANNEL, fullmatch=True).filter(
    lambda s: not s.startswith(("platform:", "cpu:core-", "cpu:uncore-"))
)
not_bool = st.one_of(st.integers(), st.none(), st.text(), st.floats())


@given(
    st.one_of(
        st.fixed_dictionaries({"root": st.one_of(st.integers(), st.none(), st.just(""))}),
        st.fixed_dictionaries({"zones": st.text()}),  # a bare string, not a list
        st.fixed_dictionaries({"zones": st.just([])}),
        st.fixed_dictionaries(
            {"zones": st.lists(st.text().filter(lambda s: not _CHANNEL.fullmatch(s)), min_size=1)}
        ),
        st.fixed_dictionaries({"zones": valid_names.map(lambda s: [s, s])}),
        st.fixed_dictionaries({"zones": st.lists(st.integers(), min_size=1)}),
        st.fixed_dictionaries({"include_subzones": not_bool}),
        st.fixed_dictionaries({"include_psys": not_bool}),
        st.fixed_dictionaries(
            {"zones": st.just(["platform:psys"]), "include_psys": st.just(False)}
        ),
        st.fixed_dictionaries(
            {"zones": st.just(["cpu:core-0"]), "include_subzones": st.just(False)}
        ),
    )
)
def test_bad_arguments_raise_config_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        RAPLBackend(**kwargs)


@given(st.lists(valid_names, min_size=1, max_size=5, unique=True), st.booleans(), st.booleans())
def test_good_arguments_are_accepted(zones: list[str], subzones: bool, psys: bool) -> None:
    rapl = RAPLBackend("/nowhere", zones=zones, include_subzones=subzones, include_psys=psys)
    assert not rapl.probe().ok
