"""Device, facts, selection and the binary store against a virtual device through a real adb server."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from edgeship.android_harness.adb.device import Device
from edgeship.android_harness.adb.facts import device_facts, device_state
from edgeship.android_harness.adb.selection import list_all_devices, select_devices
from edgeship.android_harness.store import DeviceStore
from edgeship.console import Reporter
from edgeship.errors import DeviceError, UsageError
from edgeship.vdevice import load_profile
from tests.android_harness.conftest import config_for, device_on


def test_shell_exit_codes_streams_and_quoting(device: Device, vdevice: Any) -> None:
    result = device.shell(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (result.exit_code, result.stdout, result.stderr) == (3, b"out\n", b"err\n")
    marker = "/data/local/tmp/should-not-exist"
    echoed = device.shell(["echo", f"$(touch {marker}); rm -rf /"])
    assert echoed.stdout.decode().strip() == f"$(touch {marker}); rm -rf /"
    assert not (vdevice.sandbox_root / "should-not-exist").exists()
    with pytest.raises(DeviceError, match="exited 7"):
        device.shell("exit 7", check=True)


def test_push_pull_read_exists(device: Device, tmp_path: Path) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)
    local = tmp_path / "blob.bin"
    local.write_bytes(payload)
    seen: list[int] = []
    assert device.push_file(local, "/data/local/tmp/blob.bin", progress=seen.append) == len(payload)
    assert sum(seen) == len(payload)
    assert device.exists("/data/local/tmp/blob.bin")
    assert not device.exists("/data/local/tmp/nothing-here")
    device.pull_file("/data/local/tmp/blob.bin", tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == payload
    device.push_bytes(b"hello\n", "/data/local/tmp/hello.txt")
    assert device.read_text("/data/local/tmp/hello.txt") == "hello\n"
    with pytest.raises(DeviceError, match="push"):
        device.push_bytes(b"x", "/system/forbidden.txt")


def test_facts_come_from_the_device(device: Device, vdevice: Any) -> None:
    profile = load_profile("vflagship")
    facts = device_facts(device)
    assert (facts.model, facts.manufacturer, facts.soc, facts.abi) == (
        profile.model,
        profile.manufacturer,
        profile.soc_model,
        profile.abi,
    )
    assert (facts.sdk, facts.release) == (profile.sdk, profile.release)
    # A virtual device with a memory cgroup has the profile's RAM (at most the host's), else the host's.
    host_total = next(
        int(line.split()[1]) * 1024
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    assert facts.ram_total == (min(profile.ram_bytes, host_total) if vdevice.memory else host_total)
    assert (
        facts.free_bytes is not None
        and 0 < facts.free_bytes <= os.statvfs("/").f_blocks * os.statvfs("/").f_frsize
    )
    state = device_state(device)
    assert set(state) == {"thermal", "thermal_status", "battery", "cpu_freq_khz"}


def test_selection_rules(adb_server: Any, vdevice_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANDROID_SERIAL", raising=False)
    config = config_for(adb_server)
    first = vdevice_factory(name="sel1")
    assert [d.serial for d in select_devices(config)] == [first.serial]  # the only online device
    second = vdevice_factory(name="sel2", profile="vbudget4g")
    with pytest.raises(UsageError, match="2 devices are online"):
        select_devices(config)
    monkeypatch.setenv("ANDROID_SERIAL", second.serial)
    assert [d.serial for d in select_devices(config)] == [second.serial]
    monkeypatch.delenv("ANDROID_SERIAL")
    assert {d.serial for d in select_devices(config, all_=True)} == {first.serial, second.serial}
    with pytest.raises(DeviceError, match="not connected"):
        select_devices(config, ("127.0.0.1:1",))
    config.labels["bench"] = [second.serial]
    assert [d.serial for d in select_devices(config, labels=("bench",))] == [second.serial]
    with pytest.raises(UsageError, match="unknown device label"):
        select_devices(config, labels=("nope",))
    listed = {item.serial: item for item in list_all_devices(config.servers())}
    # adb shows the banner's model with every non-alphanumeric character as "_".
    assert listed[second.serial].model == re.sub(r"[^A-Za-z0-9]", "_", load_profile("vbudget4g").model)


def test_offline_device_is_listed_and_refused(adb_server: Any, vdevice_factory: Any) -> None:
    import time

    vd = vdevice_factory(name="gone")
    config = config_for(adb_server)
    vd.stop()  # the TCP connection drops; the server keeps the transport as offline while it retries
    deadline = time.monotonic() + 20
    state = "device"
    while time.monotonic() < deadline:
        state = {i.serial: i.state for i in list_all_devices(config.servers())}.get(vd.serial, "missing")
        if state != "device":
            break
        time.sleep(0.2)
    assert state == "offline"
    with pytest.raises(DeviceError, match="offline"):
        select_devices(config, (vd.serial,))


def test_ensure_file_is_content_addressed(device: Device, vdevice: Any, tmp_path: Path) -> None:
    binary = tmp_path / "probe"
    binary.write_bytes(b"#!/bin/sh\necho probe-ok\n")
    store = DeviceStore(device)
    remote = store.ensure_file(binary, "probe")
    assert device.shell([remote], check=True).stdout == b"probe-ok\n"
    host_copy = vdevice.sandbox_root / Path(remote).relative_to("/data/local/tmp")
    mtime = host_copy.stat().st_mtime_ns
    assert store.ensure_file(binary, "probe") == remote
    assert host_copy.stat().st_mtime_ns == mtime  # present: not pushed again
    host_copy.write_bytes(b"short")  # a damaged copy (wrong size) is replaced
    assert store.ensure_file(binary, "probe") == remote
    assert host_copy.read_bytes() == binary.read_bytes()
    with pytest.raises(UsageError):
        store.ensure_file(binary, "../escape")


def test_devices_of_two_servers(adb_server: Any, debian_adb_server: Any, vdevice_factory: Any) -> None:
    one = vdevice_factory(server=adb_server, name="srvA")
    two = vdevice_factory(server=debian_adb_server, name="srvB")
    from edgeship.config import AdbServer, Config

    config = Config(
        adb_servers=[AdbServer("127.0.0.1", adb_server.port), AdbServer("127.0.0.1", debian_adb_server.port)]
    )
    listed = {item.serial: item.adb_server for item in list_all_devices(config.servers())}
    assert listed[one.serial] == f"127.0.0.1:{adb_server.port}"
    assert listed[two.serial] == f"127.0.0.1:{debian_adb_server.port}"
    device = device_on(debian_adb_server, two)
    assert device_facts(device).model == load_profile("vflagship").model


def test_shell_v1_fallback_keeps_exit_codes(device: Device, tmp_path: Path) -> None:
    """A device without shell_v2 (old adbd): exit codes come from the marker, push still assembles."""
    device._features = {"cmd"}
    result = device.shell(["sh", "-c", "echo hi; exit 4"])
    assert (result.exit_code, result.stdout) == (4, b"hi\n")
    started = device.shell_start("echo started; exit 6")
    assert (started.wait(timeout=30).exit_code, started.v2) == (6, False)
    from edgeship.android_harness.push import push_bundle
    from tests.android_harness.synthetic import write_build

    build = write_build(tmp_path / "b", [("tf_lite_prefill_decode", os.urandom(300_000))])
    pushed = push_bundle(device, build)
    assert pushed.ok, pushed.error


def test_shell_timeout_is_a_deadline_and_kills_the_command(device: Device, vdevice: Any) -> None:
    import time

    started = time.monotonic()
    with pytest.raises(DeviceError, match="timed out"):
        device.shell("while true; do echo tick; sleep 0.05; done", timeout=1.0)
    assert time.monotonic() - started < 10
    assert device.shell("echo still-usable").stdout == b"still-usable\n"


def test_inventory_keeps_going_when_one_lab_host_is_down(adb_server: Any, vdevice: Any) -> None:
    from edgeship.android_harness.adb import inventory

    config = config_for(adb_server)
    dead = "192.0.2.1:5037"  # TEST-NET-1: never answers
    rows = inventory(config, (dead,))
    states = {(row.serial, row.state) for row in rows}
    assert (vdevice.serial, "device") in states and ("-", "unreachable") in states
    assert next(row for row in rows if row.state == "unreachable").adb_server == dead


class _Warnings(Reporter):
    """A Reporter that keeps the warnings it is given."""

    def __init__(self, into: list[str]) -> None:
        super().__init__()
        self.into = into

    def warn(self, message: str) -> None:
        self.into.append(message)


def test_selection_skips_a_lab_host_that_is_down_with_a_warning(adb_server: Any, vdevice: Any) -> None:
    from edgeship.android_harness.adb import select_devices

    dead = "192.0.2.1:5037"  # TEST-NET-1: never answers
    warnings: list[str] = []
    reporter = _Warnings(warnings)
    chosen = select_devices(config_for(adb_server), all_=True, servers=(dead,), reporter=reporter)
    assert [device.serial for device in chosen] == [vdevice.serial]
    assert len(warnings) == 1 and dead in warnings[0] and "\n" not in warnings[0]
    with pytest.raises(DeviceError, match=r"not connected .*not answering: 192\.0\.2\.1:5037"):
        select_devices(config_for(adb_server), ("emulator-5554",), servers=(dead,), reporter=reporter)


def test_no_answering_server_is_one_error() -> None:
    from edgeship.android_harness.adb import select_devices
    from edgeship.config import AdbServer, Config

    config = Config(adb_servers=[AdbServer("192.0.2.1", 5037), AdbServer("192.0.2.2", 5037)])
    with pytest.raises(DeviceError, match="no adb server answers"):
        select_devices(config, all_=True)


def test_a_local_server_is_started_when_none_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    from edgeship.android_harness.adb.servers import server_is_listening
    from edgeship.config import AdbServer
    from tests.fixtures.adb import BUNDLED_ADB, free_port

    monkeypatch.setenv("ADBUTILS_ADB_PATH", BUNDLED_ADB)
    server = AdbServer("127.0.0.1", free_port())
    assert not server_is_listening(server)
    try:
        assert list_all_devices([server]) == []  # a fresh server knows no device
        assert server_is_listening(server)
    finally:
        subprocess.run([BUNDLED_ADB, "-P", str(server.port), "kill-server"], capture_output=True, timeout=30)
