"""LiteRT-LM's ``litert_lm_main``: its command line and the parser for its BenchmarkInfo text and log sink.

The BenchmarkInfo text drifts between releases (all seen in published output):

- new:   ``Init Phases (N):`` with ``- Init Total: X ms``, ``Time to first token: X s``,
         ``Prefill Turns (Total N turns):``, then ``TextToTokenIds Turns`` (ignored)
- mid:   ``Init Phases (2):`` with ``- Executor initialization: X ms`` and ``Total init time: X ms``
- old:   ``Init Phases (2): - Load Model: X ms`` / ``Total init time: X ms``, ``Prefill Turns (Total: 2):``,
         no ``Time to first token`` line (it is then computed the way LiteRT-LM computes it).

It comes after the model's own text, printed on stdout or logged on stderr (``ABSL_LOG(INFO) <<
benchmark_info``: only the header line carries the ``I0000 … litert_lm_lib.cc:NNN]`` prefix). The model may
print "BenchmarkInfo:" too, and ``--num_iterations`` prints one block per iteration then ``Aggregated
BenchmarkInfo (median of N iterations):``, so the text is split on the LAST header line that has figures
under it, and the medians, when present, win. Within a block, the last prefill and decode turns are the
figures (as in LiteRT-LM's own Python API). Durations are absl strings: ``372.565677ms``, ``1.2s``,
``1m2.5s``, ``850us``.

With ``--log_sink_file`` recent builds log key:value lines instead of the block (see ``parse_log_sink``); the
parser then reads the sink file, else those lines on stderr.
"""

from __future__ import annotations

import re
from typing import Any

from edgeship.android_harness.runners.base import RunConfig, RunnerMetrics

NAME = "litert_lm_main"
TTFT_DEFINITION = (
    "computed by LiteRT-LM: duration of the first prefill turn + one average decode step "
    "(first decode turn duration / its tokens); not observed at the output"
)
MIB = 1024 * 1024

# absl/glog line prefix: "I0000 00:00:1787447197.907884   26280 litert_lm_lib.cc:868] ".
_LOG_PREFIX = r"[IWEF]\d{4} [0-9:.]+\s+\d+\s+[^\]\n]*\] "
_LOG_PREFIX_RE = re.compile(rf"^{_LOG_PREFIX}")
# Printed on stdout it is a line of its own; logged (ABSL_LOG(INFO) << benchmark_info, the default of recent
# builds, on stderr) only its first line carries the log prefix.
_HEADER = re.compile(rf"^(?:{_LOG_PREFIX})?BenchmarkInfo:[ \t]*\r?$", re.MULTILINE)
_TURN = re.compile(
    r"(?P<kind>Prefill|Decode) Turn (?P<index>\d+): Processed (?P<tokens>\d+) tokens"
    r" in (?P<duration>\S+) duration"
)
_SPEED = re.compile(r"(?P<kind>Prefill|Decode) Speed: (?P<speed>[0-9.eE+-]+|inf|nan) tokens/sec")
# --num_iterations=N ends with medians: "Aggregated BenchmarkInfo (median of 3 iterations):", speed lines.
_AGGREGATED = re.compile(r"Aggregated BenchmarkInfo \(median of (?P<n>\d+) iterations?\):")
_TTFT = re.compile(r"Time to first token: (?P<value>[0-9.eE+-]+) ?s\b")
_INIT_TOTAL = re.compile(r"(?:- Init Total|Total init time): (?P<value>[0-9.eE+-]+) ?ms")
_INIT_PHASE = re.compile(r"^\s*- (?P<name>[^:\n]+): (?P<value>[0-9.eE+-]+) ?ms", re.MULTILINE)
_PEAK_MEM = re.compile(r"Peak (?:system ram usage|memory footprint)[^:\n]*: (?P<value>[0-9.eE+-]+) ?MB", re.I)
_DURATION_PART = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?)(?P<unit>h|ms|us|µs|ns|m|s)")
_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def parse_absl_duration(text: str) -> float:
    """absl::Duration text → seconds: ``372.565677ms``, ``1.2s``, ``1m2.5s``, ``2h0m1s``, ``0``."""
    text = text.strip().rstrip(".")
    if text in ("0", "0s"):
        return 0.0
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    total = 0.0
    position = 0
    for match in _DURATION_PART.finditer(body):
        if match.start() != position:
            break
        total += float(match.group("number")) * _DURATION_UNITS[match.group("unit")]
        position = match.end()
    if position != len(body) or position == 0:
        raise ValueError(f"not an absl duration: {text!r}")
    return sign * total


