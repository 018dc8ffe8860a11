"""Runner adapters: how edgeship drives a runner binary and reads its output, and which binary to push.

Modules: ``base`` (RunConfig, RunnerMetrics, the RunnerAdapter protocol), ``litert_lm_main`` and
``benchmark_model`` (command lines and parsers), ``registry`` (adapters by name), ``resolve`` (the local
binary for a device ABI, edgeship's own x86-64 runners by name), ``native/`` (the native x86-64 runner: C on
liblitert-lm.so, the x86_64 default) and ``host_runner`` (the Python one on litert-lm-api, ``host-python``);
both take litert_lm_main's flags and print its text, so ``get_adapter("litert_lm_main")`` reads them.
Names resolve lazily: the CLI reads ``BACKENDS`` without compiling every parser's patterns.
"""

from edgeship.lazy import lazy_exports

_PUBLIC = {
    "BACKENDS": "edgeship.android_harness.runners.base",
    "RunConfig": "edgeship.android_harness.runners.base",
    "RunnerAdapter": "edgeship.android_harness.runners.base",
    "RunnerMetrics": "edgeship.android_harness.runners.base",
    "ADAPTERS": "edgeship.android_harness.runners.registry",
    "get_adapter": "edgeship.android_harness.runners.registry",
    "BenchmarkModelAdapter": "edgeship.android_harness.runners.benchmark_model",
    "LiteRtLmMainAdapter": "edgeship.android_harness.runners.litert_lm_main",
    "BUILTIN_RUNNERS": "edgeship.android_harness.runners.resolve",
    "HOST_PYTHON": "edgeship.android_harness.runners.resolve",
    "NATIVE": "edgeship.android_harness.runners.resolve",
    "LocalRunner": "edgeship.android_harness.runners.resolve",
    "builtin_runner": "edgeship.android_harness.runners.resolve",
    "host_runner_launcher": "edgeship.android_harness.runners.resolve",
    "resolve_runner": "edgeship.android_harness.runners.resolve",
}
__all__ = sorted(_PUBLIC)
__getattr__ = lazy_exports(__name__, _PUBLIC)
