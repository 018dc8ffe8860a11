"""Issue 4: a phone that never accepted this host's adb key (a virtual device with ``auth="deny"``).

`edgeship devices` lists it as unauthorized rather than dropping it; `push` and `profile` aimed at it fail
before any work with one line that says to accept the prompt, and a non-zero exit code.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from edgeship.android_harness.adb.selection import STATE_HINTS
from edgeship.errors import DeviceError
from tests.android_harness.synthetic import write_build
from tests.cli import EdgeshipCli


@pytest.fixture
def edgeship(cli: EdgeshipCli, adb_server: Any) -> EdgeshipCli:
    """The CLI as a user runs it, with only the test adb server configured."""
    return cli.with_config(f'adb_servers: ["{adb_server.address}"]\n')


@pytest.fixture
def locked(adb_server: Any, vdevice_factory: Any) -> Any:
    """A connected virtual device that asks for AUTH and never accepts (state `unauthorized`)."""
    return vdevice_factory(adb_server, auth="deny")


@pytest.fixture
def build(tmp_path: Path) -> Path:
    return write_build(tmp_path / "build", [("tf_lite_prefill_decode", os.urandom(200_000))])


def _assert_one_line_unauthorized(result: subprocess.CompletedProcess[str], serial: str) -> None:
    assert result.returncode == DeviceError.exit_code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert serial in lines[0] and "unauthorized" in lines[0] and STATE_HINTS["unauthorized"] in lines[0]


def test_devices_lists_the_unauthorized_device(edgeship: EdgeshipCli, locked: Any) -> None:
    listed = edgeship("devices", "--json")
    assert listed.returncode == 0, listed.stderr
    [entry] = [d for d in json.loads(listed.stdout) if d["serial"] == locked.serial]
    assert entry["state"] == "unauthorized"


def test_push_to_unauthorized_device_fails_in_one_line(
    edgeship: EdgeshipCli, locked: Any, build: Path
) -> None:
    pushed = edgeship("push", build, "--device", locked.serial)
    _assert_one_line_unauthorized(pushed, locked.serial)
    assert not any(locked.sandbox_root.iterdir())  # nothing reached the phone


def test_profile_on_unauthorized_device_fails_in_one_line(
    edgeship: EdgeshipCli, locked: Any, build: Path, tmp_path: Path
) -> None:
    profiled = edgeship("profile", build, "--device", locked.serial, "-o", tmp_path / "runs")
    _assert_one_line_unauthorized(profiled, locked.serial)
    assert not any(locked.sandbox_root.iterdir())