def last_benchmark_block(text: str) -> str | None:
    """Text after the last ``BenchmarkInfo:`` line (including an ``Aggregated BenchmarkInfo`` tail), or None
    when there is none."""
    headers = list(_HEADER.finditer(text))
    if not headers:
        return None
    return text[headers[-1].end() :]


def split_aggregated(block: str) -> tuple[str, str | None, int | None]:
    """(the last iteration's block, the aggregated medians' text or None, how many iterations)."""
    match = _AGGREGATED.search(block)
    if match is None:
        return block, None, None
    return block[: match.start()], block[match.end() :], int(match.group("n"))


def parse_benchmark_block(block: str) -> dict[str, Any]:
    """The figures of one BenchmarkInfo block (turn lists, init phases, TTFT) as plain data."""
    turns: dict[str, list[dict[str, Any]]] = {"prefill": [], "decode": []}
    pending_speed: dict[str, dict[str, Any] | None] = {"prefill": None, "decode": None}
    for line in block.splitlines():
        turn = _TURN.search(line)
        if turn:
            kind = turn.group("kind").lower()
            try:
                duration_s: float | None = parse_absl_duration(turn.group("duration"))
            except ValueError:
                duration_s = None
            entry = {
                "turn": int(turn.group("index")),
                "tokens": int(turn.group("tokens")),
                "duration_s": duration_s,
                "tok_s": None,
            }
            turns[kind].append(entry)
            pending_speed[kind] = entry
            continue
        speed = _SPEED.search(line)
        if speed:
            kind = speed.group("kind").lower()
            target = pending_speed[kind]
            if target is None:  # a speed line without its turn line (clipped log): keep it as a turn
                target = {"turn": len(turns[kind]) + 1, "tokens": None, "duration_s": None, "tok_s": None}
                turns[kind].append(target)
            target["tok_s"] = float(speed.group("speed"))
            pending_speed[kind] = None
    for kind_turns in turns.values():
        for entry in kind_turns:
            if entry["tok_s"] is None and entry["tokens"] and entry["duration_s"]:
                entry["tok_s"] = entry["tokens"] / entry["duration_s"]
    init_match = list(_INIT_TOTAL.finditer(block))
    ttft_match = list(_TTFT.finditer(block))
    phases = {
        m.group("name").strip(): float(m.group("value")) / 1000.0
        for m in _INIT_PHASE.finditer(block)
        if m.group("name").strip() != "Init Total"
    }
    peak = list(_PEAK_MEM.finditer(block))
    return {
        "init_s": float(init_match[-1].group("value")) / 1000.0 if init_match else None,
        "init_phases_s": phases,
        "ttft_s": float(ttft_match[-1].group("value")) if ttft_match else None,
        "prefill_turns": turns["prefill"],
        "decode_turns": turns["decode"],
        "peak_mem_mb": float(peak[-1].group("value")) if peak else None,
    }


