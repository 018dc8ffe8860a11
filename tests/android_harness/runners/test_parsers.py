"""Runner output parsers on real published outputs (tests/runners/data, see SOURCES.md) and on edge cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeship.android_harness.runners import RunConfig, get_adapter
from edgeship.android_harness.runners.host_runner import format_absl_duration
from edgeship.android_harness.runners.litert_lm_main import parse_absl_duration, parse_log_sink
from edgeship.errors import UsageError
from tests.cli import EdgeshipCli

DATA = Path(__file__).parent / "data"
MIB = 1024 * 1024


def read(name: str) -> str:
    return (DATA / name).read_text()


def test_every_data_file_has_its_source() -> None:
    sources = read("SOURCES.md")
    for path in DATA.glob("*.txt"):
        assert f"`{path.name}`" in sources, path.name


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("372.565677ms", 0.372565677),
        ("1.2s", 1.2),
        ("1m2.5s", 62.5),
        ("2h0m1s", 7201.0),
        ("850us", 850e-6),
        ("12ns", 12e-9),
        ("0", 0.0),
        ("-1.5s", -1.5),
    ],
)
def test_absl_durations(text: str, seconds: float) -> None:
    assert parse_absl_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "12", "1.2x", "ms", "1s2"])
def test_bad_absl_durations(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_absl_duration(bad)


@pytest.mark.parametrize("seconds", [0.000850, 0.47785, 3.917262, 62.5, 7201.25])
def test_absl_duration_round_trip(seconds: float) -> None:
    assert parse_absl_duration(format_absl_duration(seconds)) == pytest.approx(seconds, rel=1e-6)


def test_cmake_doc_output_with_model_text() -> None:
    metrics = get_adapter("litert_lm_main").parse(read("litert_lm_main_cmake_doc_gemma3n_cpu.txt"))
    assert metrics.init_s == pytest.approx(0.91125)
    assert metrics.raw["init_phases_s"] == {
        "Executor initialization": pytest.approx(0.84454),
        "Tokenizer initialization": pytest.approx(0.0667),
    }
    assert metrics.ttft_s == pytest.approx(2.40)
    assert (metrics.prefill_tokens, metrics.prefill_tok_s) == (18, pytest.approx(7.79))
    assert (metrics.decode_tokens, metrics.decode_tok_s) == (62, pytest.approx(11.21))
    assert metrics.raw["prefill_turns"][0]["duration_s"] == pytest.approx(2.311920273)
    assert metrics.raw["source"] == "stdout" and metrics.peak_mem_bytes is None


def test_iteration_block_without_header_line() -> None:
    metrics = get_adapter("litert_lm_main").parse(read("litert_lm_advanced_main_arm_m4pro_iteration.txt"))
    assert metrics.init_s is None
    assert metrics.ttft_s == pytest.approx(0.43)
    assert (metrics.prefill_tokens, metrics.prefill_tok_s) == (512, pytest.approx(1283.05))
    assert (metrics.decode_tokens, metrics.decode_tok_s) == (128, pytest.approx(31.70))


def test_stderr_form_without_ttft_computes_it_like_litert_lm() -> None:
    text = read("litert_lm_main_v0.11.0_rc1_stderr.txt")
    metrics = get_adapter("litert_lm_main").parse("model answer only\n", text)
    assert metrics.raw["source"] == "stderr"
    assert metrics.init_s == pytest.approx(0.51205)
    assert (metrics.prefill_tokens, metrics.prefill_tok_s) == (15, pytest.approx(40.26))
    assert (metrics.decode_tokens, metrics.decode_tok_s) == (3, pytest.approx(32.07))
    # first prefill duration + first decode duration / decode tokens
    assert metrics.ttft_s == pytest.approx(0.372565677 + 0.093549531 / 3)
    assert metrics.raw["ttft_computed"] is True


def test_old_form_last_header_wins_and_last_turn_is_the_figure() -> None:
    metrics = get_adapter("litert_lm_main").parse(read("litert_lm_main_old_form_constructed.txt"))
    assert metrics.init_s == pytest.approx(1.23575)
    assert len(metrics.raw["prefill_turns"]) == 2
    assert (metrics.prefill_tokens, metrics.prefill_tok_s) == (200, pytest.approx(3.20))
    assert metrics.raw["prefill_turns"][1]["duration_s"] == pytest.approx(62.5)
    assert metrics.ttft_s == pytest.approx(0.250 + 5 / 100)


def test_several_iteration_blocks_last_wins() -> None:
    block = read("litert_lm_main_cmake_doc_gemma3n_cpu.txt").split("BenchmarkInfo:\n", 1)[1]
    second = block.replace("11.21 tokens/sec", "12.50 tokens/sec").replace("2.40 s", "2.10 s")
    metrics = get_adapter("litert_lm_main").parse(f"BenchmarkInfo:\n{block}\nBenchmarkInfo:\n{second}")
    assert metrics.decode_tok_s == pytest.approx(12.50) and metrics.ttft_s == pytest.approx(2.10)


def test_speed_missing_is_derived_from_tokens_and_duration() -> None:
    text = "BenchmarkInfo:\n  Decode Turns (Total 1 turns):\n"
    text += "    Decode Turn 1: Processed 50 tokens in 2s duration.\n"
    metrics = get_adapter("litert_lm_main").parse(text)
    assert metrics.decode_tok_s == pytest.approx(25.0) and metrics.prefill_tok_s is None


def test_no_benchmark_output_is_empty_not_zero() -> None:
    metrics = get_adapter("litert_lm_main").parse("Segmentation fault\n", "F0000 check failed\n")
    assert not metrics.found
    assert metrics.decode_tok_s is None and metrics.ttft_s is None


LOG_SINK = """Time to first token: 0.42 s
Prefill speed turn 1: 538.12 tk/s
Decode speed turn 1: 20.81 tk/s
Time to first token: 0.40 s
Prefill speed turn 2: 540.00 tk/s
Decode speed turn 2: 21.00 tk/s
Peak system ram usage: 1234.50 MB
Peak private footprint: 1300.25 MB
Aggregated metrics (median of 2 runs):
Time to first token: 0.41 s
Prefill speed turn 1: 539.06 tk/s
Decode speed turn 1: 20.90 tk/s
"""


def test_log_sink_keeps_last_of_each_key() -> None:
    values = parse_log_sink(LOG_SINK)
    assert values["Time to first token"] == "0.41 s"
    assert values["Prefill speed turn 1"] == "539.06 tk/s"
    assert values["Decode speed turn 2"] == "21.00 tk/s"
    assert values["aggregated"] == "Aggregated metrics (median of 2 runs)"


def test_log_sink_fills_what_the_text_lacks_and_owns_memory() -> None:
    adapter = get_adapter("litert_lm_main")
    only_sink = adapter.parse("", "", LOG_SINK)
    assert only_sink.ttft_s == pytest.approx(0.41)
    assert only_sink.decode_tok_s == pytest.approx(21.00)  # highest-numbered turn key
    assert only_sink.peak_mem_bytes == int(1234.50 * MIB)
    assert only_sink.raw["peak_private_footprint_bytes"] == int(1300.25 * MIB)
    both = adapter.parse(read("litert_lm_main_cmake_doc_gemma3n_cpu.txt"), "", LOG_SINK)
    assert both.decode_tok_s == pytest.approx(11.21) and both.peak_mem_bytes == int(1234.50 * MIB)


# What litert_lm_main (recent builds) does with --log_sink_file: no BenchmarkInfo block at all; the figures
# are key:value lines in the sink file, also logged with absl prefixes on stderr (formats: litert_lm_lib.cc).
SINK_MODE_STDERR = """I0000 00:00:1787447197.907884   26280 litert_lm_lib.cc:868] Choose backend: cpu
I0000 00:00:1787447199.100000   26280 litert_lm_lib.cc:420] Benchmark flags: \
benchmark_prefill_tokens=1024,benchmark_decode_tokens=256,backend=cpu
I0000 00:00:1787447199.100100   26280 litert_lm_lib.cc:424] Init Total: 1523.40 ms
I0000 00:00:1787447199.100200   26280 litert_lm_lib.cc:427] Time to first token: 1.91 s
I0000 00:00:1787447199.100300   26280 litert_lm_lib.cc:431] Prefill speed turn 0: 538.12 tk/s
I0000 00:00:1787447199.100400   26280 litert_lm_lib.cc:434] Decode speed turn 0: 20.81 tk/s
I0000 00:00:1787447199.200000   26280 litert_lm_lib.cc:447] Peak system ram usage: 1480.25 MB
I0000 00:00:1787447199.200100   26280 litert_lm_lib.cc:449] Peak private footprint: 1480.25 MB
""".replace("\\\n", "")


def test_sink_mode_without_block_reads_logged_lines() -> None:
    adapter = get_adapter("litert_lm_main")
    sink_text = "\n".join(line.split("] ", 1)[1] for line in SINK_MODE_STDERR.splitlines())
    for stdout, stderr, sink in (
        ("", SINK_MODE_STDERR, None),
        ("", "", sink_text),
        ("", SINK_MODE_STDERR, sink_text),
    ):
        metrics = adapter.parse(stdout, stderr, sink)
        assert metrics.init_s == pytest.approx(1.5234)
        assert metrics.ttft_s == pytest.approx(1.91)
        assert (metrics.prefill_tokens, metrics.prefill_tok_s) == (1024, pytest.approx(538.12))
        assert (metrics.decode_tokens, metrics.decode_tok_s) == (256, pytest.approx(20.81))
        assert metrics.peak_mem_bytes == int(1480.25 * MIB) and metrics.raw["tokens_from_flags"] is True


def test_logged_block_header_with_absl_prefix() -> None:
    """Recent builds log the block (ABSL_LOG(INFO) << benchmark_info): only its first line has the prefix."""
    block = read("litert_lm_main_cmake_doc_gemma3n_cpu.txt").split("BenchmarkInfo:\n", 1)[1]
    stderr = (
        "I0000 00:00:1.000000 1 litert_lm_lib.cc:868] BenchmarkInfo:\n"
        + block.replace("11.21", "9.99")
        + "I0000 00:00:2.000000 1 litert_lm_lib.cc:900] Peak system ram usage: 812.5MB.\n"
    )
    metrics = get_adapter("litert_lm_main").parse("model text\nBenchmarkInfo:\nnot the block\n", stderr)
    assert metrics.raw["source"] == "stderr"  # the model's "BenchmarkInfo:" on stdout has no figures under it
    assert metrics.decode_tok_s == pytest.approx(9.99)
    assert metrics.peak_mem_bytes == int(812.5 * MIB)


def test_benchmark_model_android_output() -> None:
    metrics = get_adapter("benchmark_model").parse(read("benchmark_model_yolov5s_mi11_cpu.txt"))
    assert metrics.init_s == pytest.approx(0.016242)
    assert metrics.raw["first_inference_s"] == pytest.approx(0.360262)
    assert metrics.raw["inference_avg_s"] == pytest.approx(0.249684)
    assert metrics.raw["runs"]["count"] == 50 and metrics.raw["runs"]["std_s"] == pytest.approx(0.001442)
    assert metrics.peak_mem_bytes == int(138.809 * MIB)
    assert metrics.ttft_s is None and metrics.decode_tok_s is None


def test_benchmark_model_scientific_notation_and_delta_line() -> None:
    metrics = get_adapter("benchmark_model").parse("", read("benchmark_model_mobilenet_v1_qemu.txt"))
    assert metrics.raw["inference_avg_s"] == pytest.approx(2.95034)
    assert metrics.raw["warmup_avg_s"] == pytest.approx(3.51239)
    assert metrics.raw["runs"]["avg_s"] == pytest.approx(2.95034)  # the measured runs, not the warm-up line
    assert metrics.raw["footprint_delta_mb"] == {
        "init": pytest.approx(4.21094),
        "overall": pytest.approx(46.0859),
    }
    assert metrics.peak_mem_bytes is None  # a delta is not a peak


def test_benchmark_model_periodic_monitoring_line_wins() -> None:
    text = (
        "INFO: Inference timings in us: Init: 3337, First inference: 81913, Warmup (avg): 58984.7, "
        "Inference (avg): 56265.8\nINFO: Peak memory footprint (MB): init=4.9 overall=100.5\n"
        "INFO: Overall peak memory footprint (MB) via periodic monitoring: 93.2383\n"
    )
    metrics = get_adapter("benchmark_model").parse(text)
    assert metrics.peak_mem_bytes == int(93.2383 * MIB) and metrics.init_s == pytest.approx(0.003337)


def test_litert_lm_main_command_line() -> None:
    cfg = RunConfig(backend="gpu", threads=4, prefill=1024, decode=256, iterations=3, max_tokens=4096,
                    disable_weight_cache=True, log_sink_path="/data/local/tmp/x/sink.txt")  # fmt: skip
    argv = get_adapter("litert_lm_main").build_command("/data/m.litertlm", cfg, runner_path="/bin/llm")
    assert argv == [
        "/bin/llm",
        "--model_path=/data/m.litertlm",
        "--backend=gpu",
        "--benchmark=true",
        "--benchmark_prefill_tokens=1024",
        "--benchmark_decode_tokens=256",
        "--num_iterations=3",
        "--max_num_tokens=4096",
        "--num_cpu_threads=4",
        "--disable_cache",
        "--log_sink_file=/data/local/tmp/x/sink.txt",
    ]
    default = get_adapter("litert_lm_main").build_command("m", RunConfig())
    assert default[0] == "--model_path=m" and "--disable_cache" not in default


def test_benchmark_model_command_line() -> None:
    cfg = RunConfig(threads=2, iterations=20, warmup=3, signature="decode")
    argv = get_adapter("benchmark_model").build_command("/g.tflite", cfg)
    assert argv == [
        "--graph=/g.tflite",
        "--num_threads=2",
        "--use_xnnpack=true",
        "--signature_to_run_for=decode",
        "--report_peak_memory_footprint=true",
        "--num_runs=20",
        "--warmup_runs=3",
    ]


def test_run_config_validation_and_unknown_runner() -> None:
    with pytest.raises(UsageError, match="backend"):
        RunConfig(backend="tpu")
    with pytest.raises(UsageError, match="decode"):
        RunConfig(decode=0)
    with pytest.raises(UsageError, match="unknown runner"):
        get_adapter("llama-cli")


def test_cli_runner_parse(cli: EdgeshipCli, tmp_path: Path) -> None:
    path = DATA / "litert_lm_main_cmake_doc_gemma3n_cpu.txt"
    result = cli("runner", "parse", "--runner", "litert_lm_main", path, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["decode_tok_s"] == pytest.approx(11.21) and data["ttft_definition"].startswith("computed")
    table = cli("runner", "parse", path)
    assert table.returncode == 0 and "11.21 tok/s" in table.stdout
    empty = tmp_path / "empty.txt"
    empty.write_text("nothing here\n")
    nothing = cli("runner", "parse", empty)
    assert nothing.returncode == 3 and nothing.stderr.startswith("edgeship: error:")


def test_windows_v0_10_2_new_form_with_engine_logs_around() -> None:
    metrics = get_adapter("litert_lm_main").parse(read("litert_lm_main_v0.10.2_windows_gemma4_e2b_cpu.txt"))
    assert metrics.init_s == pytest.approx(0.5801)
    assert metrics.raw["init_phases_s"]["Init Executor"] == pytest.approx(0.5773)
    assert "Init Total" not in metrics.raw["init_phases_s"]
    assert metrics.ttft_s == pytest.approx(0.92)
    assert (metrics.prefill_tokens, metrics.prefill_tok_s) == (16, pytest.approx(19.51))
    assert (metrics.decode_tokens, metrics.decode_tok_s) == (88, pytest.approx(10.11))
    # The TextToTokenIds turns ("Turn 1: 11.2us, 1 tokens") are not prefill or decode turns.
    assert len(metrics.raw["prefill_turns"]) == 1 and len(metrics.raw["decode_turns"]) == 1


def test_aggregated_medians_after_the_last_iteration_win() -> None:
    one = read("litert_lm_advanced_main_arm_m4pro_iteration.txt")
    logged = (
        "I0000 00:00:1.0 1 litert_lm_lib.cc:424] BenchmarkInfo:\n"
        + one
        + "I0000 00:00:2.0 1 litert_lm_lib.cc:537] Aggregated BenchmarkInfo (median of 3 iterations):\n"
        "  Time to first token: 0.41 s\n      Prefill Speed: 1290.50 tokens/sec.\n"
        "      Decode Speed: 31.95 tokens/sec.\n"
    )
    metrics = get_adapter("litert_lm_main").parse("", logged)
    assert metrics.raw["aggregated"]["iterations"] == 3
    assert metrics.ttft_s == pytest.approx(0.41)
    assert metrics.prefill_tok_s == pytest.approx(1290.50) and metrics.decode_tok_s == pytest.approx(31.95)
    assert metrics.decode_tokens == 128  # counts come from the last iteration's turns
    assert len(metrics.raw["decode_turns"]) == 1
