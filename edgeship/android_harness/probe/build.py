"""Cross-build the probe (probe.c beside this file) into a static musl binary with ziglang, cached by
source hash.

Binaries are never in git: they are built on first use into
``$EDGESHIP_CACHE/probe/<source sha256>/<abi>/probe`` (``$EDGESHIP_CACHE`` defaults to ``~/.cache/edgeship``).
The first zig call on a machine also builds musl itself (~60 s); later builds take well under a second.
Several processes may build at once: each compiles to a private temporary name and renames it into place, so a
reader only ever sees a complete binary.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from edgeship.console import Reporter
from edgeship.errors import EdgeshipError, UsageError

PROBE_SOURCE = Path(__file__).with_name("probe.c")
PROBE_BINARY_NAME = "probe"

# Android ABI name -> zig target triple. Static musl runs on Android's bionic kernels unchanged.
ZIG_TARGETS: dict[str, str] = {
    "arm64-v8a": "aarch64-linux-musl",
    "x86_64": "x86_64-linux-musl",
    "armeabi-v7a": "arm-linux-musleabihf",
    "x86": "x86-linux-musl",
}
# -s strips symbols: 70 KB instead of 1.6 MB to push to every phone.
COMPILE_FLAGS = ("-static", "-O2", "-s", "-Wall")
BUILD_TIMEOUT_S = 900


class ProbeBuildError(EdgeshipError):
    """The C toolchain (ziglang) is missing or failed on the probe source."""


def cache_root() -> Path:
    """Where edgeship keeps built artefacts: $EDGESHIP_CACHE, else ~/.cache/edgeship."""
    configured = os.environ.get("EDGESHIP_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "edgeship"


def probe_source_sha256() -> str:
    """sha256 of probe.c: the cache key of every probe binary."""
    return hashlib.sha256(PROBE_SOURCE.read_bytes()).hexdigest()


def zig_target(abi: str) -> str:
    try:
        return ZIG_TARGETS[abi]
    except KeyError:
        raise UsageError(f"no probe build for ABI {abi!r} (known: {', '.join(ZIG_TARGETS)})") from None


def cached_probe_path(abi: str) -> Path:
    zig_target(abi)
    return cache_root() / "probe" / probe_source_sha256() / abi / PROBE_BINARY_NAME


def build_probe(abi: str, out: Path | None = None, reporter: Reporter | None = None) -> Path:
    """Return the path of a probe binary for ``abi``, building it into the cache first when needed.

    With ``out``, the cached binary is also copied there (atomically) and ``out`` is returned. ``out`` may be
    a folder (the binary is written into it as ``probe``) or a file path.
    """
    target = zig_target(abi)
    cached = cached_probe_path(abi)
    if not cached.is_file():
        if reporter is not None:
            reporter.note(
                f"building the probe for {abi} with zig (a machine's first zig build also builds musl, ~60 s)"
            )
        cached.parent.mkdir(parents=True, exist_ok=True)
        _compile(target, cached)
    if out is None:
        return cached
    out = Path(out)
    if out.is_dir():
        out = out / PROBE_BINARY_NAME
    out.parent.mkdir(parents=True, exist_ok=True)
    _atomic_copy(cached, out)
    return out


def _compile(target: str, dest: Path) -> None:
    try:
        import ziglang  # noqa: F401  (only to give a clear message when it is missing)
    except ImportError:
        raise ProbeBuildError(
            "the probe is built with ziglang, which is not installed: pip install ziglang==0.17.0"
        ) from None
    fd, temp_name = tempfile.mkstemp(prefix=".probe-", dir=dest.parent)
    os.close(fd)
    temp = Path(temp_name)
    command = [
        sys.executable, "-m", "ziglang", "cc", "-target", target, *COMPILE_FLAGS,
        str(PROBE_SOURCE), "-o", str(temp),
    ]  # fmt: skip
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        temp.unlink(missing_ok=True)
        raise ProbeBuildError(
            f"building the probe for {target} took over {BUILD_TIMEOUT_S} s; is the machine overloaded?"
        ) from None
    if completed.returncode != 0 or temp.stat().st_size == 0:
        temp.unlink(missing_ok=True)
        first_error = next(
            (line for line in completed.stderr.splitlines() if "error" in line),
            completed.stderr.strip()[:300],
        )
        raise ProbeBuildError(f"zig cc -target {target} failed on {PROBE_SOURCE.name}: {first_error}")
    temp.chmod(0o755)
    os.replace(temp, dest)


def _atomic_copy(source: Path, dest: Path) -> None:
    fd, temp_name = tempfile.mkstemp(prefix=".probe-", dir=dest.parent)
    os.close(fd)
    try:
        shutil.copyfile(source, temp_name)
        os.chmod(temp_name, 0o755)
        os.replace(temp_name, dest)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
