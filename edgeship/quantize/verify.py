"""`edgeship verify`: the shipped bundle against its checkpoint, on held-out prompts.

Order matters for the user: everything cheap (manifest vs bundle, thresholds, prompts, checkpoint headers and
weights digest) is checked before a graph is loaded, and nothing is written unless every position was
scored. The result — statistics overall and per position bucket, thresholds, verdict, prompt set, checkpoint
digest, tool versions — is recorded as manifest.json ``accuracy`` (the bundle's bytes never change), also
when the gate fails: CI wants to see by how much.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from edgeship.console import Reporter
from edgeship.errors import InputError
from edgeship.exporter.checkpoint import Checkpoint, read_checkpoint
from edgeship.exporter.manifest import TFLITE_DATA_TYPE, read_build, update_manifest
from edgeship.exporter.toolchain_output import toolchain_log
from edgeship.hashing import sha256_files
from edgeship.quantize.build_input import BuildInput, open_build
from edgeship.quantize.kl_stats import PositionScore, score_position, summarize
from edgeship.quantize.prompts import PromptSet, load_prompts
from edgeship.quantize.scoring import (
    ALL_POSITIONS,
    BEYOND_WINDOW,
    INSIDE_WINDOW,
    Geometry,
    Segment,
    plan_segments,
)
from edgeship.quantize.thresholds import Thresholds, default_thresholds, judge, with_overrides

ACCURACY_SCHEMA = "edgeship.accuracy/1"
DEFAULT_POSITIONS = 256
BUCKETS = (INSIDE_WINDOW, BEYOND_WINDOW, ALL_POSITIONS)
RUNTIME = "ai-edge-litert interpreter, signature runners over the bundle's TFLite sections"
REFERENCE = "transformers AutoModelForCausalLM, float32, eager attention"


@dataclass(frozen=True)
class VerifyOptions:
    checkpoint: Path
    prompts: Path | None = None  # None: the built-in prompt set
    positions: int = DEFAULT_POSITIONS
    force: bool = False  # compare against a checkpoint whose weights digest differs from the manifest's
    max_kl: float | None = None
    min_top1: float | None = None
    max_kl_p999: float | None = None
    threads: int | None = None  # None: the idle cores (default_threads)
    reference_cache: bool = True  # keep/reuse the reference logits on disk (reference.py)


@dataclass
class VerifyResult:
    accuracy: dict[str, Any]  # what was written into manifest.json
    scores: list[PositionScore] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.accuracy["verdict"] == "pass"


def _recipe_thresholds(build: BuildInput, options: VerifyOptions) -> Thresholds:
    export = build.manifest["export"]
    bits = [
        (e.get("quant") or {}).get("bits")
        for e in build.manifest["sections"]
        if e.get("data_type") == TFLITE_DATA_TYPE
    ]
    lowest = min((b for b in bits if b), default=None)
    base = default_thresholds(str(export.get("recipe")), lowest)
    return with_overrides(base, options.max_kl, options.min_top1, options.max_kl_p999)


def _checkpoint(
    build: BuildInput, options: VerifyOptions, reporter: Reporter
) -> tuple[Checkpoint, str, bool]:
    """The checkpoint, its weights digest, and whether it is the one the manifest names."""
    ckpt = read_checkpoint(options.checkpoint)
    with reporter.step("Hash the checkpoint weights"):
        digest = sha256_files([ckpt.path / f for f in ckpt.weight_files], reuse_known=True)
    expected = (build.manifest.get("checkpoint") or {}).get("weights_sha256")
    matches = digest == expected
    if not matches and not options.force:
        raise InputError(
            f"checkpoint {ckpt.path} is not the one {build.build_dir} was exported from (weights sha256"
            f" {digest[:12]}…, manifest says {str(expected)[:12]}…); give that checkpoint, or --force to"
            " compare anyway"
        )
    return ckpt, digest, matches


def _checkpoint_bos(ckpt: Checkpoint) -> int | None:
    value = ckpt.text_config.get("bos_token_id", ckpt.config.get("bos_token_id"))
    return value if isinstance(value, int) else None


def _geometry(build: BuildInput, cache_length: int, prefill_lengths: tuple[int, ...]) -> Geometry:
    attention = build.manifest["model"].get("attention") or {}
    layer_types = attention.get("layer_types") or []
    window = attention.get("sliding_window") if "sliding_attention" in layer_types else None
    return Geometry(
        sliding_window=int(window) if window else None,
        cache_length=cache_length,
        prefill_lengths=prefill_lengths,
        kv_shared_layers=int(attention.get("kv_shared_layers") or 0),
    )


def _versions() -> dict[str, str]:
    from importlib import metadata

    import edgeship

    out = {"edgeship": edgeship.__version__}
    for dist in ("ai-edge-litert", "transformers", "torch", "tokenizers"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def verify_build(
    build_dir: str | Path, options: VerifyOptions, reporter: Reporter | None = None
) -> VerifyResult:
    """Score the build's bundle against the checkpoint; record and return the result."""
    started = time.monotonic()
    reporter = reporter or Reporter()
    build = open_build(build_dir)
    thresholds = _recipe_thresholds(build, options)
    prompt_set = load_prompts(options.prompts)
    ckpt, digest, matches = _checkpoint(build, options, reporter)
    from edgeship.quantize.bundle_runner import bundle_tokenizer

    tokenizer = bundle_tokenizer(build, _checkpoint_bos(ckpt))
    tokens = [tokenizer.encode(p.text) for p in prompt_set.prompts]
    export = build.manifest["export"]
    geometry = _geometry(build, int(export["cache_length"]), tuple(sorted(export["prefill_lengths"])))
    segments = plan_segments([len(t) for t in tokens], options.positions, geometry)
    with toolchain_log("verify"):
        scores, timings = _score(
            build, prompt_set, tokens, segments, geometry, ckpt, digest, options, reporter
        )
    accuracy = _accuracy(build, options, thresholds, prompt_set, ckpt, digest, matches, geometry, scores)
    accuracy["bos"] = {"id": tokenizer.bos_id, "source": tokenizer.bos_source}
    accuracy["timing"] = {
        "wall_s": round(time.monotonic() - started, 3),
        **{k: round(v, 3) if isinstance(v, float) else v for k, v in timings.items()},
    }
    if read_build(build.build_dir).sha256 != build.build.sha256:
        raise InputError(
            f"{build.build_dir} was rebuilt while it was being verified (bundle sha256 changed); verify again"
        )
    update_manifest(build.build_dir, {"accuracy": accuracy})
    return VerifyResult(accuracy, scores)