def parse_log_sink(text: str) -> dict[str, str]:
    """``key: value`` lines of a --log_sink_file (or of absl log lines, prefix dropped); the last occurrence
    of each key wins (so a trailing ``Aggregated metrics (median of N runs)`` block overrides the per-run
    values).

    With --log_sink_file, litert_lm_main logs these lines *instead of* the BenchmarkInfo block:
    ``Benchmark flags: benchmark_prefill_tokens=N,benchmark_decode_tokens=N,backend=cpu``, one
    ``<init phase>: X ms`` per phase (``Init Total: X ms``), ``Time to first token: X s``,
    ``Prefill speed turn I: X tk/s`` / ``Decode speed turn I: X tk/s`` (I from 0), ``Peak system ram usage:
    X MB`` and ``Peak private footprint: X MB`` (the sink build prints the private figure in both lines).
    """
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = _LOG_PREFIX_RE.sub("", line)
        key, sep, value = line.partition(":")
        if not sep or not key.strip():
            continue
        key = key.strip()
        value = value.strip()
        if key.startswith("Aggregated metrics"):
            values["aggregated"] = key
            continue
        values[key] = value
    return values


def _leading_float(text: str | None) -> float | None:
    if not text:
        return None
    match = re.match(r"\s*([0-9.eE+-]+)", text)
    try:
        return float(match.group(1)) if match else None
    except ValueError:
        return None


def _last_turn_key(values: dict[str, str], prefix: str) -> float | None:
    """The value of the highest-numbered ``<prefix> turn N`` key."""
    numbered = []
    for key, value in values.items():
        match = re.fullmatch(rf"{prefix} turn (\d+)", key, re.I)
        if match:
            numbered.append((int(match.group(1)), value))
    if not numbered:
        return None
    return _leading_float(max(numbered)[1])


