"""The runner adapters by name: ``get_adapter("litert_lm_main")`` (which also reads edgeship's x86-64 host
runner: it prints the same text)."""

from __future__ import annotations

from edgeship.android_harness.runners.base import RunnerAdapter
from edgeship.android_harness.runners.benchmark_model import BenchmarkModelAdapter
from edgeship.android_harness.runners.litert_lm_main import LiteRtLmMainAdapter
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
