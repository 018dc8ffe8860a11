"""``vdevice-ram:``: a harness sets a virtual device's RAM through adb and the device restores it when the
stream ends — closed, or its holder killed. Through a real adb server, as a harness on another host would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from edgeship.android_harness.adb import ServiceRefused
from edgeship.errors import DeviceError
from tests.android_harness.conftest import device_on
from tests.vdevice.helpers import require_memory_cgroup
from tests.vdevice.test_memory import meminfo_of, small_profile

MIB = 1024 * 1024


def wait_for_limit(device, expected: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if device.memory.limit() == expected:
            return expected
        time.sleep(0.05)
    return device.memory.limit()


def test_a_lease_sets_the_ram_and_restores_it_when_closed(adb_server, vdevice_factory, tmp_path):
    require_memory_cgroup()
    vdevice = vdevice_factory(adb_server, profile=str(small_profile(tmp_path, 512 * MIB)))
    device = device_on(adb_server, vdevice)
    lease = device.open_service("vdevice-ram:")
    try:
        assert lease.read_line(10) == f"ram {512 * MIB} {512 * MIB}"
        lease.send_line(f"set {200 * MIB}")
        assert lease.read_line(10) == f"ok {200 * MIB}"
        # /proc/meminfo inside shows the new RAM as soon as the answer came
        assert meminfo_of(device.shell("cat /proc/meminfo").text)["MemTotal"] == 200 * MIB
        second = device.open_service("vdevice-ram:")
        assert second.read_line(10).startswith("error the RAM is held by another vdevice-ram stream")
        second.close()
    finally:
        lease.close()
    assert wait_for_limit(vdevice, 512 * MIB) == 512 * MIB
    # the lease is free again
    again = device.open_service("vdevice-ram:")
    assert again.read_line(10).startswith("ram ")
    again.send_line("nonsense")
    assert again.read_line(10).startswith("error unknown request")
    again.close()


def test_bad_requests_are_answered_and_the_ram_stays(adb_server, vdevice_factory, tmp_path):
    require_memory_cgroup()
    vdevice = vdevice_factory(adb_server, profile=str(small_profile(tmp_path, 256 * MIB)))
    device = device_on(adb_server, vdevice)
    lease = device.open_service("vdevice-ram:")
    try:
        lease.read_line(10)
        lease.send_line("set 1024")  # below what a device needs for its shell
        answer = lease.read_line(10)
        assert answer.startswith("error ") and "below" in answer
        assert vdevice.memory.limit() == 256 * MIB
        lease.send_line(f"set {100 * MIB}")
        assert lease.read_line(10) == f"ok {100 * MIB}"
        lease.send_line("reset")
        assert lease.read_line(10) == f"ok {256 * MIB}"
    finally:
        lease.close()


HOLDER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, sys.argv[3])
    from edgeship.android_harness.adb import select_devices
    from edgeship.config import AdbServer, Config
    [device] = select_devices(Config(adb_servers=[AdbServer("127.0.0.1", int(sys.argv[1]))]), (sys.argv[2],))
    lease = device.open_service("vdevice-ram:")
    lease.read_line(10)
    lease.send_line("set %d" % (96 << 20))
    print(lease.read_line(10), flush=True)
    time.sleep(600)
    """
)


def test_a_killed_holder_leaves_no_shrunken_device(adb_server, vdevice_factory, tmp_path):
    """SIGKILL of the harness: its adb server closes the stream, and the device puts its RAM back."""
    require_memory_cgroup()
    vdevice = vdevice_factory(adb_server, profile=str(small_profile(tmp_path, 384 * MIB)))
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(adb_server.port), vdevice.serial, root],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == f"ok {96 * MIB}"
        assert vdevice.memory.limit() == 96 * MIB
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
        assert wait_for_limit(vdevice, 384 * MIB) == 384 * MIB
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_a_device_without_a_cgroup_says_why(adb_server, vdevice_factory, tmp_path, monkeypatch):
    from edgeship.vdevice import memory

    def unavailable(_name: str, _limit: int) -> memory.MemoryCgroup:
        raise memory.MemoryUnavailable("a memory cgroup needs root")

    monkeypatch.setattr(memory.MemoryCgroup, "create", unavailable)
    vdevice = vdevice_factory(adb_server)
    device = device_on(adb_server, vdevice)
    lease = device.open_service("vdevice-ram:")
    try:
        answer = lease.read_line(10)
    finally:
        lease.close()
    assert answer == "error no memory cgroup (a memory cgroup needs root): this device has the host's RAM"


def test_a_service_the_device_does_not_have_is_refused(adb_server, vdevice):
    device = device_on(adb_server, vdevice)
    with pytest.raises(ServiceRefused, match="refused vdevice-nothing:"):
        device.open_service("vdevice-nothing:")
    assert isinstance(ServiceRefused("x"), DeviceError)
