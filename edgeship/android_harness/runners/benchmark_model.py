"""LiteRT/TFLite's ``benchmark_model`` for single ``.tflite`` graphs: command line and output parser.

It prints, among other lines (values may use scientific notation, e.g. ``2.95034e+06``):

    Inference timings in us: Init: 3337, First inference: 81913, Warmup (avg): 58984.7,
        Inference (avg): 56265.8   (one line in the real output)
    Peak memory footprint (MB): init=4.92969 overall=138.809
    Overall peak memory footprint (MB) via periodic monitoring: 93.2383
    Memory footprint delta from the start of the tool (MB): init=4.21094 overall=46.0859

A single graph has no tokens: there is no TTFT or tokens/s; the first-inference latency is kept in ``raw``.
"""

from __future__ import annotations

import re
from typing import Any

from edgeship.android_harness.runners.base import RunConfig, RunnerMetrics

NAME = "benchmark_model"
TTFT_DEFINITION = "not applicable: benchmark_model runs one graph with no tokens (see raw.first_inference_s)"
MIB = 1024 * 1024
_NUMBER = r"([0-9.]+(?:[eE][+-]?[0-9]+)?)"

_TIMINGS = re.compile(
    rf"Inference timings in us: Init: {_NUMBER}, First inference: {_NUMBER}, "
    rf"Warmup \(avg\): {_NUMBER}, Inference \(avg\): {_NUMBER}"
)
_PEAK = re.compile(rf"Peak memory footprint \(MB\): init={_NUMBER} overall={_NUMBER}")
_PEAK_MONITORED = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring: {_NUMBER}")
_DELTA = re.compile(
    rf"Memory footprint delta from the start of the tool \(MB\): init={_NUMBER} overall={_NUMBER}"
)
_COUNT = re.compile(
    rf"count=(\d+) first={_NUMBER} curr={_NUMBER} min={_NUMBER} max={_NUMBER} avg={_NUMBER} std={_NUMBER}"
)


class BenchmarkModelAdapter:
    name = NAME
    ttft_definition = TTFT_DEFINITION

    def build_command(self, model_path: str, cfg: RunConfig, runner_path: str | None = None) -> list[str]:
        args = [f"--graph={model_path}"]
        if cfg.threads is not None:
            args.append(f"--num_threads={cfg.threads}")
        if cfg.backend == "cpu":
            args.append("--use_xnnpack=true")
        elif cfg.backend == "gpu":
            args.append("--use_gpu=true")
        else:
            args.append("--use_nnapi=true")
        if cfg.signature:
            args.append(f"--signature_to_run_for={cfg.signature}")
        args += [
            "--report_peak_memory_footprint=true",
            f"--num_runs={cfg.iterations}",
            f"--warmup_runs={cfg.warmup}",
            *cfg.extra_args,
        ]
        return [runner_path, *args] if runner_path else args

    def parse(self, stdout: str, stderr: str = "", log_sink: str | None = None) -> RunnerMetrics:
        text = "\n".join(part for part in (stdout, stderr) if part)
        raw: dict[str, Any] = {}
        metrics = RunnerMetrics(raw=raw)
        timings = _TIMINGS.findall(text)
        if timings:
            init_us, first_us, warmup_us, inference_us = (float(v) for v in timings[-1])
            metrics.init_s = init_us / 1e6
            raw.update(
                first_inference_s=first_us / 1e6,
                warmup_avg_s=warmup_us / 1e6,
                inference_avg_s=inference_us / 1e6,
            )
        counts = _COUNT.findall(text)
        if counts:
            # The last count= line is the measured runs (the first one is the warm-up phase).
            count, first, _curr, low, high, avg, std = counts[-1]
            raw["runs"] = {
                "count": int(count),
                "first_s": float(first) / 1e6,
                "min_s": float(low) / 1e6,
                "max_s": float(high) / 1e6,
                "avg_s": float(avg) / 1e6,
                "std_s": float(std) / 1e6,
            }
        monitored = _PEAK_MONITORED.findall(text)
        peak = _PEAK.findall(text)
        delta = _DELTA.findall(text)
        if peak:
            raw["peak_footprint_mb"] = {"init": float(peak[-1][0]), "overall": float(peak[-1][1])}
        if delta:
            raw["footprint_delta_mb"] = {"init": float(delta[-1][0]), "overall": float(delta[-1][1])}
        if monitored:
            raw["peak_monitored_mb"] = float(monitored[-1])
            metrics.peak_mem_bytes = int(float(monitored[-1]) * MIB)
        elif peak:
            metrics.peak_mem_bytes = int(float(peak[-1][1]) * MIB)
        return metrics
