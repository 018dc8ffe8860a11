"""Runner adapters: how edgeship drives a runner binary and reads its output.

``get_adapter("litert_lm_main")`` also reads edgeship's x86-64 host runner, which prints the same text.
"""

from __future__ import annotations

from edgeship.android_harness.runners.base import BACKENDS, RunConfig, RunnerAdapter, RunnerMetrics
from edgeship.android_harness.runners.benchmark_model import BenchmarkModelAdapter
from edgeship.android_harness.runners.litert_lm_main import LiteRtLmMainAdapter
from edgeship.android_harness.runners.resolve import (
    LocalRunner,
    host_runner_launcher,
    resolve_runner,
)
from edgeship.errors import UsageError

ADAPTERS: dict[str, RunnerAdapter] = {
    LiteRtLmMainAdapter.name: LiteRtLmMainAdapter(),
    BenchmarkModelAdapter.name: BenchmarkModelAdapter(),
}


def get_adapter(name: str) -> RunnerAdapter:
    try:
        return ADAPTERS[name]
    except KeyError:
        raise UsageError(f"unknown runner {name!r} (known: {', '.join(ADAPTERS)})") from None


__all__ = [
    "ADAPTERS",
    "BACKENDS",
    "BenchmarkModelAdapter",
    "LiteRtLmMainAdapter",
    "LocalRunner",
    "RunConfig",
    "RunnerAdapter",
    "RunnerMetrics",
    "get_adapter",
    "host_runner_launcher",
    "resolve_runner",
]
