"""The Python host runner (``host-python``): ``litert_lm_main``'s flags and BenchmarkInfo output, in Python.

The native runner (``runners/native``, C) is the default on x86-64; this one stays selectable
(``--runner host-python``) for hosts without a C toolchain and as a second opinion. A virtual device (ABI
x86_64) cannot run the Android arm64 ``litert_lm_main``; this program stands in for it with the same C++
engine (``liblitert-lm.so`` inside the litert-lm-api wheel). It accepts the flags edgeship passes (absl
style: ``--flag=value``, ``--flag value``, ``--flag``/``--noflag`` for booleans) and prints the new-form
BenchmarkInfo block on stdout, so the same parser reads a phone and a virtual device.

With ``--num_iterations=N`` the benchmark runs N times in this process (a fresh engine each time, as
``litert_lm.Benchmark.run`` does); each run is one prefill and one decode turn of the printed block, and the
init and TTFT lines are the last run's, so a parser that takes the last turn reads the last run.
``--log_sink_file`` gets LiteRT-LM's key:value lines, with the ``Aggregated metrics (median of N runs)`` block
when N > 1.

The engine is driven through the library's C API (the calls ``litert_lm.Benchmark.run`` makes, with the
signatures ``litert_lm._ffi`` declares) so that the last engine stays alive until the process ends: run as a
program, it prints, flushes and ``os._exit``s with it, and the probe's exit sample still sees every section
mapping (``Benchmark.run`` deletes its engine before returning).

This module imports nothing of edgeship: the launcher that ``resolve.host_runner_launcher`` writes is this
file's text under a ``#!`` line of the venv's python, so a device needs only that python and litert-lm-api,
not the edgeship package. Run it as ``python -m edgeship.android_harness.runners.host_runner --model_path=…
--benchmark``, or through the launcher (its exec makes this python process the exact pid the probe samples).
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SEPARATOR = "-" * 50
KIB = 1024
DEFAULT_PROMPT = "How are you"  # litert_lm.Benchmark's: padded or cut to the prefill tokens
INPUT_TEXT = 0  # litert_lm._ffi.InputDataType.TEXT
NO_CACHE_DIR = ":nocache"  # LiteRT-LM's cache dir that means no weight cache


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


def format_absl_duration(seconds: float) -> str:
    """absl::Duration text in the shapes LiteRT-LM prints (``477.85ms``, ``3.917262s``, ``1m2.5s``)."""
    if seconds <= 0:
        return "0"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.3f}us".replace(".000us", "us")
    if seconds < 1:
        return f"{seconds * 1e3:.6f}".rstrip("0").rstrip(".") + "ms"
    if seconds < 60:
        return f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"
    minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    tail = f"{rest:.6f}".rstrip("0").rstrip(".") + "s"
    return (f"{hours}h" if hours else "") + f"{minutes}m" + tail


@dataclass
class LiveEngine:
    """An engine and its session, alive: only the last run's outlives its run."""

    lib: Any
    engine: int
    session: int

    def delete(self) -> None:
        self.lib.litert_lm_session_delete(self.session)
        self.lib.litert_lm_engine_delete(self.engine)


def run_once(flags: HostRunnerFlags) -> tuple[RunFigures, LiveEngine]:
    """One engine, one session, one benchmark turn; the engine is returned alive."""
    import ctypes

    from litert_lm import _ffi

    lib = _ffi._get_lib()  # loads liblitert-lm.so and declares the C API's signatures
    model_path = str(Path(flags.model_path))
    settings = lib.litert_lm_engine_settings_create(model_path, flags.backend, None, None)
    if not settings:
        raise RuntimeError(
            f"cannot create engine settings (model_path={model_path}, backend={flags.backend})"
        )
    lib.litert_lm_engine_settings_enable_benchmark(settings)
    if flags.backend == "cpu" and flags.num_cpu_threads:
        lib.litert_lm_engine_settings_set_num_threads(settings, flags.num_cpu_threads)
    if flags.max_num_tokens:
        lib.litert_lm_engine_settings_set_max_num_tokens(settings, flags.max_num_tokens)
    lib.litert_lm_engine_settings_set_num_prefill_tokens(settings, flags.benchmark_prefill_tokens)
    lib.litert_lm_engine_settings_set_num_decode_tokens(settings, flags.benchmark_decode_tokens)
    # litert_lm_main's meaning: no cache at all. Without a cache dir LiteRT-LM writes one beside the model.
    if flags.disable_cache:
        lib.litert_lm_engine_settings_set_cache_dir(settings, NO_CACHE_DIR)
    elif flags.cache_dir:
        lib.litert_lm_engine_settings_set_cache_dir(settings, flags.cache_dir)
    engine = lib.litert_lm_engine_create(settings)
    lib.litert_lm_engine_settings_delete(settings)
    if not engine:
        raise RuntimeError(f"cannot create the engine (model_path={model_path}, backend={flags.backend})")
    session = lib.litert_lm_engine_create_session(engine, None)
    if not session:
        lib.litert_lm_engine_delete(engine)
        raise RuntimeError(f"cannot create a session (model_path={model_path})")
    live = LiveEngine(lib, engine, session)
    prompt = (flags.input_prompt or DEFAULT_PROMPT).encode()
    data = lib.litert_lm_input_data_create(INPUT_TEXT, prompt, len(prompt))
    if not data:
        live.delete()
        raise RuntimeError("cannot create the input data")
    try:
        responses = lib.litert_lm_session_generate_content(session, (ctypes.c_void_p * 1)(data), 1)
        if responses:
            lib.litert_lm_responses_delete(responses)
    finally:
        lib.litert_lm_input_data_delete(data)
    info = lib.litert_lm_session_get_benchmark_info(session)
    if not info:
        live.delete()
        raise RuntimeError("the session has no benchmark info (was the benchmark enabled?)")
    try:
        prefill_turn = lib.litert_lm_benchmark_info_get_num_prefill_turns(info) - 1
        decode_turn = lib.litert_lm_benchmark_info_get_num_decode_turns(info) - 1
        if prefill_turn < 0 or decode_turn < 0:
            raise RuntimeError("the engine reported no prefill or no decode turn")
        figures = RunFigures(
            init_s=lib.litert_lm_benchmark_info_get_total_init_time_in_second(info),
            ttft_s=lib.litert_lm_benchmark_info_get_time_to_first_token(info),
            prefill_tokens=lib.litert_lm_benchmark_info_get_prefill_token_count_at(info, prefill_turn),
            prefill_tok_s=lib.litert_lm_benchmark_info_get_prefill_tokens_per_sec_at(info, prefill_turn),
            decode_tokens=lib.litert_lm_benchmark_info_get_decode_token_count_at(info, decode_turn),
            decode_tok_s=lib.litert_lm_benchmark_info_get_decode_tokens_per_sec_at(info, decode_turn),
        )
    finally:
        lib.litert_lm_benchmark_info_delete(info)
    return figures, live


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


# The last run's engine: kept until the process ends (see the module docstring).
_LAST_ENGINE: LiveEngine | None = None


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
    global _LAST_ENGINE
    try:
        for _ in range(flags.num_iterations):
            if _LAST_ENGINE is not None:
                _LAST_ENGINE.delete()
            figures, _LAST_ENGINE = run_once(flags)
            runs.append(figures)
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
    exit_code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # No interpreter teardown with the engine alive (its worker threads run; the library's static state must
    # not be destroyed under them): the kernel's exit is the only teardown, after the probe's exit sample.
    os._exit(exit_code)
