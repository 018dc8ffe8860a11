"""The x86-64 host runner: its flag parsing, and end to end on a real exported bundle under the probe."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest

from edgeship.android_harness.probe import build_probe, probe_command, read_probe_output
from edgeship.android_harness.runners import RunConfig, get_adapter, resolve_runner
from edgeship.android_harness.runners.host_runner import FlagError, main, parse_flags

HAS_LITERT_LM = importlib.util.find_spec("litert_lm") is not None


def test_flags_absl_style() -> None:
    flags = parse_flags(
        ["--model_path=/m", "--benchmark", "--benchmark_prefill_tokens", "16", "--nodisable_cache",
         "--num_iterations=2", "--async=false", "--backend=cpu"]
    )  # fmt: skip
    assert flags.model_path == "/m" and flags.benchmark and flags.benchmark_prefill_tokens == 16
    assert flags.num_iterations == 2 and not flags.disable_cache and flags.ignored == ["async"]
    assert parse_flags(["--model_path=/m", "--benchmark=false"]).benchmark is False


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model_path=/m", "--bogus=1"], "Unknown command line flag 'bogus'"),
        (["--benchmark"], "--model_path is required"),
        (["--model_path=/m", "--num_iterations=x"], "illegal value 'x'"),
        (["--model_path=/m", "--backend=tpu"], "--backend must be"),
        (["--model_path=/m", "--benchmark=maybe"], "illegal value 'maybe'"),
    ],
)
def test_flag_errors(argv: list[str], message: str) -> None:
    with pytest.raises(FlagError, match=message):
        parse_flags(argv)


def test_main_reports_errors_like_the_real_binary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--model_path=/m", "--what"]) == 1
    assert capsys.readouterr().err.startswith("ERROR: Unknown command line flag")
    assert main([f"--model_path={tmp_path / 'none.litertlm'}", "--benchmark"]) == 1
    assert "model file not found" in capsys.readouterr().err


@pytest.mark.e2e
@pytest.mark.skipif(not HAS_LITERT_LM, reason="litert-lm-api not installed")
def test_host_runner_under_the_probe_on_a_real_bundle(tiny_gemma4_build: Path, tmp_path: Path) -> None:
    manifest = json.loads((tiny_gemma4_build / "manifest.json").read_text())
    bundle = tmp_path / "model.litertlm"
    bundle.write_bytes((tiny_gemma4_build / manifest["bundle"]["file"]).read_bytes())
    runner = resolve_runner("x86_64", None, {})
    adapter = get_adapter(runner.name)
    sink = tmp_path / "sink.txt"
    cfg = RunConfig(prefill=32, decode=48, iterations=2, log_sink_path=str(sink), threads=1)
    out = tmp_path / "run"
    argv = probe_command(
        str(build_probe("x86_64")),
        str(out),
        adapter.build_command(str(bundle), cfg, runner_path=str(runner.path)),
        maps=[str(bundle)],
        smaps_interval_ms=50,
    )
    completed = subprocess.run(argv, capture_output=True, timeout=300)
    run = read_probe_output(out)
    assert completed.returncode == 0, run.stderr()[-2000:]
    assert run.ok

    metrics = adapter.parse(run.stdout(), run.stderr(), sink.read_text())
    assert metrics.prefill_tokens == cfg.prefill and metrics.decode_tokens == cfg.decode
    assert metrics.decode_tok_s and metrics.decode_tok_s > 0 and metrics.prefill_tok_s > 0
    assert metrics.init_s and metrics.init_s > 0 and metrics.ttft_s and metrics.ttft_s > 0
    assert len(metrics.raw["decode_turns"]) == cfg.iterations
    assert metrics.raw["log_sink"]["aggregated"] == "Aggregated metrics (median of 2 runs)"
    assert metrics.peak_mem_bytes and metrics.peak_mem_bytes > 0

    # The python process is the exact pid the probe sampled (the launcher exec'd, no shell in between).
    assert run.argv[0] == str(runner.path)
    # The engine maps sections one by one at their own offsets: each bundle mapping starts at a section start
    # (or at 0, the header), and the graph section is resident.
    section_offsets = {section["offset"] for section in manifest["sections"]}
    mapped = {m.offset for m in run.mappings}
    assert mapped and mapped <= section_offsets | {0}
    spans = [(s["kind"], s["offset"], s["end"]) for s in manifest["sections"]]
    residency = run.section_residency(spans)
    assert residency["tf_lite_prefill_decode"]["resident_peak"] > 0
    for kind, entry in residency.items():
        section_bytes = sum(s["end"] - s["offset"] for s in manifest["sections"] if s["kind"] == kind)
        assert entry["bytes"] == section_bytes
        # A mapping's Rss is shared by overlap, so its page padding is never counted as the section's.
        assert entry["resident_peak"] <= section_bytes
