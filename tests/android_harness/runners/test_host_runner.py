"""The x86-64 host runner: its flag parsing, and end to end on a real exported bundle under the probe."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeship.android_harness.runners.host_runner import FlagError, main, parse_flags
from tests.android_harness.runners.probed import run_probed_benchmark


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
def test_host_runner_under_the_probe_on_a_real_bundle(tiny_gemma4_build: Path, tmp_path: Path) -> None:
    run, metrics, cfg, manifest = run_probed_benchmark(
        "host-python", tiny_gemma4_build, tmp_path, smaps_interval_ms=50
    )
    assert metrics.prefill_tokens == cfg.prefill and metrics.decode_tokens == cfg.decode
    assert metrics.decode_tok_s and metrics.decode_tok_s > 0 and metrics.prefill_tok_s > 0
    assert metrics.init_s and metrics.init_s > 0 and metrics.ttft_s and metrics.ttft_s > 0
    assert len(metrics.raw["decode_turns"]) == cfg.iterations
    assert metrics.raw["log_sink"]["aggregated"] == "Aggregated metrics (median of 2 runs)"
    assert metrics.peak_mem_bytes and metrics.peak_mem_bytes > 0

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
    # The last engine outlives the run: the probe's exit sample still sees its section mappings.
    assert run.exit_sample is not None, run.exit_sample_note
    assert all(entry["resident_at_exit"] for entry in residency.values())
