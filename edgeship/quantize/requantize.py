"""`edgeship quantize`: a float build → a build quantized per section, without exporting again.

An export spends a minute in torch and MLIR before it quantizes; exploring recipes should not pay that each
time. Here each TFLite section of the float bundle is quantized with ai-edge-quantizer (edgeship.quantize.
apply, the same call `export` makes), and the bundle is re-serialized with ai-edge-quantizer's LiteRT-LM
file writer (litert-lm-builder's header schema): the other sections (metadata, tokenizer) are copied byte
for byte, offsets move to the 16 KiB grid. Stamps are normalised with the seed `export` would use, so
quantizing a float build gives the same bytes as exporting its checkpoint with that recipe (same toolchain).

Like `export`, the new build is written into a hidden staging folder beside OUT and renamed into place.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeship.console import Reporter
from edgeship.errors import UsageError
from edgeship.exporter import litertlm
from edgeship.exporter.checkpoint import ple_facts
from edgeship.exporter.manifest import (
    BUNDLE_FILE,
    MANIFEST_FILE,
    PLE_SECTION_KIND,
    TFLITE_DATA_TYPE,
    TOKENIZER_FILE,
    section_entries,
    write_manifest,
)
from edgeship.exporter.memory import FRUGAL
from edgeship.exporter.pipeline import (
    ExportOptions,
    check_output_dir,
    fsync_files,
    replace_dir,
    reproducibility_seed,
)
from edgeship.exporter.toolchain_output import toolchain_log
from edgeship.hashing import remember_sha256
from edgeship.quantize.apply import quantize_graph
from edgeship.quantize.build_input import BuildInput, open_build
from edgeship.quantize.graphs import graph_storage
from edgeship.quantize.recipes import Recipe, aeq_recipe, resolve_recipe

# Toolchain parts whose versions decide a quantized section's bytes; the rest came with the float graphs.
QUANTIZE_DISTS = ("ai-edge-quantizer", "litert-lm-builder")


@dataclass(frozen=True)
class SectionChange:
    """What quantize did to one TFLite section (the manifest's ``quantized_from.sections``)."""

    index: int
    kind: str
    scheme: dict[str, Any]
    bytes_before: int
    bytes_after: int
    weights: int  # float weight elements of the section (constant float tensors, each buffer once)
    constant_bytes: int  # what the section's constants occupy after quantization (graphs.GraphStorage)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "kind": self.kind,
            "scheme": self.scheme,
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
            "weights": self.weights,
            "constant_bytes": self.constant_bytes,
            # the bits its constants (weights, scales, other constants) take per float weight it holds
            "bits_per_weight": round(8 * self.constant_bytes / self.weights, 3) if self.weights else None,
        }


def _require_float(build: BuildInput) -> None:
    quantized = [
        f"{e['kind']} ({e['quant'].get('recipe')}, {e['quant'].get('bits')} bits)"
        for e in build.manifest["sections"]
        if e.get("data_type") == TFLITE_DATA_TYPE and (e.get("quant") or {}).get("bits")
    ]
    if quantized:
        raise UsageError(
            f"{build.build_dir} is not a float build ({', '.join(quantized)} already quantized); quantize"
            " starts from `edgeship export --recipe float`"
        )


def _versions(build: BuildInput) -> dict[str, str]:
    from edgeship.exporter.litert import versions

    now = versions()
    recorded = dict(build.manifest["export"].get("versions") or {})
    recorded.update({name: now[name] for name in ("edgeship", *QUANTIZE_DISTS)})
    return recorded


