"""The cable speed of a virtual device: bytes are paced, and still arrive intact."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from edgeship.vdevice import VirtualDevice
from edgeship.vdevice.link import LinkPacer


def test_pacer_holds_the_rate_after_its_burst() -> None:
    pacer = LinkPacer(10.0)  # 10 MB/s
    started = time.monotonic()
    for _ in range(40):
        pacer.received(25_000)  # 1 MB in all
    elapsed = time.monotonic() - started
    # Lower bound only (a sleep never ends early): 1 MB minus the burst at 10 MB/s.
    assert elapsed >= (1_000_000 - pacer.inbound.burst) / 10e6 * 0.95


def test_a_paced_device_receives_a_push_intact_and_no_faster_than_its_link(
    adb_server, tmp_path: Path
) -> None:
    data = os.urandom(6 * 1024 * 1024)
    source = tmp_path / "blob"
    source.write_bytes(data)
    with VirtualDevice(name="cable", root=tmp_path / "vd", link_mb_per_s=30.0) as device:
        adb_server.connect(device.serial)
        try:
            started = time.monotonic()
            adb_server.run("-s", device.serial, "push", str(source), "/data/local/tmp/blob", check=True)
            elapsed = time.monotonic() - started
        finally:
            adb_server.disconnect(device.serial)
        received = device.sandbox_root / "blob"
        assert hashlib.sha256(received.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert elapsed >= len(data) / 30e6 * 0.9
