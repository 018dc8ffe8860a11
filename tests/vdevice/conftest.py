"""The edgeship CLI as a user runs it, for the virtual device tests: background daemons, a real adb server."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

CliRunner = Callable[..., subprocess.CompletedProcess[str]]


@dataclass
class EdgeshipCli:
    """``edgeship`` in a subprocess: its own EDGESHIP_HOME and cwd, no inherited EDGESHIP_CONFIG."""

    env: dict[str, str]
    cwd: Path
    started: bool = False

    def __call__(self, *args: str, timeout: float = 120, extra_env: dict[str, str] | None = None):
        result = subprocess.run(
            [sys.executable, "-m", "edgeship", *args],
            capture_output=True,
            text=True,
            env={**self.env, **(extra_env or {})},
            cwd=self.cwd,
            timeout=timeout,
        )
        if args[:2] == ("vdevice", "start") and result.returncode == 0:
            self.started = True
        return result

    def start(self, *args: str, extra_env: dict[str, str] | None = None) -> dict[str, object]:
        """`vdevice start ARGS --json`; the device record, or a failed test with the CLI's stderr."""
        result = self("vdevice", "start", *args, "--json", extra_env=extra_env)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


@pytest.fixture
def edgeship_cli(adb_server, tmp_path) -> Iterator[EdgeshipCli]:
    env = {**adb_server.env, "EDGESHIP_HOME": str(tmp_path / "home")}
    env.pop("EDGESHIP_CONFIG", None)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    cli = EdgeshipCli(env=env, cwd=cwd)
    yield cli
    if cli.started:
        cli("vdevice", "stop", "--all")
