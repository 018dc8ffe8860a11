"""The edgeship CLI as a user runs it, for the virtual device tests: background daemons, a real adb server.

``edgeship_cli`` is the tests' one CLI helper (tests/cli.py: its own EDGESHIP_HOME and cwd, no inherited
EDGESHIP_CONFIG) on the test's adb server, plus ``start`` and a `vdevice stop --all` at the end when a
device was started.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli import EdgeshipCli


@dataclass
class VdeviceCli:
    cli: EdgeshipCli
    started: bool = False

    def __call__(
        self, *args: str, timeout: float = 120, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = (self.cli.with_env(**extra_env) if extra_env else self.cli)(*args, timeout=timeout)
        if args[:2] == ("vdevice", "start") and result.returncode == 0:
            self.started = True
        return result

    def start(self, *args: str, extra_env: dict[str, str] | None = None) -> dict[str, object]:
        """`vdevice start ARGS --json`; the device record, or a failed test with the CLI's stderr."""
        result = self("vdevice", "start", *args, "--json", extra_env=extra_env)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


@pytest.fixture
def edgeship_cli(adb_server, tmp_path: Path) -> Iterator[VdeviceCli]:
    # Built here rather than from the `cli` fixture, which test_cli.py overrides with a vdevice shortcut.
    runner = VdeviceCli(EdgeshipCli(tmp_path / "cli").with_server(adb_server))
    yield runner
    if runner.started:
        runner("vdevice", "stop", "--all")
