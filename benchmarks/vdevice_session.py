"""One virtual device on a private adb server for a benchmark script, stopped however the script ends."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ple_residency import adb_binary, check, edgeship, free_port


@contextmanager
def virtual_device(work: Path, name: str, profile: str = "vflagship") -> Iterator[tuple[str, dict[str, str]]]:
    """(serial, environment for `edgeship` commands that reach it)."""
    port = free_port()
    env = {**os.environ, "ANDROID_ADB_SERVER_PORT": str(port)}
    env.pop("ADB_SERVER_SOCKET", None)
    adb = adb_binary()
    name = f"{name}-{os.getpid()}"
    check(subprocess.run([adb, "-P", str(port), "start-server"], capture_output=True, text=True), "adb start")
    try:
        started = check(
            edgeship("vdevice", "start", "--name", name, "--profile", profile, "--root", str(work / name),
                     "--json", env=env),
            "vdevice start",
        )  # fmt: skip
        yield json.loads(started.stdout)["serial"], env
    finally:
        edgeship("vdevice", "stop", name, env=env, timeout=120)
        subprocess.run([adb, "-P", str(port), "kill-server"], capture_output=True)