class LiteRtLmMainAdapter:
    """Adapter for ``litert_lm_main`` (and edgeship's x86-64 runners, native and host-python, alike)."""

    name = NAME
    ttft_definition = TTFT_DEFINITION

    def build_command(self, model_path: str, cfg: RunConfig, runner_path: str | None = None) -> list[str]:
        args = [
            f"--model_path={model_path}",
            f"--backend={cfg.backend}",
            "--benchmark=true",
            f"--benchmark_prefill_tokens={cfg.prefill}",
            f"--benchmark_decode_tokens={cfg.decode}",
            f"--num_iterations={cfg.iterations}",
        ]
        if cfg.max_tokens is not None:
            args.append(f"--max_num_tokens={cfg.max_tokens}")
        if cfg.threads is not None:
            args.append(f"--num_cpu_threads={cfg.threads}")
        if cfg.disable_weight_cache:
            args.append("--disable_cache")
        if cfg.log_sink_path:
            args.append(f"--log_sink_file={cfg.log_sink_path}")
        args.extend(cfg.extra_args)
        return [runner_path, *args] if runner_path else args

    def parse(self, stdout: str, stderr: str = "", log_sink: str | None = None) -> RunnerMetrics:
        stdout, stderr = stdout or "", stderr or ""
        block, source = None, None
        for stream_name, text in (("stdout", stdout), ("stderr", stderr)):
            found = last_benchmark_block(text)
            # A "BenchmarkInfo:" line the model wrote is not a block: it has no figures under it.
            if found is not None and (
                _TURN.search(found) or _TTFT.search(found) or _INIT_TOTAL.search(found)
            ):
                block, source = found, stream_name
                break
        if block is None:
            # Clipped logs (e.g. `| grep`) may lack the header line: read whatever turn lines there are.
            for stream_name, text in (("stdout", stdout), ("stderr", stderr)):
                if _TURN.search(text) or _SPEED.search(text):
                    block, source = text, stream_name
                    break
        raw: dict[str, Any] = {"source": source}
        metrics = RunnerMetrics(raw=raw)
        aggregated_text, aggregated_n = None, None
        if block is not None:
            block, aggregated_text, aggregated_n = split_aggregated(block)
            info = parse_benchmark_block(block)
            raw.update(info)
            prefill_turns, decode_turns = info["prefill_turns"], info["decode_turns"]
            metrics.init_s = info["init_s"]
            metrics.ttft_s = info["ttft_s"]
            if prefill_turns:
                metrics.prefill_tokens = prefill_turns[-1]["tokens"]
                metrics.prefill_tok_s = prefill_turns[-1]["tok_s"]
            if decode_turns:
                metrics.decode_tokens = decode_turns[-1]["tokens"]
                metrics.decode_tok_s = decode_turns[-1]["tok_s"]
            if metrics.ttft_s is None and prefill_turns and decode_turns:
                metrics.ttft_s = _computed_ttft(prefill_turns[0], decode_turns[0])
                raw["ttft_computed"] = metrics.ttft_s is not None
        if aggregated_text is not None:
            # Medians over the iterations win over the last iteration, as the sink's aggregated block does.
            medians = parse_benchmark_block(aggregated_text)
            speeds = {
                kind: [turn["tok_s"] for turn in medians[f"{kind}_turns"] if turn["tok_s"] is not None]
                for kind in ("prefill", "decode")
            }
            raw["aggregated"] = {
                "iterations": aggregated_n,
                "ttft_s": medians["ttft_s"],
                "prefill_tok_s": speeds["prefill"][-1] if speeds["prefill"] else None,
                "decode_tok_s": speeds["decode"][-1] if speeds["decode"] else None,
            }
            for name in ("ttft_s", "prefill_tok_s", "decode_tok_s"):
                if raw["aggregated"][name] is not None:
                    setattr(metrics, name, raw["aggregated"][name])
        # Key:value lines: the sink file first, then what the binary logged (stderr, or stdout when merged).
        sink = parse_log_sink(log_sink) if log_sink else {}
        if log_sink:
            raw["log_sink"] = sink
        logged = parse_log_sink(stderr + "\n" + stdout)
        values = {**logged, **sink}
        if metrics.init_s is None:
            init_ms = _leading_float(values.get("Init Total") or values.get("Total init time"))
            metrics.init_s = init_ms / 1000.0 if init_ms is not None else None
        if metrics.ttft_s is None:
            metrics.ttft_s = _leading_float(values.get("Time to first token"))
        if metrics.prefill_tok_s is None:
            metrics.prefill_tok_s = _last_turn_key(sink, "Prefill speed") or _last_turn_key(
                logged, "Prefill speed"
            )
        if metrics.decode_tok_s is None:
            metrics.decode_tok_s = _last_turn_key(sink, "Decode speed") or _last_turn_key(
                logged, "Decode speed"
            )
        flags = values.get("Benchmark flags", "")
        if metrics.prefill_tokens is None and metrics.prefill_tok_s is not None:
            metrics.prefill_tokens = _flag_int(flags, "benchmark_prefill_tokens")
            raw["tokens_from_flags"] = metrics.prefill_tokens is not None
        if metrics.decode_tokens is None and metrics.decode_tok_s is not None:
            metrics.decode_tokens = _flag_int(flags, "benchmark_decode_tokens")
            raw["tokens_from_flags"] = metrics.decode_tokens is not None
        peak_mb = _leading_float(values.get("Peak system ram usage"))
        if peak_mb is None and block is not None:
            peak_mb = raw.get("peak_mem_mb")
        if peak_mb is not None:
            metrics.peak_mem_bytes = int(peak_mb * MIB)
        private_mb = _leading_float(values.get("Peak private footprint"))
        if private_mb is not None:
            raw["peak_private_footprint_bytes"] = int(private_mb * MIB)
        return metrics


def _flag_int(flags: str, name: str) -> int | None:
    match = re.search(rf"\b{name}=(\d+)", flags)
    return int(match.group(1)) if match else None


def _computed_ttft(first_prefill: dict[str, Any], first_decode: dict[str, Any]) -> float | None:
    """LiteRT-LM's own definition, for old builds that do not print it."""
    if (
        first_prefill["duration_s"] is None
        or first_decode["duration_s"] is None
        or not first_decode["tokens"]
    ):
        return None
    return first_prefill["duration_s"] + first_decode["duration_s"] / first_decode["tokens"]
