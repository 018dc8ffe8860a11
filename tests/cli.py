"""The one way tests run the edgeship CLI: `python -m edgeship` in a subprocess, as a user runs it, isolated.

Each run gets
- its own ``EDGESHIP_HOME`` (digest cache, virtual-device registry) and its own working directory, so no
  ``./edgeship.yaml`` of the developer's checkout is read;
- no inherited ``EDGESHIP_CONFIG``, ``ANDROID_SERIAL`` or adb server variables: the adb server is the test's
  (``with_server``) and a config file is one the test wrote (``with_config``);
- ``PYTHONPATH`` led by this checkout, so the code under test runs whatever the working directory is.

``EDGESHIP_CACHE`` (built probes and host runners, content-addressed by their sources) is inherited: it holds
no configuration, and isolating it would rebuild the probe with zig in every test.

    def test_x(cli, adb_server):
        result = cli.with_server(adb_server)("devices", "--json")
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]

# What a developer's shell may carry that would point the CLI at their own lab, device or config.
LEAKY_VARIABLES = (
    "EDGESHIP_CONFIG",
    "EDGESHIP_HOME",
    "ANDROID_SERIAL",
    "ADB_SERVER_SOCKET",
    "ANDROID_ADB_SERVER_PORT",
    "ANDROID_ADB_SERVER_HOST",
)


def isolated_env(
    home: Path,
    adb_port: int | None = None,
    config: Path | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of one CLI run: this process's, minus LEAKY_VARIABLES, plus what the test chose."""
    env = {name: value for name, value in os.environ.items() if name not in LEAKY_VARIABLES}
    env["EDGESHIP_HOME"] = str(home)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]
    )
    if adb_port is not None:
        env["ANDROID_ADB_SERVER_PORT"] = str(adb_port)
    if config is not None:
        env["EDGESHIP_CONFIG"] = str(config)
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class EdgeshipCli:
    """``cli("push", BUILD, "--json")`` → CompletedProcess; ``cli.popen(...)``: a run the test interrupts."""

    root: Path
    adb_port: int | None = None
    config: Path | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def cwd(self) -> Path:
        return self.root / "cwd"

    def with_server(self, server: Any) -> EdgeshipCli:
        """The same home and cwd, talking to ``server`` (a tests.fixtures.adb.AdbServer) by default."""
        return dataclasses.replace(self, adb_port=server.port)

    def with_config(self, text: str, name: str = "edgeship.yaml") -> EdgeshipCli:
        """The same home and cwd, with ``text`` as the edgeship.yaml named by EDGESHIP_CONFIG."""
        path = self.root / "config" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return dataclasses.replace(self, config=path)

    def with_env(self, **extra: str) -> EdgeshipCli:
        return dataclasses.replace(self, extra_env={**self.extra_env, **extra})

    @property
    def env(self) -> dict[str, str]:
        return isolated_env(self.home, self.adb_port, self.config, self.extra_env)

    def argv(self, *args: str | Path) -> list[str]:
        return [sys.executable, "-m", "edgeship", *map(str, args)]

    def _prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.cwd.mkdir(parents=True, exist_ok=True)

    def __call__(
        self, *args: str | Path, timeout: float = 300, input: str = ""
    ) -> subprocess.CompletedProcess[str]:
        self._prepare()
        return subprocess.run(
            self.argv(*args),
            capture_output=True,
            text=True,
            input=input,
            env=self.env,
            cwd=self.cwd,
            timeout=timeout,
            check=False,
        )

    def popen(self, *args: str | Path) -> subprocess.Popen[str]:
        self._prepare()
        return subprocess.Popen(
            self.argv(*args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
            cwd=self.cwd,
        )


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[EdgeshipCli]:
    """An EdgeshipCli under ``tmp_path/cli/`` with no adb server and no config chosen yet."""
    yield EdgeshipCli(tmp_path / "cli")
