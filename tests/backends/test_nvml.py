"""NVMLBackend through the fake pynvml module installed in sys.modules (the vendor boundary)."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bertwatt.backends.base import Availability, Backend
from bertwatt.backends.nvml import DEFAULT_MAX_POWER_W, POWER_HEADROOM, NVMLBackend
from bertwatt.errors import ConfigError, SensorReadError
from bertwatt.testing.clock import FakeClock
from bertwatt.testing.nvml import FakeGPU, FakeNVML

ENERGY = "nvmlDeviceGetTotalEnergyConsumption"
POWER = "nvmlDeviceGetPowerUsage"

UUIDS = [
    "GPU-aaaa1111-0000-0000-0000-000000000000",
    "GPU-aabb2222-0000-0000-0000-000000000000",
    "GPU-cccc3333-0000-0000-0000-000000000000",
    "GPU-dddd4444-0000-0000-0000-000000000000",
]
MIG_A = "MIG-11111111-2222-3333-4444-555555555555"
MIG_B = "MIG-66666666-7777-8888-9999-000000000000"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(autouse=True)
def _no_cuda_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)


@pytest.fixture
def four(clock: FakeClock) -> Iterator[FakeNVML]:
    """Four A100s, the last with two MIG instances; installed as pynvml."""
    gpus = [FakeGPU(uuid=u, power_w=100.0 * (i + 1)) for i, u in enumerate(UUIDS[:3])]
    gpus.append(FakeGPU(uuid=UUIDS[3], power_w=400.0, mig_devices=[MIG_A, MIG_B]))
    fake = FakeNVML(gpus, clock=clock)
    with fake.install():
        yield fake


def names(availability: Availability) -> list[str]:
    return [c.name for c in availability.channels]


def reasons(availability: Availability) -> str:
    return " | ".join(u.reason for u in availability.unavailable)


# -- the counter path ------------------------------------------------------------------------


def test_energy_counter_channels_read_joules(clock: FakeClock) -> None:
    gpus = [
        FakeGPU(uuid=UUIDS[0], power_w=250.0, energy_at_start_j=5_000.0),
        FakeGPU("NVIDIA H100 80GB HBM3", uuid=UUIDS[1], power_w=600.0, power_limit_w=700.0),
    ]
    fake = FakeNVML(gpus, clock=clock, driver_version="555.42.06")
    with fake.install():
        backend = NVMLBackend()
        availability = backend.probe()
        assert isinstance(backend, Backend)
        assert availability.ok and availability.unavailable == ()
        assert names(availability) == ["gpu:0", "gpu:1"]
        first, second = availability.channels
        assert first.kind == "counter" and first.domain == "gpu" and first.wrap_j is None
        assert first.provenance.source == f"NVML {ENERGY}"
        assert first.provenance.scope == "gpu-board"
        assert first.provenance.kind == "measured"
        assert first.provenance.resolution_j == pytest.approx(0.001)
        assert first.max_power_w == pytest.approx(400.0 * POWER_HEADROOM)
        assert second.max_power_w == pytest.approx(700.0 * POWER_HEADROOM)
        assert dict(second.info) == {
            "name": "NVIDIA H100 80GB HBM3",
            "uuid": UUIDS[1],
            "nvml_index": "1",
            "power_limit_w": "700",
            "power_limit_source": "nvmlDeviceGetEnforcedPowerLimit",
            "mig_mode": "disabled",
            "selected_by": "CUDA_VISIBLE_DEVICES unset: every GPU is visible",
            "driver_version": "555.42.06",
        }
        before = fake.calls.copy()
        clock.advance(2.0)
        values, errors = backend.read()
        assert errors is None
        assert values == pytest.approx([5_000.0 + 500.0, 1_200.0])
        assert all(isinstance(v, float) for v in values)
        calls = fake.calls - before
        assert calls == {ENERGY: 2}, "one NVML call per GPU per read"
        backend.close()


# -- the power fallback ----------------------------------------------------------------------


def test_mixed_machine_falls_back_to_power_per_gpu(clock: FakeClock) -> None:
    old = FakeGPU(
        "Tesla P100-PCIE-16GB",
        uuid=UUIDS[1],
        power_w=[(0.0, 30.0), (5.0, 180.0)],
        power_limit_w=250.0,
        supports_energy_counter=False,
    )
    fake = FakeNVML([FakeGPU(uuid=UUIDS[0], power_w=100.0), old], clock=clock)
    with fake.install():
        backend = NVMLBackend()
        counter, power = backend.probe().channels
        assert (counter.kind, power.kind) == ("counter", "power")
        assert power.provenance.source == f"NVML {POWER}"
        assert power.provenance.scope == "gpu-board"
        notes = " ".join(power.provenance.notes)
        assert f"{ENERGY} is unavailable" in notes and "Not Supported" in notes
        assert "Volta" in notes and "arXiv:2312.02741" in notes
        assert power.max_power_w == pytest.approx(500.0)
        assert backend.read() == ([0.0, 30.0], None)
        clock.advance(6.0)
        values, errors = backend.read()
        assert errors is None
        assert values == pytest.approx([600.0, 180.0])


def test_gpu_with_neither_counter_nor_power_is_unavailable(clock: FakeClock) -> None:
    mute = FakeGPU(uuid=UUIDS[1], supports_energy_counter=False)
    mute.fail("not_supported", calls=POWER)
    with FakeNVML([FakeGPU(uuid=UUIDS[0]), mute], clock=clock).install():
        availability = NVMLBackend().probe()
    assert names(availability) == ["gpu:0"]
    (missing,) = availability.unavailable
    assert missing.what == "nvml:gpu:1"
    assert ENERGY in missing.reason and POWER in missing.reason
    assert "NVML_ERROR_NOT_SUPPORTED" in missing.reason


def test_counter_error_other_than_not_supported_makes_gpu_unavailable(clock: FakeClock) -> None:
    broken = FakeGPU(uuid=UUIDS[1])
    broken.fail("unknown", calls=ENERGY)
    fake = FakeNVML([FakeGPU(uuid=UUIDS[0]), broken], clock=clock)
    with fake.install():
        availability = NVMLBackend().probe()
    assert names(availability) == ["gpu:0"]
    (missing,) = availability.unavailable
    assert missing.what == "nvml:gpu:1"
    assert "Unknown Error (NVML_ERROR_UNKNOWN)" in missing.reason and UUIDS[1] in missing.reason
    assert fake.calls[POWER] == 0, "an unknown error is not a reason to fall back to power"


def test_power_limit_falls_back_to_management_limit_then_default(clock: FakeClock) -> None:
    managed = FakeGPU(uuid=UUIDS[0], power_limit_w=300.0)
    managed.fail("not_supported", calls="nvmlDeviceGetEnforcedPowerLimit")
    unknown = FakeGPU(uuid=UUIDS[1], power_limit_w=None)
    with FakeNVML([managed, unknown], clock=clock).install():
        first, second = NVMLBackend().probe().channels
    assert first.info["power_limit_source"] == "nvmlDeviceGetPowerManagementLimit"
    assert first.max_power_w == pytest.approx(600.0)
    assert second.info["power_limit_w"] == "unknown"
    assert "Not Supported" in second.info["power_limit_source"]
    assert second.max_power_w == DEFAULT_MAX_POWER_W


# -- faults while running --------------------------------------------------------------------


def test_gpu_lost_mid_run_gives_nan_and_message_while_others_read(clock: FakeClock) -> None:
    lost = FakeGPU(uuid=UUIDS[1], power_w=200.0)
    lost.fail("gpu_lost", at_s=5.0, until_s=8.0)
    fake = FakeNVML([FakeGPU(uuid=UUIDS[0], power_w=100.0), lost], clock=clock)
    with fake.install():
        backend = NVMLBackend()
        backend.probe()
        clock.advance(4.0)
        assert backend.read() == ([400.0, 800.0], None)
        clock.advance(2.0)
        values, errors = backend.read()
        assert values[0] == pytest.approx(600.0)
        assert math.isnan(values[1])
        assert errors is not None and set(errors) == {1}
        message = errors[1]
        assert ENERGY in message and "gpu:1" in message and UUIDS[1] in message
        assert "GPU is lost (NVML_ERROR_GPU_IS_LOST)" in message
        assert "nvidia-smi" in message
        clock.advance(3.0)
        assert backend.read() == ([900.0, 1_800.0], None)


def test_no_permission_while_reading(clock: FakeClock) -> None:
    gpu = FakeGPU(uuid=UUIDS[0], power_w=100.0, supports_energy_counter=False)
    gpu.fail("no_permission", at_s=1.0, calls=POWER)
    with FakeNVML([gpu], clock=clock).install():
        backend = NVMLBackend()
        backend.probe()
        clock.advance(1.0)
        values, errors = backend.read()
    assert math.isnan(values[0])
    assert errors is not None
    assert errors[0].startswith(f"{POWER} failed on gpu:0 ({UUIDS[0]}): ")
    assert "Insufficient Permissions (NVML_ERROR_NO_PERMISSION)" in errors[0]
    assert "permission" in errors[0].split(";", 1)[1]


def test_gpu_that_cannot_be_opened_is_reported_and_skipped(clock: FakeClock) -> None:
    dead = FakeGPU(uuid=UUIDS[1])
    dead.fail("gpu_lost", calls="nvmlDeviceGetHandleByIndex")
    with FakeNVML([FakeGPU(uuid=UUIDS[0]), dead, FakeGPU(uuid=UUIDS[2])], clock=clock).install():
        availability = NVMLBackend().probe()
    assert names(availability) == ["gpu:0", "gpu:2"]
    (missing,) = availability.unavailable
    assert missing.what == "nvml:gpu:1" and "GPU is lost" in missing.reason


# -- which GPUs: CUDA_VISIBLE_DEVICES ------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected", "dropped"),
    [
        ("0", ["gpu:0"], None),
        ("2,1", ["gpu:2", "gpu:1"], None),
        (" 1 , 3 ", ["gpu:1", "gpu:3"], None),
        ("0,2,-1,1", ["gpu:0", "gpu:2"], "'-1', '1'"),
        ("1,7,2", ["gpu:1"], "'7', '2'"),
        ("0,bogus", ["gpu:0"], "'bogus'"),
        ("0,0", ["gpu:0"], None),
        (UUIDS[2], ["gpu:2"], None),
        ("GPU-cccc", ["gpu:2"], None),
        ("GPU-dd,GPU-aab", ["gpu:3", "gpu:1"], None),
        (f"3,{UUIDS[0]}", ["gpu:3", "gpu:0"], None),
        ("2,GPU-aa,0", ["gpu:2"], "'GPU-aa', '0'"),
    ],
)
def test_cuda_visible_devices_selects_like_cuda(
    four: FakeNVML,
    monkeypatch: pytest.MonkeyPatch,
    env: str,
    expected: list[str],
    dropped: str | None,
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", env)
    availability = NVMLBackend().probe()
    assert names(availability) == expected
    if dropped is None:
        assert availability.unavailable == ()
    else:
        (note,) = availability.unavailable
        assert note.what == "nvml"
        assert dropped in note.reason and "CUDA stops at the first invalid entry" in note.reason
        assert note.fix is not None and "nvidia-smi -L" in note.fix


def test_ambiguous_prefix_is_invalid(four: FakeNVML, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,GPU-aa")
    availability = NVMLBackend().probe()
    assert names(availability) == ["gpu:0"]
    assert "prefix of 2 GPU UUIDs" in reasons(availability)


@pytest.mark.parametrize("env", ["", "  ", "-1", "-1,0", "nope", "4", "GPU-ffff", "MIG-nope"])
def test_cuda_visible_devices_hiding_every_gpu(
    four: FakeNVML, monkeypatch: pytest.MonkeyPatch, env: str
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", env)
    availability = NVMLBackend().probe()
    assert not availability.ok
    (note,) = availability.unavailable
    assert note.what == "nvml"
    assert f"CUDA_VISIBLE_DEVICES={env!r} makes no GPU visible" in note.reason
    assert note.fix is not None and "all_devices=True" in note.fix
    assert not four.initialised, "NVML is shut down when there is nothing to read"


def test_mig_uuid_measures_parent_gpu_with_note(
    four: FakeNVML, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", MIG_B)
    availability = NVMLBackend().probe()
    (channel,) = availability.channels
    assert channel.name == "gpu:3" and channel.kind == "counter"
    assert channel.info["mig_devices"] == MIG_B
    assert channel.info["mig_parent"] == UUIDS[3]
    assert channel.info["mig_mode"] == "enabled"
    note = channel.provenance.notes[-1]
    assert "MIG" in note and MIG_B in note
    assert "whole physical GPU" in note and "other MIG instance" in note


def test_old_style_mig_identifiers_and_two_instances_of_one_gpu(
    four: FakeNVML, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", f"MIG-{UUIDS[3]}/1/0,{MIG_A}")
    availability = NVMLBackend().probe()
    (channel,) = availability.channels
    assert channel.name == "gpu:3"
    assert channel.info["mig_devices"] == f"MIG-{UUIDS[3]}/1/0,{MIG_A}"


def test_gpu_in_mig_mode_chosen_by_index_still_gets_the_whole_gpu_note(
    four: FakeNVML, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    (channel,) = NVMLBackend().probe().channels
    assert "mig_devices" not in channel.info
    assert any("GPU 3 is in MIG mode" in n for n in channel.provenance.notes)


def test_mig_mode_query_not_supported_is_recorded(clock: FakeClock) -> None:
    pascal = FakeGPU(uuid=UUIDS[0])
    pascal.fail("not_supported", calls="nvmlDeviceGetMigMode")
    with FakeNVML([pascal], clock=clock).install():
        (channel,) = NVMLBackend().probe().channels
    assert channel.info["mig_mode"] == "not supported"
    assert not any("MIG" in n for n in channel.provenance.notes)


@pytest.mark.parametrize(
    ("env", "order", "warned"),
    [
        ("1", None, True),
        ("1", "FASTEST_FIRST", True),
        ("1", "PCI_BUS_ID", False),
        (UUIDS[1], None, False),
    ],
)
def test_integer_indices_on_mixed_models_carry_a_cuda_order_note(
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    env: str,
    order: str | None,
    warned: bool,
) -> None:
    gpus = [FakeGPU("NVIDIA GeForce RTX 3090", uuid=UUIDS[0]), FakeGPU(uuid=UUIDS[1])]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", env)
    if order is not None:
        monkeypatch.setenv("CUDA_DEVICE_ORDER", order)
    with FakeNVML(gpus, clock=clock).install():
        (channel,) = NVMLBackend().probe().channels
    assert channel.name == "gpu:1"
    assert any("CUDA_DEVICE_ORDER=PCI_BUS_ID" in n for n in channel.provenance.notes) is warned


# -- which GPUs: explicit -------------------------------------------------------------------


def test_explicit_devices_ignore_cuda_visible_devices(
    four: FakeNVML, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    availability = NVMLBackend(devices=[2, "GPU-aab", MIG_A]).probe()
    assert names(availability) == ["gpu:2", "gpu:1", "gpu:3"]
    assert availability.channels[0].info["selected_by"] == "devices=[2]"
    assert availability.channels[2].info["mig_devices"] == MIG_A


def test_unknown_explicit_devices_are_named(four: FakeNVML) -> None:
    availability = NVMLBackend(devices=[1, 9, "GPU-ffff", "GPU-aa"]).probe()
    assert names(availability) == ["gpu:1"]
    missing = {u.what: u for u in availability.unavailable}
    assert set(missing) == {"nvml:9", "nvml:GPU-ffff", "nvml:GPU-aa"}
    assert "devices= names 9" in missing["nvml:9"].reason
    assert "4 GPUs: 0-3" in missing["nvml:9"].reason
    assert "matches no GPU UUID" in missing["nvml:GPU-ffff"].reason
    assert missing["nvml:9"].fix is not None and "nvidia-smi -L" in missing["nvml:9"].fix


def test_all_devices_ignores_cuda_visible_devices(
    four: FakeNVML, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    availability = NVMLBackend(all_devices=True).probe()
    assert names(availability) == ["gpu:0", "gpu:1", "gpu:2", "gpu:3"]
    assert {c.info["selected_by"] for c in availability.channels} == {"all_devices=True"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"devices": "0"}, "takes a list"),
        ({"devices": 0}, "takes a list"),
        ({"devices": []}, "selects no GPU"),
        ({"devices": [True]}, "int indices or UUID strings"),
        ({"devices": [1.0]}, "int indices or UUID strings"),
        ({"devices": [-1]}, ">= 0"),
        ({"devices": ["0"]}, "pass NVML indices as int"),
        ({"devices": ["gpu0"]}, "'GPU-...' or 'MIG-...'"),
        ({"devices": [0, 0]}, "twice"),
        ({"devices": [0], "all_devices": True}, "not both"),
        ({"all_devices": 1}, "True or False"),
    ],
)
def test_bad_arguments_raise_config_error(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        NVMLBackend(**kwargs)  # type: ignore[arg-type]


# -- NVML itself missing ---------------------------------------------------------------------


def test_pynvml_not_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    availability = NVMLBackend().probe()
    assert not availability.ok
    (missing,) = availability.unavailable
    assert missing.what == "nvml"
    assert "cannot import pynvml" in missing.reason and "nvidia-ml-py" in missing.reason
    assert missing.fix == "pip install 'bertwatt[nvml]'"


@pytest.mark.parametrize(
    ("init_error", "text", "fix"),
    [
        ("library_not_found", "NVML Shared Library Not Found", "install the NVIDIA driver"),
        ("driver_not_loaded", "Driver Not Loaded", "modprobe nvidia"),
        ("no_permission", "Insufficient Permissions", "/dev/nvidia"),
        ("lib_rm_version_mismatch", "version mismatch", "reboot"),
    ],
)
def test_nvml_init_failure(clock: FakeClock, init_error: str, text: str, fix: str) -> None:
    fake = FakeNVML([FakeGPU()], clock=clock, init_error=init_error)
    with fake.install():
        backend = NVMLBackend()
        availability = backend.probe()
        assert not availability.ok
        (missing,) = availability.unavailable
        assert missing.what == "nvml"
        assert missing.reason.startswith("nvmlInit failed: ") and text in missing.reason
        assert missing.fix is not None and fix in missing.fix
        backend.close()
        assert fake.calls["nvmlShutdown"] == 0, "no shutdown without a successful init"
        with pytest.raises(SensorReadError):
            backend.read()


def test_machine_without_gpus(clock: FakeClock) -> None:
    fake = FakeNVML([], clock=clock)
    with fake.install():
        availability = NVMLBackend().probe()
    assert "lists no GPU" in reasons(availability)
    assert not fake.initialised


def test_real_pynvml_binding() -> None:
    """The installed nvidia-ml-py: channels on a GPU host, a clear nvmlInit reason elsewhere."""
    pytest.importorskip("pynvml")
    backend = NVMLBackend(all_devices=True)
    availability = backend.probe()
    try:
        if availability.ok:
            assert all(c.name.startswith("gpu:") for c in availability.channels)
            values, _ = backend.read()
            assert len(values) == len(availability.channels)
        else:
            (missing,) = availability.unavailable
            assert missing.reason.startswith("nvmlInit failed: ")
            assert missing.fix is not None and "driver" in missing.fix
    finally:
        backend.close()


# -- life cycle ------------------------------------------------------------------------------


def test_close_shuts_nvml_down_once_and_reprobe_works(four: FakeNVML, clock: FakeClock) -> None:
    backend = NVMLBackend(devices=[0])
    with pytest.raises(SensorReadError, match="probe"):
        backend.read()
    assert backend.probe().ok
    assert four.init_count == 1 and four.initialised
    backend.close()
    backend.close()
    assert four.shutdown_count == 1 and not four.initialised
    with pytest.raises(SensorReadError):
        backend.read()
    assert backend.probe().ok
    assert backend.probe().ok, "probing again releases the previous NVML session first"
    assert (four.init_count, four.shutdown_count) == (3, 2)
    clock.advance(1.0)
    assert backend.read() == ([100.0], None)
    backend.close()
    assert not four.initialised


def test_read_errors_after_nvml_shut_down_underneath(four: FakeNVML) -> None:
    backend = NVMLBackend(devices=[0])
    backend.probe()
    four.module.nvmlShutdown()  # another library shuts NVML down
    values, errors = backend.read()
    assert math.isnan(values[0])
    assert errors is not None and "NVML_ERROR_UNINITIALIZED" in errors[0]
    assert "probe again" in errors[0]


def test_repr_shows_arguments() -> None:
    assert repr(NVMLBackend(devices=[1, "GPU-ab"])) == (
        "NVMLBackend(devices=[1, 'GPU-ab'], all_devices=False)"
    )


def _probe_in_fresh_process(driver_paths: list[str]) -> list[str]:
    """Probe the real NVMLBackend in a fresh process (no fake pynvml installed) with
    ``DRIVER_PATHS`` set; returns [reason, whether pynvml got imported]."""
    code = (
        "import sys\n"
        "import bertwatt.backends.nvml as nvml\n"
        f"nvml.DRIVER_PATHS = {tuple(driver_paths)!r}\n"
        "(missing,) = nvml.NVMLBackend().probe().unavailable\n"
        "print(missing.reason)\n"
        "print('pynvml' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


def test_no_driver_is_said_without_loading_nvml(tmp_path: Path) -> None:
    gone = [str(tmp_path / "nvidiactl"), str(tmp_path / "version")]
    reason, imported = _probe_in_fresh_process(gone)
    assert reason.startswith("no NVIDIA driver on this machine: none of ")
    assert gone[0] in reason and "NVML was not loaded" in reason
    assert imported == "False"  # pynvml (ctypes, ~15 ms) is not imported for nothing


def test_a_sign_of_a_driver_lets_nvml_decide(tmp_path: Path) -> None:
    if importlib.util.find_spec("pynvml") is None:
        pytest.skip("nvidia-ml-py is not installed")
    if Path("/dev/nvidiactl").exists():
        pytest.skip("this machine has an NVIDIA driver: nvmlInit would succeed")
    (tmp_path / "nvidiactl").touch()
    reason, imported = _probe_in_fresh_process([str(tmp_path / "nvidiactl")])
    assert imported == "True"
    assert reason.startswith("nvmlInit failed: ")  # no libnvidia-ml.so here: NVML's own words
