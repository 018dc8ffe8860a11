"""The native x86-64 runner (C on liblitert-lm.so's C API): flags and errors like litert_lm_main, and end to
end on a real exported bundle under the probe, read by the same parser as the Python runner."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from edgeship.android_harness.runners import resolve_runner
from edgeship.android_harness.runners.native import build_native_runner
from tests.android_harness.runners.probed import run_probed_benchmark


def run_native(*args: str, library_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "LD_LIBRARY_PATH"}
    if library_dir is not None:
        env["LD_LIBRARY_PATH"] = str(library_dir)
    return subprocess.run(
        [str(build_native_runner()), *args], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model_path=/m", "--bogus=1"], "Unknown command line flag 'bogus'"),
        (["--benchmark"], "--model_path is required"),
        (
            ["--model_path=/m", "--num_iterations=x"],
            "illegal value 'x' specified for int flag 'num_iterations'",
        ),
        (["--model_path=/m", "--backend=tpu"], "--backend must be cpu, gpu or npu (got 'tpu')"),
        (["--model_path=/m", "--benchmark=maybe"], "illegal value 'maybe' for bool flag 'benchmark'"),
        (
            ["--model_path=/m", "--benchmark_decode_tokens"],
            "flag '--benchmark_decode_tokens' is missing its argument",
        ),
        (
            ["--model_path=/none.litertlm", "--benchmark", "--async=false"],
            "model file not found: /none.litertlm",
        ),
        (["--model_path=/m", "--nobenchmark"], "only implements --benchmark runs"),
    ],
)
def test_flag_errors_are_one_line_and_exit_1(argv: list[str], message: str) -> None:
    completed = run_native(*argv)
    assert completed.returncode == 1
    assert completed.stderr.startswith("ERROR: ") and message in completed.stderr
    assert completed.stderr.count("\n") == 1 and completed.stdout == ""


def test_a_missing_library_says_where_it_comes_from(tmp_path: Path) -> None:
    bundle = tmp_path / "m.litertlm"
    bundle.write_bytes(b"LITERTLM")
    completed = run_native(f"--model_path={bundle}", "--benchmark", library_dir=tmp_path)
    assert completed.returncode == 1
    assert "cannot load liblitert-lm.so" in completed.stderr and "LD_LIBRARY_PATH" in completed.stderr


@pytest.mark.e2e
def test_native_runner_under_the_probe_on_a_real_bundle(tiny_gemma4_build: Path, tmp_path: Path) -> None:
    assert resolve_runner("x86_64", None, {}).builtin == "native"  # the x86_64 default
    run, metrics, cfg, manifest = run_probed_benchmark("native", tiny_gemma4_build, tmp_path)

    # The same parser as for litert_lm_main and the Python runner: block, turns, log sink with medians.
    assert metrics.prefill_tokens == cfg.prefill and metrics.decode_tokens == cfg.decode
    assert metrics.decode_tok_s and metrics.decode_tok_s > 0 and metrics.prefill_tok_s > 0
    assert metrics.init_s and metrics.init_s > 0 and metrics.ttft_s and metrics.ttft_s > 0
    assert len(metrics.raw["decode_turns"]) == len(metrics.raw["prefill_turns"]) == cfg.iterations
    assert metrics.raw["log_sink"]["aggregated"] == "Aggregated metrics (median of 2 runs)"
    assert metrics.peak_mem_bytes and metrics.peak_mem_bytes > 0

    # The last engine is alive at exit: every section is measured there, within its own size.
    assert run.exit_sample is not None, run.exit_sample_note
    spans = [(s["kind"], s["offset"], s["end"]) for s in manifest["sections"]]
    for kind, entry in run.section_residency(spans).items():
        assert entry["resident_at_exit"] and 0 < entry["resident_at_exit"] <= entry["bytes"], kind
