"""Which runner binary to push for a device ABI: a phone's ``litert_lm_main``, or one of edgeship's own
x86-64 runners on litert-lm-api.

Order: ``--runner`` (explicit), else edgeship.yaml ``runners: {<abi>: …}``, else — for x86_64 only — the
native runner. Either value is a path, or the name of a built-in runner:

- ``native`` (the x86_64 default): ``runners/native``, C, cross-built with zig; it loads the wheel's
  ``liblitert-lm.so``, which is pushed beside it (content-addressed, LD_LIBRARY_PATH names its folder), so a
  device needs nothing but its system libraries;
- ``host-python``: ``host_runner.py`` under the venv's python (a launcher script); a device needs that python
  and litert-lm-api, and every memory figure includes the interpreter.

A file that happens to be called ``native`` is named with a folder: ``./native``. edgeship cannot download
``litert_lm_main`` for phones: LiteRT-LM publishes it on its GitHub releases page, and the user points to it.
A path may name the binary or the folder it sits in (a release's ``android_arm64`` folder). For GPU/NPU the
accelerator ``.so`` files beside it are pushed too and LD_LIBRARY_PATH names their device folders.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from edgeship.android_harness.probe import cache_root
from edgeship.android_harness.runners.native import build_native_runner, litert_lm_library
from edgeship.errors import UsageError
from edgeship.files import write_text_atomic

RUNNER_NAME = "litert_lm_main"
BINARY_NAMES = ("litert_lm_main", "litert_lm_advanced_main")
HOST_RUNNER_ABIS = ("x86_64",)
NATIVE = "native"
HOST_PYTHON = "host-python"
BUILTIN_RUNNERS = (NATIVE, HOST_PYTHON)
RELEASES_URL = "https://github.com/google-ai-edge/LiteRT-LM/releases"
# Linux reads at most this many bytes of a "#!" line (BINPRM_BUF_SIZE); a longer interpreter path is cut.
MAX_SHEBANG_BYTES = 255
# Shipped next to litert_lm_main in releases and loaded at start by recent builds even on CPU.
ALWAYS_NEEDED_LIBRARY_HINTS = ("ConstraintProvider",)


@dataclass
class LocalRunner:
    """A runner on this machine, ready to be pushed."""

    name: str  # the adapter that parses its output
    path: Path
    extra_files: list[Path] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    builtin: str | None = None  # NATIVE or HOST_PYTHON for edgeship's own runners, None for a user's binary
    version: str | None = None

    @property
    def needs_library_path(self) -> bool:
        return any(path.suffix == ".so" or ".so." in path.name for path in self.extra_files)

    def device_env(self, library_dirs: list[str]) -> dict[str, str]:
        """Environment for the run on the device, given the device folders the extra files landed in."""
        env = dict(self.env)
        if self.needs_library_path and library_dirs:
            unique = list(dict.fromkeys(library_dirs))
            env["LD_LIBRARY_PATH"] = ":".join(unique)
        return env


def resolve_runner(
    abi: str, explicit: str | None, config_runners: dict[str, str], backend: str = "cpu"
) -> LocalRunner:
    """The runner for a device of ``abi``; raises UsageError with what to do when there is none."""
    choice, origin = (
        (explicit, "--runner") if explicit else (config_runners.get(abi), f"edgeship.yaml runners.{abi}")
    )
    if choice in BUILTIN_RUNNERS:
        return builtin_runner(choice, abi, origin)
    if choice:
        return _local_binary(Path(choice).expanduser(), origin, backend)
    if abi in HOST_RUNNER_ABIS:
        return builtin_runner(NATIVE, abi, "the x86_64 default runner")
    raise UsageError(
        f"no litert_lm_main for ABI {abi}: edgeship cannot download it; get the android_arm64 build from "
        f"LiteRT-LM releases ({RELEASES_URL}) and set it in edgeship.yaml (runners: {{{abi}: PATH}}) "
        "or pass --runner PATH"
    )


def builtin_runner(which: str, abi: str, origin: str) -> LocalRunner:
    """edgeship's own runner ``which`` (NATIVE or HOST_PYTHON) for an x86_64 device, built (or written)."""
    if abi not in HOST_RUNNER_ABIS:
        raise UsageError(
            f"{origin}: the {which} runner is for x86_64 devices (this one is {abi}); point to "
            "litert_lm_main for it with --runner PATH"
        )
    if importlib.util.find_spec("litert_lm") is None:
        raise UsageError(
            f"{origin}: the {which} runner needs litert-lm-api: pip install 'edgeship[runtime]' "
            "(or point to a runner with --runner PATH)"
        )
    if which == HOST_PYTHON:
        launcher = host_runner_launcher(cache_root() / "runners" / "host")
        return LocalRunner(
            name=RUNNER_NAME,
            path=launcher,
            builtin=HOST_PYTHON,
            version=f"host-python-litert-lm-api-{_api_version()}",
        )
    return LocalRunner(
        name=RUNNER_NAME,
        path=build_native_runner(abi),
        extra_files=[litert_lm_library()],
        builtin=NATIVE,
        version=f"native-litert-lm-api-{_api_version()}",
    )


def _local_binary(path: Path, origin: str, backend: str) -> LocalRunner:
    if path.is_dir():
        candidates = [path / name for name in BINARY_NAMES if (path / name).is_file()]
        if not candidates:
            raise UsageError(f"{origin}: folder {path} holds no {' or '.join(BINARY_NAMES)}")
        path = candidates[0]
    if not path.is_file():
        raise UsageError(f"{origin}: runner {path} does not exist; check the path")
    libraries = sorted(p for p in path.parent.glob("*.so") if p.is_file())
    if backend == "cpu":
        libraries = [p for p in libraries if any(hint in p.name for hint in ALWAYS_NEEDED_LIBRARY_HINTS)]
    elif not libraries:
        raise UsageError(
            f"backend {backend} needs the accelerator .so files beside {path.name} (from the same LiteRT-LM "
            f"release folder); none found in {path.parent}"
        )
    return LocalRunner(name=RUNNER_NAME, path=path, extra_files=libraries)


def _api_version() -> str:
    try:
        return version("litert-lm-api")
    except PackageNotFoundError:
        return "unknown"


def launcher_text(python: str | None = None) -> str:
    """The launcher script: host_runner.py's own text under a ``#!`` line of this venv's python (it imports
    nothing of edgeship, so the device needs the venv's python and litert-lm-api, not the package)."""
    python = python or sys.executable
    source = Path(__file__).with_name("host_runner.py").read_text()
    shebang = f"#!{python}"
    if len(shebang.encode()) > MAX_SHEBANG_BYTES:
        raise UsageError(
            f"the python path {python} is longer than the {MAX_SHEBANG_BYTES - 2} bytes a #! line allows; "
            "use a venv at a shorter path for the host runner"
        )
    return (
        f"{shebang}\n"
        "# edgeship's Python host runner (x86-64): litert_lm_main's flags and output on litert-lm-api.\n"
        "# Written by edgeship.android_harness.runners.resolve; exec'ing it makes python the exact pid.\n"
        f"{source}"
    )


def host_runner_launcher(dest_dir: Path) -> Path:
    """Write (once, atomically) the launcher into ``dest_dir/<content sha256 prefix>/litert_lm_main``."""
    text = launcher_text()
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    target = Path(dest_dir) / digest / RUNNER_NAME
    if target.is_file() and target.read_text() == text and os.access(target, os.X_OK):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(target, text, mode=0o755)
