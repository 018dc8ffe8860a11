"""Cross-build the native runner (litert_lm_runner.c beside this file) and find the library it loads.

The runner links nothing but the C library at build time: it dlopens ``liblitert-lm.so`` of the litert-lm-api
wheel at run time, so it is built like the probe (zig, cached by source hash), only for a glibc target — the
wheel's library is a glibc build (it needs GLIBC_2.27), and a musl program cannot load it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from edgeship.android_harness.probe.build import CProgram
from edgeship.console import Reporter
from edgeship.errors import UsageError

LIBRARY_NAME = "liblitert-lm.so"
NATIVE_RUNNER_ABIS = ("x86_64",)

NATIVE_RUNNER = CProgram(
    source=Path(__file__).with_name("litert_lm_runner.c"),
    binary_name="litert_lm_runner",
    cache_dir="runners/native",
    # glibc 2.27: the oldest the wheel's library accepts, so the runner runs wherever the library does.
    targets={"x86_64": "x86_64-linux-gnu.2.27"},
    flags=("-O2", "-s", "-Wall"),
    libraries=("dl",),
)


def build_native_runner(
    abi: str = "x86_64", out: Path | None = None, reporter: Reporter | None = None
) -> Path:
    """The native runner binary for ``abi`` (only x86_64), built into the cache first when needed."""
    return NATIVE_RUNNER.build(abi, out, reporter)


def litert_lm_library() -> Path:
    """``liblitert-lm.so`` inside the installed litert-lm-api wheel (found without importing the package)."""
    spec = importlib.util.find_spec("litert_lm")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        candidate = Path(folder) / LIBRARY_NAME
        if candidate.is_file():
            return candidate
    raise UsageError(
        f"the native runner needs {LIBRARY_NAME} from litert-lm-api: pip install 'edgeship[runtime]' "
        "(or point to a runner with --runner PATH)"
    )