def quantize_build(
    build_dir: str | Path,
    recipe_spec: str,
    out: str | Path,
    force: bool = False,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Quantize the float build ``build_dir`` with ``recipe_spec`` into ``out``; returns the new manifest."""
    started = time.monotonic()
    reporter = reporter or Reporter()
    build = open_build(build_dir)
    _require_float(build)
    recipe = resolve_recipe(recipe_spec)
    recipe.check_sections(build.tflite_kinds, f"build {build.build_dir}")
    out = Path(out).absolute()
    if out.exists() and build.build_dir.exists() and out.resolve() == build.build_dir.resolve():
        raise UsageError(f"-o {out} is the input build; write the quantized build to another folder")
    check_output_dir(out, force)
    with reporter.step("Check the recipe with ai-edge-quantizer"):
        for kind in build.tflite_kinds:
            aeq_recipe(recipe.scheme_for(kind))
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        with toolchain_log("quantize"):  # ai-edge-quantizer prints sizes and progress bars
            manifest = _write_build(build, recipe, staging, reporter)
        manifest["quantized_from"]["wall_s"] = round(time.monotonic() - started, 3)
        write_manifest(staging, manifest)
        fsync_files(staging / BUNDLE_FILE, staging / MANIFEST_FILE)
        replace_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    remember_sha256(out / BUNDLE_FILE, manifest["bundle"]["sha256"])
    return manifest


def _write_build(build: BuildInput, recipe: Recipe, staging: Path, reporter: Reporter) -> dict[str, Any]:
    from ai_edge_quantizer.utils import litertlm_utils

    overrides: dict[int, bytes] = {}
    changes: list[SectionChange] = []
    for section in build.header.sections:
        if section.data_type != TFLITE_DATA_TYPE:
            continue
        scheme = recipe.scheme_for(section.kind)
        data = build.read_section(section)
        if not scheme.is_float:
            with reporter.step(f"Quantize {section.kind} ({scheme.name})"):
                overrides[section.index] = quantize_graph(data, scheme, section.kind)
        after = overrides.get(section.index, data)
        changes.append(
            SectionChange(
                section.index,
                section.kind,
                scheme.describe(recipe.name),
                bytes_before=section.bytes,
                bytes_after=len(after),
                weights=graph_storage(data).weights,
                constant_bytes=graph_storage(after).constant_bytes,
            )
        )
        del data, after
    bundle = staging / BUNDLE_FILE
    with reporter.step("Write model.litertlm"):
        written = litertlm_utils.LiteRTLMFile(str(build.bundle)).serialize(str(bundle), overrides)
        # The writer maps the output rounded up to the 16 KiB grid; the bundle ends at its last byte.
        os.truncate(bundle, written)
    del overrides
    export = build.manifest["export"]
    versions = _versions(build)
    # The stamps an export of this recipe with the float build's settings would get (same seed).
    options = ExportOptions(
        recipe=recipe.name,
        prefill_lengths=tuple(export["prefill_lengths"]),
        cache_length=export["cache_length"],
        memory_path=(export.get("memory") or {}).get("path", FRUGAL),  # a manifest older than the key: frugal
    )
    ring = (export.get("kv_layout") or {}).get("sliding_ring_buffer")
    seed = reproducibility_seed(
        build.manifest["checkpoint"]["weights_sha256"], recipe, options, versions, ring
    )
    with reporter.step("Normalise and hash the bundle"):
        stamps = litertlm.normalise_stamps(bundle, seed)
        header = litertlm.read_header(bundle)
        digests = litertlm.digest_bundle(bundle, header)
    tokenizer = build.build_dir / TOKENIZER_FILE
    if (build.manifest.get("tokenizer") or {}).get("file") == TOKENIZER_FILE and tokenizer.is_file():
        shutil.copyfile(tokenizer, staging / TOKENIZER_FILE)
    return _manifest(build, recipe, bundle, header, digests, stamps, versions, changes)


def _manifest(
    build: BuildInput,
    recipe: Recipe,
    bundle: Path,
    header: litertlm.BundleHeader,
    digests: litertlm.BundleDigests,
    stamps: dict[str, str],
    versions: dict[str, str],
    changes: list[SectionChange],
) -> dict[str, Any]:
    """The float build's manifest with the new bundle, sections, recipe and PLE bits; accuracy reset."""
    manifest = copy.deepcopy(dict(build.manifest))
    first = min((s.offset for s in header.sections), default=bundle.stat().st_size)
    manifest["bundle"].update(
        {"bytes": bundle.stat().st_size, "sha256": digests.bundle, "stamps": stamps},
        version=".".join(str(v) for v in header.version),
    )
    manifest["sections"] = section_entries(header, digests, recipe)
    manifest["header"] = {"offset": 0, "end": first, "sha256": digests.header}
    ple = manifest["model"].get("ple")
    if ple:
        bits = recipe.scheme_for(PLE_SECTION_KIND).bits
        manifest["model"]["ple"] = ple_facts(ple["vocab"], ple["layers"], ple["dim"], bits)
    manifest["export"].update(recipe=recipe.name, recipe_sections=recipe.to_dict(), versions=versions)
    manifest["accuracy"] = None
    manifest["quantized_from"] = {
        "build_dir": str(build.build_dir.resolve()),
        "bundle_sha256": build.manifest["bundle"]["sha256"],
        "recipe": recipe.name,
        "sections": [change.to_dict() for change in changes],
    }
    return manifest
