"""The store's content-addressed files: two pushers of one binary at once each install it whole."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from edgeship.android_harness.adb.device import Device
from edgeship.android_harness.store import DeviceStore
from tests.android_harness.conftest import device_on


def test_two_pushers_of_one_file_each_install_it_whole(
    adb_server: Any, vdevice: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two profiles setting up one phone push the same probe at once: both sends finish before either
    verifies. On main both wrote bin/<sha>/probe.part; the first moved it into place and the second then
    failed ("installing probe failed")."""
    probe = tmp_path / "probe"
    probe.write_bytes(os.urandom(3 * 1024 * 1024))
    both_sent = threading.Barrier(2, timeout=60)
    real_push_file = Device.push_file

    def push_then_wait_for_the_other(self: Device, *args: Any, **kwargs: Any) -> int:
        sent = real_push_file(self, *args, **kwargs)
        both_sent.wait()
        return sent

    monkeypatch.setattr(Device, "push_file", push_then_wait_for_the_other)
    stores = [DeviceStore(device_on(adb_server, vdevice)) for _ in range(2)]
    results: list[str | BaseException] = [""] * 2

    def install(index: int) -> None:
        try:
            results[index] = stores[index].ensure_file(probe, "probe")
        except BaseException as exc:
            results[index] = exc

    threads = [threading.Thread(target=install, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert all(isinstance(result, str) for result in results), results
    assert results[0] == results[1]
    installed = vdevice.sandbox_root / Path(results[0]).relative_to("/data/local/tmp")  # type: ignore[arg-type]
    assert (
        hashlib.sha256(installed.read_bytes()).hexdigest() == hashlib.sha256(probe.read_bytes()).hexdigest()
    )
    assert sorted(path.name for path in installed.parent.iterdir()) == ["probe"]  # no .part left
