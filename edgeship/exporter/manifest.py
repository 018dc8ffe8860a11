"""manifest.json (``edgeship.manifest/1``): what a build contains, byte for byte, and how it was made.

The contract is documented in docs/contracts.md; later stages (push, profile, report) read only this file
and the bundle.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgeship.errors import InputError
from edgeship.exporter.checkpoint import Checkpoint, ModelFacts
from edgeship.exporter.litertlm import BundleDigests, BundleHeader
from edgeship.quantize.recipes import Recipe

SCHEMA = "edgeship.manifest/1"
MANIFEST_FILE = "manifest.json"
BUNDLE_FILE = "model.litertlm"
TOKENIZER_FILE = "tokenizer.json"
ALIGNMENT = 16 * 1024


def section_entries(header: BundleHeader, digests: BundleDigests, recipe: Recipe) -> list[dict[str, Any]]:
    """One entry per section with its byte range and the sha256 of exactly those bytes."""
    entries = []
    for section, sha256 in zip(header.sections, digests.sections, strict=True):
        quant = (
            recipe.scheme_for(section.kind).describe(recipe.name)
            if section.data_type == "TFLiteModel"
            else None
        )
        entries.append(
            {
                "index": section.index,
                "kind": section.kind,
                "data_type": section.data_type,
                "offset": section.offset,
                "end": section.end,
                "bytes": section.bytes,
                "sha256": sha256,
                "quant": quant,
            }
        )
    return entries


def build_manifest(
    *,
    bundle: Path,
    header: BundleHeader,
    digests: BundleDigests,
    ckpt: Checkpoint,
    weights_sha256: str,
    facts: ModelFacts,
    recipe: Recipe,
    prefill_lengths: list[int],
    cache_length: int,
    versions: dict[str, str],
    tokenizer_file: str | None,
    stamps: dict[str, str],
) -> dict[str, Any]:
    first = min((s.offset for s in header.sections), default=bundle.stat().st_size)
    return {
        "schema": SCHEMA,
        "bundle": {
            "file": BUNDLE_FILE,
            "bytes": bundle.stat().st_size,
            "sha256": digests.bundle,
            "alignment": ALIGNMENT,
            "version": ".".join(str(v) for v in header.version),
            "stamps": stamps,
        },
        "sections": section_entries(header, digests, recipe),
        "header": {"offset": 0, "end": first, "sha256": digests.header},
        "model": {
            "arch": ckpt.arch.family,
            "model_type": ckpt.model_type,
            "text_model_type": facts.text_model_type,
            "adapted_as": ckpt.arch.load_as,
            "params_total": facts.params_total,
            "params_core": facts.params_core,
            "ple": facts.ple,
            "attention": facts.attention,
        },
        "export": {
            "prefill_lengths": prefill_lengths,
            "cache_length": cache_length,
            "recipe": recipe.name,
            "recipe_sections": recipe.to_dict(),
            "versions": versions,
        },
        "checkpoint": {
            "path": str(ckpt.path.resolve()),
            "weights_sha256": weights_sha256,
            "files": ckpt.weight_files,
        },
        "tokenizer": {"file": tokenizer_file} if tokenizer_file else None,
        "accuracy": None,
    }


def write_manifest(build_dir: Path, manifest: dict[str, Any]) -> Path:
    path = build_dir / MANIFEST_FILE
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def load_manifest(build_dir: str | Path) -> dict[str, Any]:
    """Read and sanity-check a build's manifest (InputError naming what is wrong)."""
    build_dir = Path(build_dir)
    path = build_dir / MANIFEST_FILE
    if not path.is_file():
        raise InputError(
            f"no {MANIFEST_FILE} in {build_dir}; is it a build dir written by `edgeship export`?"
        )
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        found = manifest.get("schema") if isinstance(manifest, dict) else None
        raise InputError(f"{path} has schema {found!r}, expected {SCHEMA!r}")
    for key in ("bundle", "sections", "model", "export"):
        if key not in manifest:
            raise InputError(f"{path} lacks '{key}'; re-export the build")
    return manifest


def _quant_short(quant: dict[str, Any] | None) -> str:
    if not quant:
        return "-"
    if not quant.get("bits"):
        return "float"
    return f"int{quant['bits']} {quant.get('granularity', '')}".strip()


def summarize(manifest: dict[str, Any], build_dir: str | Path) -> dict[str, Any]:
    """The view `inspect` and `export --json` print: sections with their share, PLE facts, params."""
    total = manifest["bundle"]["bytes"] or 1
    sections = []
    for s in manifest["sections"]:
        quant = s.get("quant")
        sections.append(
            {
                "index": s["index"],
                "kind": s["kind"],
                "data_type": s.get("data_type"),
                "offset": s["offset"],
                "bytes": s["bytes"],
                "share": s["bytes"] / total,
                "quant": quant,
                "quant_short": _quant_short(quant),
                "sha256": s["sha256"],
            }
        )
    model = dict(manifest["model"])
    model["core_share"] = model["params_core"] / model["params_total"] if model.get("params_total") else 0.0
    ple = dict(model["ple"]) if model.get("ple") else None
    if ple:
        ple_section = next((s for s in sections if s["kind"] == "tf_lite_per_layer_embedder"), None)
        ple["section_bytes"] = ple_section["bytes"] if ple_section else None
        ple["section_share"] = ple_section["share"] if ple_section else None
    model["ple"] = ple
    return {
        "schema": "edgeship.inspect/1",
        "build_dir": str(build_dir),
        "bundle": manifest["bundle"],
        "recipe": manifest["export"].get("recipe"),
        "sections": sections,
        "model": model,
    }
