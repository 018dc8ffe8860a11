"""How much memory an export will need, predicted from the checkpoint's headers before any heavy work starts.

An export that does not fit is OOM-killed minutes in, often taking other work on the machine with it. So
``export`` predicts its own peak RSS and refuses, in one line, when this machine cannot give it that much.

What the peak is made of (measured, see BENCHMARKS.md "Export memory"): litert-torch converts one graph at a
time — embedder, prefill/decode, per-layer embedder — and each conversion holds several copies of that graph's
float32 weights at once (the lowered MLIR constants, the converter passes' rewrites, the flatbuffer being
written) on top of the imported toolchain. So the peak follows the float32 bytes of the *largest* graph, plus
a fixed floor, plus (in one process) what the earlier conversions left allocated. Checkpoint weights stored in
float32 are memory-mapped by transformers (file-backed, touched as conversion reads them); weights stored in
bf16/fp16 are widened to float32 copies at load, all of them at once.

The coefficients below were fitted to the peaks measured by ``benchmarks/export_bench.py`` on this machine
kind (tiny, ple-heavy, ple-full synthetic Gemma 4 and a real Gemma 3 270M); the benchmark prints the
prediction next to each measured peak so a drift shows.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from edgeship.errors import ExportError
from edgeship.exporter.checkpoint import DTYPE_BYTES, Checkpoint
from edgeship.exporter.manifest import EMBEDDER_KIND, PLE_SECTION_KIND, PREFILL_DECODE_KIND
from edgeship.quantize.recipes import Recipe

# Test hook (documented in docs/contracts.md): the bytes of memory the predictor takes as available, instead
# of reading this machine's. Read only here; accepts a byte count or a figure with a unit ("2G", "512M").
AVAILABLE_MEMORY_ENV = "EDGESHIP_AVAILABLE_MEMORY"

GB = 10**9
FLOAT32 = 4

# Paths (ExportOptions.memory_path): how the toolchain is run.
IN_PROCESS = "in-process"  # every graph and its quantization in one litert-torch process
FRUGAL = "frugal"  # the largest graph in a process of its own, lightweight conversion (worker.py)
PATHS = (IN_PROCESS, FRUGAL)
# auto (the default): frugal where it saves at least this share of the in-process peak (a large model:
# Gemma 3 270M 0.76x), in-process where it does not (a small one: the same memory, and one process is faster:
# tiny Gemma 4, 1.43 GB either way, 81 s in-process vs 96 s frugal; BENCHMARKS.md).
AUTO = "auto"
PATH_CHOICES = (AUTO, *PATHS)
FRUGAL_MIN_SAVING = 0.15


@dataclass(frozen=True)
class Coefficients:
    """peak of one stage = floor + per_byte x float32 bytes of its graph (+ carry x earlier graphs' bytes)."""

    floor: float  # bytes: interpreter + torch/transformers/litert-torch (or quantizer) imports
    convert_per_byte: float  # conversion of a graph: copies of its float32 weights held at the peak
    lightweight_per_byte: float  # the same with lightweight conversion (the frugal path's)
    quantize_per_byte: float  # quantizing a float graph after it: the graph, its parsed tensors, the output
    carry_per_byte: (
        float  # in one process: what a finished conversion leaves allocated, per byte of its graph
    )


# Fitted on this machine kind (2 cores, x86-64, Python 3.11, litert-torch 0.10.0, torch 2.13): BENCHMARKS.md.
COEFFICIENTS = Coefficients(
    floor=1.30 * GB,
    convert_per_byte=5.2,
    lightweight_per_byte=3.6,
    quantize_per_byte=1.6,
    carry_per_byte=1.6,
)


@dataclass(frozen=True)
class GraphWeights:
    """Float32 bytes of the weights each exported graph holds (what conversion copies)."""

    by_kind: dict[str, int]
    widened_at_load: int  # bf16/fp16 checkpoints: float32 copies made when the model loads (0 for float32)

    @property
    def largest(self) -> int:
        return max(self.by_kind.values(), default=0)


def graph_weights(ckpt: Checkpoint, externalize_embedder: bool) -> GraphWeights:
    """Which weights land in which graph, from the tensor table alone."""
    tensors = ckpt.text_tensors()
    total = sum(t.numel for t in tensors)
    ple = ckpt.find("embed_tokens_per_layer.weight") if ckpt.arch.has_ple else None
    embed = ckpt.find("embed_tokens.weight")
    tied = not any(t.name.endswith("lm_head.weight") for t in tensors)
    by_kind: dict[str, int] = {}
    ple_numel = ple.numel if ple is not None else 0
    embed_numel = embed.numel if embed is not None else 0
    # The prefill/decode graph holds every transformer weight and the output head; a tied head is the token
    # embedding itself, so that table is in this graph even when the embedder is its own section.
    core = total - ple_numel - (embed_numel if externalize_embedder and not tied else 0)
    by_kind[PREFILL_DECODE_KIND] = core * FLOAT32
    if externalize_embedder and embed is not None:
        by_kind[EMBEDDER_KIND] = embed_numel * FLOAT32
    if ple is not None:
        by_kind[PLE_SECTION_KIND] = ple_numel * FLOAT32
    narrow = sum(t.numel for t in tensors if DTYPE_BYTES.get(t.dtype, FLOAT32) < FLOAT32)
    return GraphWeights(by_kind, narrow * FLOAT32)


# litert-torch's task order for text generation (litert._run_tasks), which decides what a conversion carries.
EXPORT_ORDER = (EMBEDDER_KIND, PREFILL_DECODE_KIND, PLE_SECTION_KIND)


@dataclass(frozen=True)
class MemoryPrediction:
    path: str
    peak_bytes: int
    stages: dict[str, int]  # stage name -> its predicted peak (the largest is the peak)

    def summary(self) -> str:
        worst = max(self.stages, key=self.stages.__getitem__)
        return f"~{self.peak_bytes / GB:.1f} GB ({self.path} path; largest stage: {worst})"


def largest_graph(ckpt: Checkpoint, externalize_embedder: bool, kinds: list[str]) -> str:
    """The section whose graph holds the most float32 weight bytes (the frugal path runs it on its own)."""
    weights = graph_weights(ckpt, externalize_embedder).by_kind
    return max(kinds, key=lambda kind: weights.get(kind, 0))


def process_groups(ckpt: Checkpoint, path: str, externalize_embedder: bool) -> list[list[str]]:
    """Which graphs share a process, in the order they run (worker.run_toolchain)."""
    kinds = [kind for kind in EXPORT_ORDER if kind in graph_weights(ckpt, externalize_embedder).by_kind]
    if path == IN_PROCESS:
        return [kinds]
    largest = largest_graph(ckpt, externalize_embedder, kinds)
    others = [kind for kind in kinds if kind != largest]
    return [group for group in (others, [largest]) if group]


def predict_peak(
    ckpt: Checkpoint,
    recipe: Recipe,
    path: str,
    externalize_embedder: bool,
    coefficients: Coefficients = COEFFICIENTS,
) -> MemoryPrediction:
    """Peak RSS of an export of ``ckpt`` with ``recipe`` along ``path`` (bytes).

    Per process: each conversion peaks at floor + widened weights + what earlier conversions in the same
    process left + its own graph's copies; each quantization after them at the same base + its graph's.
    """
    c = coefficients
    weights = graph_weights(ckpt, externalize_embedder)
    per_byte = c.convert_per_byte if path == IN_PROCESS else c.lightweight_per_byte
    stages: dict[str, int] = {}
    for group in process_groups(ckpt, path, externalize_embedder):
        carried = 0.0
        base = c.floor + weights.widened_at_load
        for kind in group:
            graph = weights.by_kind[kind]
            stages[f"convert {kind}"] = int(base + carried + per_byte * graph)
            carried += c.carry_per_byte * graph
        for kind in group:
            if not recipe.scheme_for(kind).is_float:
                stages[f"quantize {kind}"] = int(base + carried + c.quantize_per_byte * weights.by_kind[kind])
    return MemoryPrediction(path, max(stages.values()), stages)


def choose_path(ckpt: Checkpoint, recipe: Recipe, path: str, externalize_embedder: bool) -> MemoryPrediction:
    """The prediction of the path an export takes: ``path``, or for auto the one FRUGAL_MIN_SAVING picks."""
    if path != AUTO:
        return predict_peak(ckpt, recipe, path, externalize_embedder)
    whole = predict_peak(ckpt, recipe, IN_PROCESS, externalize_embedder)
    frugal = predict_peak(ckpt, recipe, FRUGAL, externalize_embedder)
    return frugal if frugal.peak_bytes <= (1 - FRUGAL_MIN_SAVING) * whole.peak_bytes else whole


_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def parse_bytes(text: str) -> int:
    match = _SIZE.match(text)
    if not match:
        raise ExportError(f"{AVAILABLE_MEMORY_ENV}={text!r} is not a byte count like 2000000000 or 2G")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def _meminfo_available(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_headroom(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """Limit minus usage of this process's memory cgroup (v2 or v1), when it has a limit."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        controllers, where = parts[1], parts[2].lstrip("/")
        candidates = []
        if controllers == "":
            candidates.append((root / where / "memory.max", root / where / "memory.current"))
            candidates.append(
                (root / "unified" / where / "memory.max", root / "unified" / where / "memory.current")
            )
        elif "memory" in controllers.split(","):
            base = root / "memory" / where
            candidates.append((base / "memory.limit_in_bytes", base / "memory.usage_in_bytes"))
        for limit_file, usage_file in candidates:
            try:
                limit_text = limit_file.read_text().strip()
                usage = int(usage_file.read_text().strip())
            except (OSError, ValueError):
                continue
            if limit_text == "max" or int(limit_text) >= 2**60:
                continue
            return max(int(limit_text) - usage, 0)
    return None


def available_memory() -> tuple[int, str]:
    """Bytes this machine can give a new process now, and where the figure came from."""
    injected = os.environ.get(AVAILABLE_MEMORY_ENV)
    if injected:
        return parse_bytes(injected), AVAILABLE_MEMORY_ENV
    figures = [
        (v, src) for v, src in ((_meminfo_available(), "MemAvailable"), (_cgroup_headroom(), "cgroup"))
    ]
    known = [(v, src) for v, src in figures if v is not None]
    if not known:
        return 0, "unknown"
    return min(known)


def check_fits(prediction: MemoryPrediction, flag: str) -> None:
    """Refuse an export predicted not to fit in the memory available now (one line, the figures)."""
    available, source = available_memory()
    if source == "unknown" or prediction.peak_bytes <= available:
        return
    raise ExportError(
        f"this export needs ~{prediction.peak_bytes / GB:.1f} GB at its peak ({prediction.path} path,"
        f" largest stage: {max(prediction.stages, key=prediction.stages.__getitem__)}), this machine has"
        f" {available / GB:.1f} GB available ({source}); free memory, export on a larger machine, or pass"
        f" {flag} to try anyway"
    )
