"""The x86-64 host runner: ``litert_lm_main``'s flags and BenchmarkInfo output, on litert-lm-api.

A virtual device (ABI x86_64) cannot run the Android arm64 ``litert_lm_main``; this program stands in for it
with the same C++ engine (``liblitert-lm.so`` inside the litert-lm-api wheel). It accepts the flags edgeship
passes (absl style: ``--flag=value``, ``--flag value``, ``--flag``/``--noflag`` for booleans) and prints the
new-form BenchmarkInfo block on stdout, so the same parser reads a phone and a virtual device.

With ``--num_iterations=N`` the benchmark runs N times in this process (a fresh engine each time, as
``litert_lm.Benchmark.run`` does); each run is one prefill and one decode turn of the printed block, and the
init and TTFT lines are the last run's, so a parser that takes the last turn reads the last run.
``--log_sink_file`` gets LiteRT-LM's key:value lines, with the ``Aggregated metrics (median of N runs)`` block
when N > 1.

Run it as ``python -m edgeship.android_harness.runners.host_runner --model_path=… --benchmark``, or through
the launcher that ``resolve.host_runner_launcher`` writes (its exec makes this python process the exact pid
the probe samples).
"""

from __future__ import annotations

import resource
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

from edgeship.android_harness.runners.litert_lm_main import format_absl_duration

SEPARATOR = "-" * 50
KIB = 1024


class FlagError(Exception):
    pass


@dataclass
class HostRunnerFlags:
    model_path: str = ""
    backend: str = "cpu"
    benchmark: bool = False
    benchmark_prefill_tokens: int = 256
    benchmark_decode_tokens: int = 256
    num_iterations: int = 1
    max_num_tokens: int | None = None
    num_cpu_threads: int | None = None
    log_sink_file: str | None = None
    cache_dir: str | None = None
    disable_cache: bool = False
    report_peak_memory_footprint: bool = False
    input_prompt: str | None = None
    ignored: list[str] = field(default_factory=list)


_INT_FLAGS = {"benchmark_prefill_tokens", "benchmark_decode_tokens", "num_iterations", "max_num_tokens",
              "num_cpu_threads"}  # fmt: skip
_STR_FLAGS = {"model_path", "backend", "log_sink_file", "cache_dir", "input_prompt"}
_BOOL_FLAGS = {"benchmark", "disable_cache", "report_peak_memory_footprint"}
# Flags litert_lm_main knows that change nothing here; accepted so a command line for a phone runs as is.
_ACCEPTED_NOOP = {"async", "vision_backend", "audio_backend", "metric_proto_file_path", "multi_turns",
                  "verbose", "minloglevel", "stderrthreshold"}  # fmt: skip
_TRUE = {"true", "1", "yes", "t", "y"}
_FALSE = {"false", "0", "no", "f", "n"}


def parse_flags(argv: list[str]) -> HostRunnerFlags:
    flags = HostRunnerFlags()
    index = 0
    while index < len(argv):
        arg = argv[index]
        index += 1
        if not arg.startswith("-"):
            raise FlagError(f"unexpected argument '{arg}'")
        name, has_value, value = arg.lstrip("-").partition("=")
        if name in _BOOL_FLAGS or (name.startswith("no") and name[2:] in _BOOL_FLAGS and not has_value):
            if name.startswith("no") and name[2:] in _BOOL_FLAGS:
                setattr(flags, name[2:], False)
                continue
            if not has_value:
                setattr(flags, name, True)
                continue
            if value.lower() not in _TRUE | _FALSE:
                raise FlagError(f"illegal value '{value}' for bool flag '{name}'")
            setattr(flags, name, value.lower() in _TRUE)
            continue
        if name in _INT_FLAGS or name in _STR_FLAGS or name in _ACCEPTED_NOOP:
            if not has_value:
                if index >= len(argv):
                    raise FlagError(f"flag '--{name}' is missing its argument")
                value = argv[index]
                index += 1
            if name in _INT_FLAGS:
                try:
                    setattr(flags, name, int(value))
                except ValueError:
                    raise FlagError(f"illegal value '{value}' specified for int flag '{name}'") from None
            elif name in _STR_FLAGS:
                setattr(flags, name, value)
            else:
                flags.ignored.append(name)
            continue
        raise FlagError(f"Unknown command line flag '{name}'")
    if not flags.model_path:
        raise FlagError("--model_path is required")
    if flags.backend not in ("cpu", "gpu", "npu"):
        raise FlagError(f"--backend must be cpu, gpu or npu (got '{flags.backend}')")
    for name in ("benchmark_prefill_tokens", "benchmark_decode_tokens", "num_iterations"):
        if getattr(flags, name) < 1:
            raise FlagError(f"--{name} must be at least 1")
    return flags


@dataclass
class RunFigures:
    init_s: float
    ttft_s: float
    prefill_tokens: int
    prefill_tok_s: float
    decode_tokens: int
    decode_tok_s: float


def _backend(flags: HostRunnerFlags):  # -> litert_lm.interfaces.Backend
    from litert_lm import interfaces

    if flags.backend == "cpu":
        return interfaces.CPU(thread_count=flags.num_cpu_threads)
    if flags.backend == "gpu":
        return interfaces.GPU()
    return interfaces.NPU()


