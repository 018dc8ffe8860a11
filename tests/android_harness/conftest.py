"""Helpers shared by the android_harness tests: a Config and Device for the private adb server."""

from __future__ import annotations

from typing import Any

import pytest

from edgeship.android_harness.device import Device
from edgeship.android_harness.selection import select_devices
from edgeship.config import AdbServer, Config


def config_for(server: Any) -> Config:
    return Config(adb_servers=[AdbServer("127.0.0.1", server.port)])


def device_on(server: Any, vdevice: Any) -> Device:
    return select_devices(config_for(server), (vdevice.serial,))[0]


@pytest.fixture
def device(adb_server: Any, vdevice: Any) -> Device:
    return device_on(adb_server, vdevice)
