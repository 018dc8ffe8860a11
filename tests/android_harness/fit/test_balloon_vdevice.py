"""The balloon on a virtual device: a real process in the device's memory cgroup that leaves the target
available (as /proc/meminfo says inside the device), goes when its shell is closed, says when it was killed
(as lmkd would kill it on a phone), and cannot be asked to leave less than the device can give up."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from edgeship.android_harness.fit.limits import BalloonLimiter, LimitRefused, available_now
from edgeship.android_harness.store import DeviceStore
from tests.android_harness.conftest import device_on
from tests.vdevice.helpers import host_pids_with, require_memory_cgroup
from tests.vdevice.test_memory import small_profile

MIB = 1 << 20


def balloon_pids() -> list[int]:
    """Host pids of balloon processes (the device's own pid namespace hides them from its other shells)."""
    found = []
    for pid in host_pids_with("--target-available"):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"/balloon"):
            found.append(pid)
    return found


def settled_available(device: Any) -> int:
    time.sleep(0.6)  # the device rewrites its /proc/meminfo every half second
    value = available_now(device)
    assert value is not None
    return value


@pytest.fixture
def balloon(adb_server: Any, vdevice_factory: Any, tmp_path: Path) -> tuple[Any, Any, BalloonLimiter]:
    require_memory_cgroup()
    vdevice = vdevice_factory(adb_server, profile=str(small_profile(tmp_path, 512 * MIB)))
    device = device_on(adb_server, vdevice)
    limiter = BalloonLimiter.open(device)
    limiter.prepare(DeviceStore(device), "x86_64")
    limiter.configure(tolerance=2 * MIB, max_seconds=120)
    return vdevice, device, limiter


def test_the_balloon_leaves_the_target_and_goes_when_released(
    balloon: tuple[Any, Any, BalloonLimiter],
) -> None:
    vdevice, device, limiter = balloon
    before = settled_available(device)
    applied = limiter.apply(200 * MIB)
    try:
        assert applied.balloon is not None and applied.limit is None
        assert abs(applied.available - 200 * MIB) <= 2 * MIB  # what the balloon read back
        assert abs(settled_available(device) - 200 * MIB) <= 4 * MIB  # what anyone on the device reads
        assert applied.balloon.held >= before - 200 * MIB - 8 * MIB
        assert vdevice.memory.usage() >= applied.balloon.held  # its pages are the device's, not the host's
        assert len(balloon_pids()) == 1 and limiter.broken() is None
    finally:
        limiter.release()
    assert balloon_pids() == []
    assert settled_available(device) >= before - 8 * MIB


def test_a_balloon_killed_during_a_step_is_noticed(balloon: tuple[Any, Any, BalloonLimiter]) -> None:
    _, _, limiter = balloon
    limiter.apply(300 * MIB)
    try:
        [pid] = balloon_pids()
        os.kill(pid, signal.SIGKILL)  # what lmkd does to it on a phone
        deadline = time.monotonic() + 10
        broken = None
        while broken is None and time.monotonic() < deadline:
            broken = limiter.broken()
            time.sleep(0.1)
        assert broken == "the balloon was killed during the run (SIGKILL: lmkd or the OOM killer)"
    finally:
        limiter.release()


def test_a_target_at_the_devices_last_pages_is_held_or_refused_never_overshot(
    balloon: tuple[Any, Any, BalloonLimiter],
) -> None:
    """1 MiB left of 512: the balloon either holds it (within its tolerance, never below: it waits for a
    steady MemAvailable before it grows again) or is refused in one line (killed by the kernel while it
    grew, or MemAvailable never came down); either way nothing is left holding the device's memory."""
    _, device, limiter = balloon
    try:
        applied = limiter.apply(1 * MIB)
    except LimitRefused as refused:
        assert (
            "could not give that much memory up" in refused.message
            or "MemAvailable stayed" in refused.message
        )
    else:
        try:
            assert applied.balloon is not None and applied.available <= 1 * MIB + 2 * MIB
            assert applied.balloon.held > 400 * MIB and limiter.broken() is None
        finally:
            limiter.release()
    assert balloon_pids() == []
    assert settled_available(device) > 400 * MIB