def default_threads() -> int:
    """The cores other work leaves idle (1-minute load average), at least one.

    Measured on this project's 2-core machine kind under a load average of 7: a 544-token float32 forward of
    Gemma 3 270M took 5.1 s on one thread and 12-15 s on two (the threads spin against other processes).
    """
    cores = os.cpu_count() or 1
    return max(1, min(cores, round(cores - os.getloadavg()[0])))


def _score(
    build: BuildInput,
    prompt_set: PromptSet,
    tokens: list[list[int]],
    segments: list[Segment],
    geometry: Geometry,
    ckpt: Checkpoint,
    digest: str,
    options: VerifyOptions,
    reporter: Reporter,
) -> tuple[list[PositionScore], dict[str, Any]]:
    """Run the bundle and the reference (or take it from the cache) on the planned positions; score each."""
    from edgeship.quantize.bundle_runner import BundleModel
    from edgeship.quantize.reference import ReferenceCache, ReferenceModel, reference_key

    threads = options.threads or default_threads()
    with reporter.step("Load the bundle's graphs"):
        model = BundleModel(build, threads)
    graphs = (model.cache_length, list(model.prefill_lengths))
    recorded = (geometry.cache_length, list(geometry.prefill_lengths))
    if graphs != recorded:
        raise InputError(
            f"the bundle's graphs (cache, prefill lengths {graphs}) disagree with manifest.json ({recorded});"
            " the manifest belongs to another export"
        )
    requests = [(tokens[s.prompt], list(s.positions)) for s in segments]
    key = reference_key(digest, requests)
    cache = ReferenceCache() if options.reference_cache else None
    cached = cache.load(key, sum(s.count for s in segments)) if cache else None
    reference = None
    if cached is None:
        with reporter.step("Load the checkpoint in transformers (float32)"):
            reference = ReferenceModel(ckpt, threads)
    computed: list[np.ndarray] = []
    scores: list[PositionScore] = []
    timings: dict[str, Any] = {"bundle_s": 0.0, "reference_s": 0.0, "threads": threads}
    row = 0
    with reporter.step(f"Score {options.positions} positions of {len(segments)} prompts"):
        for segment, (prompt_tokens, positions) in zip(segments, requests, strict=True):
            began = time.monotonic()
            bundle_rows = model.distributions(prompt_tokens, segment.chunks, segment.count)
            timings["bundle_s"] += time.monotonic() - began
            began = time.monotonic()
            if reference is not None:
                reference_rows = reference.distributions(prompt_tokens, positions)
                computed.append(reference_rows)
            else:
                assert cached is not None
                reference_rows = np.asarray(cached[row : row + segment.count])
            timings["reference_s"] += time.monotonic() - began
            row += segment.count
            if reference_rows.shape[-1] != bundle_rows.shape[-1]:
                raise InputError(
                    f"the checkpoint's vocabulary ({reference_rows.shape[-1]}) differs from the bundle's"
                    f" ({bundle_rows.shape[-1]}); is it the checkpoint the bundle came from?"
                )
            name = prompt_set.prompts[segment.prompt].name
            for i, position in enumerate(positions):
                scores.append(
                    score_position(
                        reference_rows[i], bundle_rows[i], name, position, geometry.bucket(position)
                    )
                )
    if cache is not None and computed:
        cache.store(key, np.concatenate(computed))
    timings["reference_cached"] = cached is not None
    timings["reference_key"] = key
    return scores, timings


def _accuracy(
    build: BuildInput,
    options: VerifyOptions,
    thresholds: Thresholds,
    prompt_set: PromptSet,
    ckpt: Checkpoint,
    digest: str,
    matches: bool,
    geometry: Geometry,
    scores: list[PositionScore],
) -> dict[str, Any]:
    overall = summarize(scores)
    failures = judge(overall, thresholds)
    buckets = {b: summarize([s for s in scores if s.bucket == b]) for b in BUCKETS}
    return {
        "schema": ACCURACY_SCHEMA,
        "verdict": "fail" if failures else "pass",
        "failures": failures,
        "statistics": overall,
        "buckets": {name: stats for name, stats in buckets.items() if stats["positions"]},
        "geometry": geometry.describe(),
        "thresholds": thresholds.to_dict(),
        "recipe": build.manifest["export"].get("recipe"),
        "bundle_sha256": build.manifest["bundle"]["sha256"],
        "prompt_set": prompt_set.describe(),
        "positions_requested": options.positions,
        "checkpoint": {
            "path": str(ckpt.path.resolve()),
            "weights_sha256": digest,
            "matches_manifest": matches,
            "forced": options.force and not matches,
        },
        "runtime": RUNTIME,
        "reference": REFERENCE,
        "versions": _versions(),
        "verified_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
