"""Probe test fixtures: the probe built by edgeship's own build path, and the fidelity target program."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def zig_cc(target: str, source: Path, output: Path) -> Path:
    """Build a test program with the same toolchain and flags family as the probe."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "ziglang",
            "cc",
            "-target",
            target,
            "-static",
            "-O2",
            str(source),
            "-o",
            str(output),
        ],
        check=True,
        capture_output=True,
        timeout=900,
    )
    return output


@pytest.fixture(scope="session")
def fidelity_x86(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return zig_cc("x86_64-linux-musl", HERE / "fidelity.c", tmp_path_factory.mktemp("fidelity") / "fidelity")


@pytest.fixture(scope="session")
def noptrace_x86(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``noptrace CMD…``: runs CMD where ptrace(2) fails with EPERM (seccomp), as on some locked phones."""
    return zig_cc("x86_64-linux-musl", HERE / "noptrace.c", tmp_path_factory.mktemp("noptrace") / "noptrace")
