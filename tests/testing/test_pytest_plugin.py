"""The pytest11 plugin: fixtures only, usable from a user's test suite (driven with pytester)."""

from __future__ import annotations

pytest_plugins = ["pytester"]


def test_plugin_is_registered_by_entry_point():
    from importlib.metadata import entry_points

    eps = entry_points(group="pytest11")
    assert any(ep.value == "bertwatt.testing.pytest_plugin" for ep in eps)


def test_fixtures_work_in_a_user_suite(pytester):
    pytester.makepyfile(
        """
        from bertwatt import EnergyMeter
        from bertwatt.backends import NVMLBackend, RAPLBackend
        from bertwatt.testing import FakeBackend, FakeChannel, FakeGPU

        def test_clock_drives_a_meter(bertwatt_clock):
            ch = FakeChannel("gpu:0", power_w=250.0, kind="counter")
            backend = FakeBackend(channels=[ch], clock=bertwatt_clock)
            with EnergyMeter(backends=[backend], clock=bertwatt_clock) as meter:
                bertwatt_clock.advance(4.0)
            assert abs(meter.report.energy_j - 1000.0) < 1e-6

        def test_powercap_tree(bertwatt_powercap):
            bertwatt_powercap.add_package(0)
            av = RAPLBackend(root=bertwatt_powercap.root).probe()
            assert any(c.name == "cpu:package-0" for c in av.channels)

        def test_nvml(bertwatt_nvml, bertwatt_clock):
            bertwatt_nvml([FakeGPU(power_w=100.0)], clock=bertwatt_clock)
            av = NVMLBackend(all_devices=True).probe()
            assert [c.name for c in av.channels] == ["gpu:0"]
        """
    )
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_plugin_module_imports_nothing_heavy():
    import subprocess
    import sys

    code = (
        "import sys, bertwatt.testing.pytest_plugin as p\n"
        "heavy = ('torch', 'transformers', 'pynvml', 'numpy', 'pydantic')\n"
        "print([m for m in heavy if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr
