"""One benchmark run of one of edgeship's x86-64 runners under the probe, as `edgeship profile` runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from edgeship.android_harness.probe import ProbeRun, build_probe, probe_command, read_probe_output
from edgeship.android_harness.runners import RunConfig, RunnerMetrics, get_adapter, resolve_runner


def run_probed_benchmark(
    which: str, build: Path, tmp_path: Path, **probe_options: Any
) -> tuple[ProbeRun, RunnerMetrics, RunConfig, dict[str, Any]]:
    """Runner ``which`` (native, host-python) on ``build``'s bundle: 2 iterations of 32 + 48 tokens with a log
    sink, under the probe with the bundle's mappings tracked. Returns the probe's run (checked ok), the
    parsed metrics, the config and the manifest."""
    manifest = json.loads((build / "manifest.json").read_text())
    # A copy: the engine writes its XNNPACK weight cache beside the bundle, and the cached build is shared.
    bundle = tmp_path / "model.litertlm"
    shutil.copyfile(build / manifest["bundle"]["file"], bundle)
    runner = resolve_runner("x86_64", which, {})
    adapter = get_adapter(runner.name)
    sink = tmp_path / "sink.txt"
    cfg = RunConfig(prefill=32, decode=48, iterations=2, log_sink_path=str(sink), threads=1)
    out = tmp_path / "run"
    argv = probe_command(
        str(build_probe("x86_64")),
        str(out),
        adapter.build_command(str(bundle), cfg, runner_path=str(runner.path)),
        maps=[str(bundle)],
        **probe_options,
    )
    env = {**os.environ, **runner.device_env([str(extra.parent) for extra in runner.extra_files])}
    completed = subprocess.run(argv, capture_output=True, timeout=300, env=env)
    run = read_probe_output(out)
    assert completed.returncode == 0, run.stderr()[-2000:]
    assert run.ok and run.argv[0] == str(runner.path)  # the runner is the exact pid the probe sampled
    metrics = adapter.parse(run.stdout(), run.stderr(), sink.read_text())
    return run, metrics, cfg, manifest
