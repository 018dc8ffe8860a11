"""edgeship's native x86-64 runner: C source (litert_lm_runner.c) and its cross-build (build.py)."""

from __future__ import annotations

from edgeship.android_harness.runners.native.build import (
    LIBRARY_NAME,
    NATIVE_RUNNER,
    NATIVE_RUNNER_ABIS,
    build_native_runner,
    litert_lm_library,
)

__all__ = [
    "LIBRARY_NAME",
    "NATIVE_RUNNER",
    "NATIVE_RUNNER_ABIS",
    "build_native_runner",
    "litert_lm_library",
]
