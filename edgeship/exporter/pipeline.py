"""`edgeship export`: checkpoint folder → BUILD_DIR/{model.litertlm, manifest.json, tokenizer.json}.

Order matters for the user: everything cheap (recipe, checkpoint headers, output folder) is checked before the
minute of torch/MLIR work starts. The build is written into a hidden staging folder next to BUILD_DIR (same
filesystem) and renamed into place only when complete, so BUILD_DIR never holds a partial bundle — after a
disk-full, a crash or Ctrl-C, the old build (or nothing) is there.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edgeship.console import Reporter
from edgeship.errors import EdgeshipError, ExportError, UsageError
from edgeship.exporter import kv_cache, litert, litertlm, memory, worker
from edgeship.exporter.checkpoint import model_facts, read_checkpoint
from edgeship.exporter.manifest import (
    BUNDLE_FILE,
    LOG_FILE,
    MANIFEST_FILE,
    PLE_SECTION_KIND,
    PREFILL_DECODE_KIND,
    TOKENIZER_FILE,
    build_manifest,
    write_manifest,
)
from edgeship.hashing import remember_sha256, sha256_files
from edgeship.quantize.recipes import Recipe, resolve_recipe

DEFAULT_PREFILL = (32, 128)
DEFAULT_CACHE_LENGTH = 1024


@dataclass(frozen=True)
class ExportOptions:
    """Everything `edgeship export` can be told; the CLI fills it, tests and benchmarks build it directly."""

    recipe: str = "int8"
    prefill_lengths: tuple[int, ...] = DEFAULT_PREFILL
    cache_length: int = DEFAULT_CACHE_LENGTH
    force: bool = False  # replace a non-empty BUILD_DIR
    # frugal: the largest graph in a process of its own, lightweight conversion (memory.py, worker.py);
    # auto: frugal where the prediction says it pays, in-process where it does not (memory.choose_path)
    memory_path: str = memory.AUTO
    # Sliding layers get a ring-buffer cache of their window (when the model has them and it is shorter).
    sliding_cache: bool = True
    # Export even when the predicted peak exceeds the memory available (--ignore-memory-check).
    ignore_memory: bool = False


IGNORE_MEMORY_FLAG = "--ignore-memory-check"


def parse_prefill(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise UsageError(f"--prefill must be comma-separated token counts like 32,128, got '{text}'") from exc
    if not values or any(v <= 0 for v in values):
        raise UsageError(f"--prefill must be positive token counts like 32,128, got '{text}'")
    return values


def check_output_dir(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a folder; choose another -o")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UsageError(f"{out} exists and is not empty; pass --force to replace it or choose another -o")


def _is_disk_full(exc: BaseException, where: Path) -> bool:
    for candidate in (exc, exc.__cause__, exc.__context__):
        if isinstance(candidate, OSError) and candidate.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if candidate is not None and "No space left on device" in str(candidate):
            return True
    with contextlib.suppress(OSError):
        return shutil.disk_usage(where).free < 1024 * 1024
    return False


def reproducibility_seed(
    weights_sha256: str, recipe: Recipe, options: ExportOptions, versions: dict, sliding_ring: int | None
) -> str:
    """The seed of the bundle's normalised stamps: everything the bytes depend on. ``sliding_ring`` is the
    ring length the export asked for (None: full caches), not the flag, so `quantize` can rebuild it from
    the float build's manifest (``export.kv_layout.sliding_ring_buffer``)."""
    settings = {
        "weights": weights_sha256,
        "recipe": recipe.to_dict(),
        "prefill": list(options.prefill_lengths),
        "cache": options.cache_length,
        "sliding_ring": sliding_ring,
        "memory_path": options.memory_path,
        "versions": versions,
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def replace_dir(staging: Path, out: Path) -> None:
    """Atomically put ``staging`` at ``out`` (the old build is removed only after the rename)."""
    if out.exists():
        trash = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(trash)
        staging.rename(out)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        staging.rename(out)


def export_build(
    checkpoint_dir: str | Path,
    out: str | Path,
    options: ExportOptions | str | None = None,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Export a checkpoint into BUILD_DIR ``out`` and return the manifest (also written to manifest.json).

    ``options`` may be just a recipe name (``export_build(ckpt, out, "int4")``).
    """
    if isinstance(options, str):
        options = ExportOptions(recipe=options)
    options = options or ExportOptions()
    reporter = reporter or Reporter()
    out = Path(out).absolute()
    recipe = resolve_recipe(options.recipe)
    if options.cache_length <= max(options.prefill_lengths):
        raise UsageError(
            f"--cache-length {options.cache_length} must be larger than the longest prefill"
            f" {max(options.prefill_lengths)}"
        )
    if options.memory_path not in memory.PATH_CHOICES:
        choices = ", ".join(memory.PATH_CHOICES)
        raise UsageError(f"unknown memory path '{options.memory_path}'; use one of {choices}")
    ckpt = read_checkpoint(checkpoint_dir)
    check_output_dir(out, options.force)
    externalize = litert.default_externalize_embedder(ckpt)
    prediction = memory.choose_path(ckpt, recipe, options.memory_path, externalize)
    options = replace(options, memory_path=prediction.path)  # the bytes depend on the path run, not on auto
    settings = _settings(ckpt, options)
    unsupported = _ring_plan(ckpt, options).unsupported
    if unsupported:
        reporter.note(f"note: {unsupported}")
    if not options.ignore_memory:
        memory.check_fits(prediction, IGNORE_MEMORY_FLAG)
    reporter.note(f"Predicted peak memory: {prediction.summary()}")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    # The toolchain log lives outside the staging folder: it must survive a failure, and a full disk there.
    log_fd, log_name = tempfile.mkstemp(prefix="edgeship-export-", suffix=".log")
    os.close(log_fd)
    log_path = Path(log_name)
    try:
        # The weights digest (seconds for a large checkpoint) runs beside the export, not before it.
        hasher = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="weights-sha256")
        weights_future = hasher.submit(sha256_files, [ckpt.path / f for f in ckpt.weight_files])
        hasher.shutdown(wait=False)
        work = staging / "work"
        work.mkdir()
        result = worker.run_toolchain(
            ckpt, work, settings, options.recipe, recipe, reporter, log_path, options.memory_path
        )
        facts = model_facts(ckpt, recipe.scheme_for(PLE_SECTION_KIND).bits)
        cache_layers = kv_cache.read_cache_layers(
            result.section_files[PREFILL_DECODE_KIND], facts.attention.get("layer_types")
        )
        kv_layout = kv_cache.layout_entry(cache_layers, options.cache_length, _ring_plan(ckpt, options))
        _note_cache_layout(reporter, kv_layout, settings)
        versions = litert.versions()
        bundle = staging / BUNDLE_FILE
        result.bundle.rename(bundle)
        weights_sha256 = weights_future.result()
        with reporter.step("Normalise and hash the bundle"):
            stamps = litertlm.normalise_stamps(
                bundle,
                reproducibility_seed(weights_sha256, recipe, options, versions, settings.sliding_cache),
            )
            header = litertlm.read_header(bundle)
            digests = litertlm.digest_bundle(bundle, header)
        tokenizer_file = None
        tokenizer_src = (
            result.tokenizer if result.tokenizer and result.tokenizer.name == TOKENIZER_FILE else None
        )
        tokenizer_src = tokenizer_src or (
            ckpt.path / TOKENIZER_FILE if ckpt.tokenizer_file == TOKENIZER_FILE else None
        )
        if tokenizer_src and tokenizer_src.is_file():
            shutil.copyfile(tokenizer_src, staging / TOKENIZER_FILE)
            tokenizer_file = TOKENIZER_FILE
        shutil.rmtree(work)
        manifest = build_manifest(
            bundle=bundle,
            header=header,
            digests=digests,
            ckpt=ckpt,
            weights_sha256=weights_sha256,
            facts=facts,
            kv_cache=kv_cache.manifest_entries(cache_layers),
            kv_layout=kv_layout,
            memory={"path": options.memory_path, "predicted_peak_bytes": prediction.peak_bytes},
            recipe=recipe,
            prefill_lengths=list(options.prefill_lengths),
            cache_length=options.cache_length,
            versions=versions,
            tokenizer_file=tokenizer_file,
            stamps=stamps,
        )
        write_manifest(staging, manifest)
        fsync_files(bundle, staging / MANIFEST_FILE)
        replace_dir(staging, out)
        # The next push's check against the manifest need not hash the bundle again (same file identity).
        remember_sha256(out / BUNDLE_FILE, manifest["bundle"]["sha256"])
        with contextlib.suppress(OSError):
            shutil.move(str(log_path), out / LOG_FILE)
        return manifest
    except BaseException as exc:
        kept_log = log_path if log_path.is_file() and log_path.stat().st_size else None
        if kept_log is None:
            log_path.unlink(missing_ok=True)
        disk_full = isinstance(exc, Exception) and _is_disk_full(exc, staging)
        shutil.rmtree(staging, ignore_errors=True)
        where = f"; log: {kept_log}" if kept_log else ""
        if disk_full:
            raise ExportError(
                f"disk full while exporting into {out.parent}; free space there (a build needs a few"
                f" times the bundle size while it is made){where}"
            ) from exc
        if isinstance(exc, EdgeshipError):
            if kept_log:
                exc.message = f"{exc.message}{where}"
            raise
        if isinstance(exc, OSError):
            raise ExportError(f"export failed: {exc.strerror or exc}: {exc.filename or out}{where}") from exc
        raise


def _ring_plan(ckpt: Any, options: ExportOptions) -> kv_cache.RingPlan:
    if not options.sliding_cache:
        return kv_cache.RingPlan(None, None)
    return kv_cache.ring_buffer_plan(
        ckpt.arch.family, model_facts(ckpt, None).attention, options.cache_length
    )


def _settings(ckpt: Any, options: ExportOptions) -> litert.LitertSettings:
    return litert.LitertSettings(
        prefill_lengths=options.prefill_lengths,
        cache_length=options.cache_length,
        externalize_embedder=litert.default_externalize_embedder(ckpt),
        lightweight=options.memory_path == memory.FRUGAL,
        sliding_cache=_ring_plan(ckpt, options).size,
    )


def _note_cache_layout(reporter: Reporter, kv: dict[str, Any], settings: litert.LitertSettings) -> None:
    """Say in one line when the graph did not get the sliding-window cache that was asked for."""
    if settings.sliding_cache and kv["layout"] != kv_cache.SLIDING_RING:
        reporter.note(
            f"note: litert-torch did not cap the sliding layers' KV cache for this model (asked for"
            f" {settings.sliding_cache} positions); the bundle has the {kv['layout']} layout"
        )


def fsync_files(*paths: Path) -> None:
    """Data on disk before the rename makes the build visible (a crash must not leave a hollow bundle)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
