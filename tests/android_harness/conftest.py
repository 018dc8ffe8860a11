"""Helpers shared by the android_harness tests: a Config and Device for the private adb server, the probe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edgeship.android_harness.adb import select_devices
from edgeship.android_harness.adb.device import Device
from edgeship.android_harness.probe import build_probe
from edgeship.config import AdbServer, Config


@pytest.fixture(scope="session")
def probe_x86() -> Path:
    """The x86-64 probe, built by edgeship's own build path (probe/, profile/ and runners/ tests run it)."""
    return build_probe("x86_64")


def config_for(server: Any) -> Config:
    return Config(adb_servers=[AdbServer("127.0.0.1", server.port)])


def device_on(server: Any, vdevice: Any) -> Device:
    return select_devices(config_for(server), (vdevice.serial,))[0]


@pytest.fixture
def device(adb_server: Any, vdevice: Any) -> Device:
    return device_on(adb_server, vdevice)
