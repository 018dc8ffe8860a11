"""Shared pieces of the quantize/verify end-to-end tests: the CLI, preset builds, a snapshot of a folder."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from edgeship.quantize.recipes import PRESETS
from tests.cli import EdgeshipCli


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    """`python -m edgeship ARGS` through the tests' one CLI helper (tests/cli.py: own cwd, no inherited
    EDGESHIP_CONFIG), with this session's EDGESHIP_HOME (``private_edgeship_home``: the digests and reference
    logits these tests share); ``env`` adds variables, e.g. the EDGESHIP_CONFIG a test wrote."""
    root = Path(os.environ["EDGESHIP_HOME"]).parent  # EdgeshipCli(root).home is root/home
    return EdgeshipCli(root).with_env(**(env or {}))(*args, timeout=timeout)


def load_manifest(build: Path) -> dict:
    """manifest.json as read and checked by the one build-dir reader."""
    from edgeship.exporter.manifest import read_build

    return dict(read_build(build).manifest)


def json_out(result: subprocess.CompletedProcess) -> dict:
    return json.loads(result.stdout)


def snapshot(folder: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under ``folder``: size, mtime and sha256 — to show a failed command changed nothing."""
    return {
        str(path.relative_to(folder)): (
            path.stat().st_size,
            path.stat().st_mtime_ns,
            hashlib.sha256(path.read_bytes()).hexdigest(),
        )
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def one_line_error(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("edgeship: error:")]
    assert len(lines) == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture(scope="session")
def tiny_float_build(build_factory: Callable[[str, str, str], Path]) -> Path:
    """The tiny Gemma-4 exported float (read-only: copy before verify writes its accuracy)."""
    return build_factory("gemma4", "tiny", "float")


# int4-b64 needs input dimensions that are multiples of 64, the tiny model's are multiples of 32: its refusal
# is a bad-input test; its figures come from the ple-heavy and real checkpoints (benchmarks/verify_bench.py).
TINY_PRESETS = tuple(p for p in PRESETS if p != "int4-b64")


@pytest.fixture(scope="session")
def preset_builds(tiny_float_build: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every preset that applies to the tiny model, made from the float build with `edgeship quantize`."""
    out = tmp_path_factory.mktemp("presets")
    builds = {}
    for preset in TINY_PRESETS:
        target = out / preset
        result = cli("quantize", str(tiny_float_build), "--recipe", preset, "-o", str(target), "--quiet")
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.strip() == str(target)
        builds[preset] = target
    return builds


@pytest.fixture
def float_copy(tiny_float_build: Path, tmp_path: Path) -> Path:
    """A private copy of the float build that a test may change."""
    target = tmp_path / "build"
    shutil.copytree(tiny_float_build, target)
    return target


@pytest.fixture(scope="session")
def gemma3_export_verify(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """`edgeship export --verify` of the tiny Gemma 3 (no PLE, embedder inside the main graph), float.

    Returns the build (read-only: copy it before changing it) and the command's JSON output.
    """
    from tests.fixtures.builds import cached_checkpoint

    build = tmp_path_factory.mktemp("gemma3") / "float"
    result = cli(
        "export", str(cached_checkpoint("gemma3", "tiny")), "-o", str(build), "--recipe", "float", "--verify",
        "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return build, json_out(result)


@pytest.fixture(scope="session")
def gemma3_float_build(gemma3_export_verify: tuple[Path, dict]) -> Path:
    return gemma3_export_verify[0]


@pytest.fixture(scope="session", autouse=True)
def private_edgeship_home(tmp_path_factory: pytest.TempPathFactory):
    """Known digests and cached reference logits of these tests live in a folder of their own."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EDGESHIP_HOME", str(tmp_path_factory.mktemp("edgeship-cli") / "home"))
        yield
