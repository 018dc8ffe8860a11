"""Cross-build edgeship's C programs with ziglang, cached by source hash: the probe (probe.c beside this file,
static musl) and the native x86-64 runner (``runners/native``, glibc, since it loads the wheel's library).

Binaries are never in git: they are built on first use into
``$EDGESHIP_CACHE/<program cache dir>/<source sha256>/<abi>/<name>`` (``$EDGESHIP_CACHE`` defaults to
``~/.cache/edgeship``). The first zig call on a machine also builds the C library itself (~60 s); later builds
take well under a second. Several processes may build at once: each compiles to a private temporary name and
renames it into place, so a reader only ever sees a complete binary.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
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


class CrossBuildError(EdgeshipError):
    """The C toolchain (ziglang) is missing or failed on one of edgeship's C sources."""


ProbeBuildError = CrossBuildError  # the name callers of the probe's build know


@dataclass(frozen=True)
class CProgram:
    """One C source edgeship cross-builds: for which ABIs (zig targets), with which flags, cached where."""

    source: Path
    binary_name: str
    cache_dir: str  # under cache_root()
    targets: dict[str, str]
    flags: tuple[str, ...]
    libraries: tuple[str, ...] = field(default=())  # -l names, after the source

    def source_sha256(self) -> str:
        """sha256 of the source: the cache key of every binary built from it."""
        return hashlib.sha256(self.source.read_bytes()).hexdigest()

    def zig_target(self, abi: str) -> str:
        try:
            return self.targets[abi]
        except KeyError:
            raise UsageError(
                f"no {self.binary_name} build for ABI {abi!r} (known: {', '.join(self.targets)})"
            ) from None

    def cached_path(self, abi: str) -> Path:
        self.zig_target(abi)
        return cache_root() / self.cache_dir / self.source_sha256() / abi / self.binary_name

    def build(self, abi: str, out: Path | None = None, reporter: Reporter | None = None) -> Path:
        """The path of a binary for ``abi``, built into the cache first when needed.

        With ``out``, the cached binary is also copied there (atomically) and ``out`` is returned. ``out`` may
        be a folder (the binary is written into it under its own name) or a file path.
        """
        target = self.zig_target(abi)
        cached = self.cached_path(abi)
        if not cached.is_file():
            if reporter is not None:
                reporter.note(
                    f"building the {self.binary_name} for {abi} with zig (a machine's first zig build for a "
                    "C library also builds it, ~60 s)"
                )
            cached.parent.mkdir(parents=True, exist_ok=True)
            self._compile(target, cached)
        if out is None:
            return cached
        out = Path(out)
        if out.is_dir():
            out = out / self.binary_name
        out.parent.mkdir(parents=True, exist_ok=True)
        _atomic_copy(cached, out)
        return out

    def _compile(self, target: str, dest: Path) -> None:
        try:
            import ziglang  # noqa: F401  (only to give a clear message when it is missing)
        except ImportError:
            raise CrossBuildError(
                f"the {self.binary_name} is built with ziglang, which is not installed: "
                "pip install ziglang==0.17.0"
            ) from None
        fd, temp_name = tempfile.mkstemp(prefix=f".{self.binary_name}-", dir=dest.parent)
        os.close(fd)
        temp = Path(temp_name)
        command = [
            sys.executable, "-m", "ziglang", "cc", "-target", target, *self.flags,
            str(self.source), *(f"-l{name}" for name in self.libraries), "-o", str(temp),
        ]  # fmt: skip
        try:
            completed = subprocess.run(
                command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired:
            temp.unlink(missing_ok=True)
            raise CrossBuildError(
                f"building the {self.binary_name} for {target} took over {BUILD_TIMEOUT_S} s; "
                "is the machine overloaded?"
            ) from None
        if completed.returncode != 0 or temp.stat().st_size == 0:
            temp.unlink(missing_ok=True)
            first_error = next(
                (line for line in completed.stderr.splitlines() if "error" in line),
                completed.stderr.strip()[:300],
            )
            raise CrossBuildError(f"zig cc -target {target} failed on {self.source.name}: {first_error}")
        temp.chmod(0o755)
        os.replace(temp, dest)


PROBE = CProgram(
    source=PROBE_SOURCE,
    binary_name=PROBE_BINARY_NAME,
    cache_dir="probe",
    targets=ZIG_TARGETS,
    flags=COMPILE_FLAGS,
)


def cache_root() -> Path:
    """Where edgeship keeps built artefacts: $EDGESHIP_CACHE, else ~/.cache/edgeship."""
    configured = os.environ.get("EDGESHIP_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "edgeship"


def probe_source_sha256() -> str:
    """sha256 of probe.c: the cache key of every probe binary."""
    return PROBE.source_sha256()


def zig_target(abi: str) -> str:
    return PROBE.zig_target(abi)


def cached_probe_path(abi: str) -> Path:
    return PROBE.cached_path(abi)


def build_probe(abi: str, out: Path | None = None, reporter: Reporter | None = None) -> Path:
    """Return the path of a probe binary for ``abi``, building it into the cache first when needed
    (``CProgram.build``)."""
    return PROBE.build(abi, out, reporter)


def _atomic_copy(source: Path, dest: Path) -> None:
    fd, temp_name = tempfile.mkstemp(prefix=f".{source.name}-", dir=dest.parent)
    os.close(fd)
    try:
        shutil.copyfile(source, temp_name)
        os.chmod(temp_name, 0o755)
        os.replace(temp_name, dest)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
