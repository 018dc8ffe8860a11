"""The tests' CLI helper (tests/cli.py) keeps a developer's lab out of the tests and runs this checkout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.cli import REPO, EdgeshipCli


@pytest.fixture
def developer_shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """What a developer's shell carries: a config naming their lab, a default phone, a ./edgeship.yaml."""
    home = tmp_path / "developer"
    home.mkdir()
    (home / "lab.yaml").write_text("adb_servers: [unparsable\n")
    (home / "edgeship.yaml").write_text("not_a_key: 1\n")
    monkeypatch.setenv("EDGESHIP_CONFIG", str(home / "lab.yaml"))
    monkeypatch.setenv("ANDROID_SERIAL", "R5CT-DEVELOPERS-PHONE")
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", "1")
    monkeypatch.setenv("EDGESHIP_HOME", str(home / ".edgeship"))
    monkeypatch.chdir(home)
    return home


def test_nothing_of_the_developers_setup_reaches_the_cli(
    developer_shell: Path, cli: EdgeshipCli, adb_server: Any, vdevice: Any
) -> None:
    listed = cli.with_server(adb_server)("devices", "--json")
    assert listed.returncode == 0, listed.stderr  # neither lab.yaml nor ./edgeship.yaml was read
    assert vdevice.serial in [entry["serial"] for entry in json.loads(listed.stdout)]
    env = cli.with_server(adb_server).env
    assert "EDGESHIP_CONFIG" not in env and "ANDROID_SERIAL" not in env
    assert env["ANDROID_ADB_SERVER_PORT"] == str(adb_server.port)
    assert env["EDGESHIP_HOME"] == str(cli.home) and cli.home.is_relative_to(cli.root)
    assert cli.cwd != developer_shell and not (developer_shell / ".edgeship").exists()


def test_a_config_the_test_writes_is_the_one_read(developer_shell: Path, cli: EdgeshipCli) -> None:
    refused = cli.with_config("bogus_key: 1\n")("devices")
    assert refused.returncode == 2 and "bogus_key" in refused.stderr
    assert str(cli.root / "config" / "edgeship.yaml") in refused.stderr


def test_the_cli_runs_this_checkout(developer_shell: Path, cli: EdgeshipCli) -> None:
    cli.cwd.mkdir(parents=True, exist_ok=True)
    where = subprocess.run(
        [sys.executable, "-c", "import edgeship; print(edgeship.__file__)"],
        env=cli.env,
        cwd=cli.cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(REPO)
