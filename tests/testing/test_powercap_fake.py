"""FakePowercapTree: layout like /sys/class/powercap, in-place counters, wraps and faults."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bertwatt.errors import ConfigError
from bertwatt.testing.powercap import DEFAULT_MAX_ENERGY_RANGE_UJ, FakePowercapTree


@pytest.fixture
def tree(tmp_path: Path) -> FakePowercapTree:
    fake = FakePowercapTree(tmp_path / "powercap")
    fake.add_package(0)
    return fake


def read(path: Path) -> str:
    return path.read_text(encoding="ascii")


def test_layout_mirrors_the_class_directory(tree: FakePowercapTree) -> None:
    root = tree.root
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == [
        "intel-rapl",
        "intel-rapl:0",
        "intel-rapl:0:0",
        "intel-rapl:0:1",
        "intel-rapl:0:2",
    ]
    # Every entry is a relative symlink into the device tree, sub-zones nested in the package.
    assert os.readlink(root / "intel-rapl") == ".devices/intel-rapl"
    assert os.readlink(root / "intel-rapl:0:2") == ".devices/intel-rapl/intel-rapl:0/intel-rapl:0:2"
    assert (root / "intel-rapl" / "intel-rapl:0" / "intel-rapl:0:2").is_dir()
    assert (root / "intel-rapl:0:2").resolve() == (
        root / "intel-rapl:0" / "intel-rapl:0:2"
    ).resolve()
    zone = root / "intel-rapl:0"
    assert read(zone / "name") == "package-0\n"
    assert read(zone / "energy_uj") == "0\n"
    assert read(zone / "max_energy_range_uj") == f"{DEFAULT_MAX_ENERGY_RANGE_UJ}\n"
    assert read(zone / "enabled") == "1\n"
    assert [read(root / f"intel-rapl:0:{i}" / "name") for i in range(3)] == [
        "core\n",
        "uncore\n",
        "dram\n",
    ]
    assert read(root / "intel-rapl" / "enabled") == "1\n"
    assert not (zone / "constraint_0_max_power_uw").exists()


def test_add_package_options(tmp_path: Path) -> None:
    fake = FakePowercapTree(tmp_path)
    returned = fake.add_package(
        1,
        name="package-0-die-1",
        energy_uj=42,
        max_energy_range_uj=1000,
        max_power_uw=55_000_000,
        power_limit_uw=135_000_000,
        subzones=("dram",),
    )
    zone = tmp_path / "intel-rapl:1"
    assert returned == str(zone) == str(fake.path("intel-rapl:1"))
    assert read(zone / "name") == "package-0-die-1\n"
    assert read(zone / "energy_uj") == "42\n"
    assert read(zone / "constraint_0_max_power_uw") == "55000000\n"
    assert read(zone / "constraint_0_power_limit_uw") == "135000000\n"
    assert read(zone / "constraint_0_name") == "long_term\n"
    assert read(tmp_path / "intel-rapl:1:0" / "max_energy_range_uj") == "1000\n"
    assert fake.zones == ["intel-rapl:1", "intel-rapl:1:0"]


def test_psys_takes_the_next_free_index(tree: FakePowercapTree) -> None:
    tree.add_package(1, subzones=())
    assert tree.add_psys() == str(tree.root / "intel-rapl:2")
    assert read(tree.root / "intel-rapl:2" / "name") == "psys\n"
    assert tree.add_psys(7) == str(tree.root / "intel-rapl:7")


def test_mmio_control_type(tree: FakePowercapTree) -> None:
    tree.add_package(0, control_type="intel-rapl-mmio", subzones=())
    assert os.readlink(tree.root / "intel-rapl-mmio") == ".devices/intel-rapl-mmio"
    assert read(tree.root / "intel-rapl-mmio:0" / "name") == "package-0\n"


def test_counters_are_rewritten_in_place(tree: FakePowercapTree) -> None:
    path = tree.path("intel-rapl:0") / "energy_uj"
    inode = path.stat().st_ino
    fd = os.open(path, os.O_RDONLY)
    try:
        tree.set_energy("intel-rapl:0", 123_456_789_012)
        assert os.pread(fd, 32, 0) == b"123456789012\n"
        tree.set_energy("intel-rapl:0", 7)  # shorter text: the stale tail is cut off
        assert os.pread(fd, 32, 0) == b"7\n"
        assert tree.add_energy("intel-rapl:0", 1.5) == 1_500_007
        assert os.pread(fd, 32, 0) == b"1500007\n"
    finally:
        os.close(fd)
    assert path.stat().st_ino == inode
    assert tree.energy_uj("intel-rapl:0") == 1_500_007


@given(
    range_uj=st.integers(1, 2**40),
    start=st.floats(0, 1, exclude_max=True),
    steps=st.lists(st.floats(0, 1e6, allow_nan=False), max_size=20),
)
def test_add_energy_wraps_modulo_the_range(range_uj: int, start: float, steps: list[float]) -> None:
    initial = int(start * range_uj)
    with tempfile.TemporaryDirectory() as directory:
        fake = FakePowercapTree(directory)
        fake.add_package(0, subzones=(), max_energy_range_uj=range_uj, energy_uj=initial)
        value = initial
        for joules in steps:
            added_uj = round(joules * 1e6)
            new = fake.add_energy("intel-rapl:0", joules)
            assert 0 <= new < range_uj
            assert (new - value) % range_uj == added_uj % range_uj
            value = new
        expected = (initial + sum(round(j * 1e6) for j in steps)) % range_uj
        assert fake.energy_uj("intel-rapl:0") == value == expected


@pytest.mark.parametrize("joules", [-1.0, float("nan"), float("inf"), True, "1"])
def test_add_energy_rejects_non_growth(tree: FakePowercapTree, joules: object) -> None:
    with pytest.raises(ConfigError, match="joules"):
        tree.add_energy("intel-rapl:0", joules)  # type: ignore[arg-type]


@pytest.mark.parametrize("energy_uj", [-1, DEFAULT_MAX_ENERGY_RANGE_UJ + 1, 1.5, True])
def test_set_energy_rejects_values_outside_the_counter(
    tree: FakePowercapTree, energy_uj: object
) -> None:
    with pytest.raises(ConfigError, match="energy_uj"):
        tree.set_energy("intel-rapl:0", energy_uj)  # type: ignore[arg-type]


def test_misuse_raises_config_error(tree: FakePowercapTree) -> None:
    with pytest.raises(ConfigError, match=r"no zone 'intel-rapl:9'.*intel-rapl:0:2"):
        tree.set_energy("intel-rapl:9", 0)
    with pytest.raises(ConfigError, match="already exists"):
        tree.add_package(0)
    with pytest.raises(ConfigError, match="index"):
        tree.add_package(-1)
    with pytest.raises(ConfigError, match="control_type"):
        tree.add_package(3, control_type="dtpm")
    with pytest.raises(ConfigError, match="subzones"):
        tree.add_package(3, subzones="dram")
    with pytest.raises(ConfigError, match="max_energy_range_uj"):
        tree.add_package(3, max_energy_range_uj=0)
    with pytest.raises(ConfigError, match="max_power_uw"):
        tree.add_package(3, max_power_uw=-5)
    with pytest.raises(ConfigError, match="corrupt"):
        tree.corrupt("intel-rapl:0", "x", attr="../escape")


def test_deny_sets_mode_000_and_counters_still_move(tree: FakePowercapTree) -> None:
    path = tree.path("intel-rapl:0") / "energy_uj"
    tree.deny("intel-rapl:0")
    assert stat.S_IMODE(path.stat().st_mode) == 0
    tree.add_energy("intel-rapl:0", 2.0)  # the fake can still write it
    assert stat.S_IMODE(path.stat().st_mode) == 0
    os.chmod(path, 0o644)
    assert read(path) == "2000000\n"


def test_corrupt_writes_text_verbatim(tree: FakePowercapTree) -> None:
    tree.corrupt("intel-rapl:0:2", "garbage")
    assert read(tree.path("intel-rapl:0:2") / "energy_uj") == "garbage"
    tree.corrupt("intel-rapl:0", "0\n", attr="max_energy_range_uj")
    assert read(tree.path("intel-rapl:0") / "max_energy_range_uj") == "0\n"


def test_remove_subzone_empties_open_files_and_unlinks(tree: FakePowercapTree) -> None:
    tree.set_energy("intel-rapl:0:2", 99)
    path = tree.path("intel-rapl:0:2") / "energy_uj"
    fd = os.open(path, os.O_RDONLY)
    try:
        tree.remove("intel-rapl:0:2")
        assert os.pread(fd, 32, 0) == b""  # what a reader holding it open now sees
    finally:
        os.close(fd)
    assert not (tree.root / "intel-rapl:0:2").exists()
    assert not (tree.root / "intel-rapl:0:2").is_symlink()
    assert not (tree.root / "intel-rapl:0" / "intel-rapl:0:2").exists()
    assert tree.zones == ["intel-rapl:0", "intel-rapl:0:0", "intel-rapl:0:1"]
    tree.remove("intel-rapl:0")
    assert tree.zones == []
    assert [p.name for p in tree.root.iterdir() if not p.name.startswith(".")] == ["intel-rapl"]


def test_remove_works_on_a_denied_zone(tree: FakePowercapTree) -> None:
    tree.deny("intel-rapl:0")
    tree.remove("intel-rapl:0")
    assert not (tree.root / "intel-rapl:0").exists()


def test_repr(tmp_path: Path) -> None:
    fake = FakePowercapTree(tmp_path)
    fake.add_package(0, subzones=())
    assert repr(fake) == f"FakePowercapTree({str(tmp_path)!r}, zones=['intel-rapl:0'])"