def run_once(flags: HostRunnerFlags) -> RunFigures:
    import litert_lm

    benchmark = litert_lm.Benchmark(
        str(Path(flags.model_path)),
        backend=_backend(flags),
        prefill_tokens=flags.benchmark_prefill_tokens,
        decode_tokens=flags.benchmark_decode_tokens,
        max_num_tokens=flags.max_num_tokens,
        cache_dir=None if flags.disable_cache else flags.cache_dir,
    )
    info = benchmark.run()
    return RunFigures(
        init_s=info.init_time_in_second,
        ttft_s=info.time_to_first_token_in_second,
        prefill_tokens=info.last_prefill_token_count,
        prefill_tok_s=info.last_prefill_tokens_per_second,
        decode_tokens=info.last_decode_token_count,
        decode_tok_s=info.last_decode_tokens_per_second,
    )


def _turn_lines(kind: str, runs: list[RunFigures]) -> list[str]:
    lines = [f"  {kind} Turns (Total {len(runs)} turns):"]
    for number, run in enumerate(runs, start=1):
        tokens = run.prefill_tokens if kind == "Prefill" else run.decode_tokens
        speed = run.prefill_tok_s if kind == "Prefill" else run.decode_tok_s
        duration = tokens / speed if speed > 0 else 0.0
        took = format_absl_duration(duration)
        lines.append(f"    {kind} Turn {number}: Processed {tokens} tokens in {took} duration.")
        lines.append(f"      {kind} Speed: {speed:.2f} tokens/sec.")
    return lines


def format_benchmark_info(runs: list[RunFigures]) -> str:
    """The new-form BenchmarkInfo block LiteRT-LM prints."""
    last = runs[-1]
    lines = [
        "BenchmarkInfo:",
        "  Init Phases (1):",
        f"    - Init Total: {last.init_s * 1000:.2f} ms",
        SEPARATOR,
        # LiteRT-LM prints %.2f; 4 decimals keep tiny test bundles' TTFT (a few ms) readable, same parse.
        f"  Time to first token: {last.ttft_s:.4f} s",
        SEPARATOR,
        *_turn_lines("Prefill", runs),
        SEPARATOR,
        *_turn_lines("Decode", runs),
        SEPARATOR,
    ]
    return "\n".join(lines) + "\n"


def _vm_swap_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSwap:"):
                return int(line.split()[1]) * KIB
    except OSError:
        pass
    return 0


def format_log_sink(runs: list[RunFigures], flags: HostRunnerFlags) -> str:
    """litert_lm_main's log-sink lines (same keys and formats; each run is one session, so its turn is 0),
    then the medians when there are several runs."""
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * KIB
    peak_mb = maxrss / (KIB * KIB)
    private_mb = (maxrss + _vm_swap_bytes()) / (KIB * KIB)
    lines: list[str] = []
    for run in runs:
        lines += [
            f"Benchmark flags: benchmark_prefill_tokens={flags.benchmark_prefill_tokens},"
            f"benchmark_decode_tokens={flags.benchmark_decode_tokens},backend={flags.backend}",
            f"Init Total: {run.init_s * 1000:.2f} ms",
            f"Time to first token: {run.ttft_s:.2f} s",
            f"Prefill speed turn 0: {run.prefill_tok_s:.2f} tk/s",
            f"Decode speed turn 0: {run.decode_tok_s:.2f} tk/s",
        ]
    lines += [f"Peak system ram usage: {peak_mb:.2f} MB", f"Peak private footprint: {private_mb:.2f} MB"]
    if len(runs) > 1:
        lines += [
            f"Aggregated metrics (median of {len(runs)} runs):",
            f"Init Total: {statistics.median(r.init_s for r in runs) * 1000:.2f} ms",
            f"Time to first token: {statistics.median(r.ttft_s for r in runs):.2f} s",
            f"Prefill speed turn 0: {statistics.median(r.prefill_tok_s for r in runs):.2f} tk/s",
            f"Decode speed turn 0: {statistics.median(r.decode_tok_s for r in runs):.2f} tk/s",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        flags = parse_flags(argv)
    except FlagError as exc:
        sys.stderr.write(f"ERROR: {exc}\n")
        return 1
    if not flags.benchmark:
        sys.stderr.write("ERROR: the edgeship host runner only implements --benchmark runs\n")
        return 1
    if not Path(flags.model_path).is_file():
        sys.stderr.write(f"ERROR: model file not found: {flags.model_path}\n")
        return 1
    runs: list[RunFigures] = []
    try:
        for _ in range(flags.num_iterations):
            runs.append(run_once(flags))
    except (RuntimeError, OSError) as exc:
        sys.stderr.write(f"ERROR: {exc}\n")
        return 1
    sys.stdout.write(format_benchmark_info(runs))
    if flags.report_peak_memory_footprint:
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * KIB
        sys.stdout.write(f"Peak system ram usage: {maxrss / (KIB * KIB):.2f} MB\n")
    sys.stdout.flush()
    if flags.log_sink_file:
        Path(flags.log_sink_file).write_text(format_log_sink(runs, flags))
    return 0


if __name__ == "__main__":
    sys.exit(main())
