"""Device-selection flags as a user types them: `devices --adb`, `push --all`, `--label` (edgeship.yaml).

Each push is checked on the devices themselves (their own sha256sum), and a device left out holds nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from edgeship.errors import UsageError
from edgeship.exporter.manifest import read_build
from tests.android_harness.synthetic import write_build
from tests.android_harness.traffic import device_sha256
from tests.cli import EdgeshipCli


@pytest.fixture
def build(tmp_path: Path) -> Path:
    return write_build(tmp_path / "build", [("tf_lite_prefill_decode", os.urandom(300_000))])


def _store(vdevice: Any) -> Path:
    return vdevice.sandbox_root / "edgeship" / "bundles"


def test_devices_adb_adds_a_server_named_on_the_command_line(
    cli: EdgeshipCli, adb_server: Any, debian_adb_server: Any, vdevice_factory: Any
) -> None:
    """--adb servers come on top of edgeship.yaml's adb_servers; the local default is asked only when no
    server is named at all (config.Config.servers)."""
    here = vdevice_factory(adb_server, name="here")
    there = vdevice_factory(debian_adb_server, name="there")

    def listed(edgeship: EdgeshipCli, *args: str) -> dict[str, str]:
        result = edgeship("devices", *args, "--json")
        assert result.returncode == 0, result.stderr
        return {d["serial"]: d["adb_server"] for d in json.loads(result.stdout)}

    local = cli.with_server(adb_server)  # the local default is the bundled adb's server
    assert listed(local) == {here.serial: adb_server.address}
    assert listed(local, "--adb", debian_adb_server.address) == {there.serial: debian_adb_server.address}
    configured = cli.with_config(f'adb_servers: ["{adb_server.address}"]\n')
    assert listed(configured, "--adb", debian_adb_server.address) == {
        here.serial: adb_server.address,
        there.serial: debian_adb_server.address,
    }


def test_push_all_reaches_every_online_device(
    cli: EdgeshipCli, adb_server: Any, vdevice_factory: Any, build: Path
) -> None:
    phones = [vdevice_factory(adb_server, name=f"all{i}") for i in range(2)]
    pushed = cli.with_server(adb_server)("push", build, "--all", "--json")
    assert pushed.returncode == 0, pushed.stderr
    rows = {row["serial"]: row for row in json.loads(pushed.stdout)}
    assert set(rows) == {phone.serial for phone in phones}
    sha = read_build(build).sha256
    for phone in phones:
        assert rows[phone.serial]["ok"], rows[phone.serial]
        assert device_sha256(adb_server, phone.serial, rows[phone.serial]["remote_path"]) == sha


def test_label_from_edgeship_yaml_selects_its_devices_only(
    cli: EdgeshipCli, adb_server: Any, vdevice_factory: Any, build: Path
) -> None:
    inside, outside = (vdevice_factory(adb_server, name=name) for name in ("labelled", "other"))
    lab = cli.with_config(f'adb_servers: ["{adb_server.address}"]\nlabels:\n  bench: ["{inside.serial}"]\n')
    pushed = lab("push", build, "--label", "bench", "--json")
    assert pushed.returncode == 0, pushed.stderr
    [row] = json.loads(pushed.stdout)
    assert row["serial"] == inside.serial and row["ok"], row
    assert device_sha256(adb_server, inside.serial, row["remote_path"]) == read_build(build).sha256
    assert not _store(outside).exists()  # the device outside the label got nothing
    unknown = lab("push", build, "--label", "nope")
    assert unknown.returncode == UsageError.exit_code
    assert "unknown device label 'nope'" in unknown.stderr and "bench" in unknown.stderr
