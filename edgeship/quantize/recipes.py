"""Quantization recipes: named presets and YAML files choosing a scheme per bundle section kind.

A recipe maps each section kind (``tf_lite_prefill_decode``, ``tf_lite_embedder``,
``tf_lite_per_layer_embedder``...) to a *scheme*; a scheme turns into an ai-edge-quantizer recipe (a list of
op configs) only when applied, so reading a recipe needs no heavy import.

Scheme names: ``float`` (no quantization), ``int8`` (dynamic int8 weights, channelwise),
``int4`` (channelwise), ``int4-b32`` / ``int4-b64`` (blockwise), ``int4-embedding`` (int4 embedding
lookups), ``mixed48-transformer`` (int4 fully-connected, the PLE gate/projection int8), or any
ai-edge-quantizer recipe function name (``dynamic_wi4b64_afp32``, ``weight_only_wi8_afp32``...).

YAML recipe file::

    name: my-recipe            # optional, defaults to the file stem
    default: int8              # sections not listed below
    sections:
      tf_lite_per_layer_embedder: int4
      tf_lite_embedder: int4-b32
      tf_lite_prefill_decode: int8
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edgeship.errors import UsageError
from edgeship.exporter.manifest import (
    EMBEDDER_KIND,
    PLE_SECTION_KIND,
    PREFILL_DECODE_KIND,
    TFLITE_SECTION_KINDS,
)


@dataclass(frozen=True)
class Scheme:
    """How one section is quantized; ``bits`` None means float."""

    name: str
    bits: int | None
    granularity: str  # channelwise | blockwise-32 | blockwise-64 | float | mixed
    aeq: str | None  # ai-edge-quantizer recipe function, or a local builder name starting with "_"

    def describe(self, recipe: str) -> dict[str, Any]:
        return {
            "recipe": recipe,
            "scheme": self.aeq or "float",
            "bits": self.bits,
            "granularity": self.granularity,
        }


SCHEMES: dict[str, Scheme] = {
    s.name: s
    for s in (
        Scheme("float", None, "float", None),
        Scheme("int8", 8, "channelwise", "dynamic_wi8_afp32"),
        Scheme("int4", 4, "channelwise", "dynamic_wi4_afp32"),
        Scheme("int4-b32", 4, "blockwise-32", "dynamic_wi4b32_afp32"),
        Scheme("int4-b64", 4, "blockwise-64", "dynamic_wi4b64_afp32"),
        Scheme("int4-embedding", 4, "channelwise", "_int4_embedding_lookup"),
        Scheme("mixed48-transformer", 4, "mixed", "_int4_fc_int8_per_layer"),
    )
}

_AEQ_NAME = re.compile(r"^(dynamic|weight_only)_wi\d+[a-z0-9_]*_afp32$")
_BITS = re.compile(r"wi(\d+)")


@dataclass(frozen=True)
class Recipe:
    name: str
    default: Scheme
    sections: dict[str, Scheme] = field(default_factory=dict)

    def scheme_for(self, kind: str) -> Scheme:
        return self.sections.get(kind, self.default)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "default": self.default.name,
            "sections": {kind: scheme.name for kind, scheme in sorted(self.sections.items())},
        }


PRESETS: dict[str, Recipe] = {
    "float": Recipe("float", SCHEMES["float"]),
    "int8": Recipe("int8", SCHEMES["int8"]),
    "int4": Recipe("int4", SCHEMES["int4"]),
    "int4-b32": Recipe("int4-b32", SCHEMES["int4-b32"]),
    # PLE and embedder int4, transformer int4 with the PLE gate/projection int8 (ai-edge-quantizer's
    # gemma4_mixed48): the per-layer path is the sensitive one.
    "mixed48": Recipe(
        "mixed48",
        SCHEMES["int8"],
        {
            EMBEDDER_KIND: SCHEMES["int4-embedding"],
            PLE_SECTION_KIND: SCHEMES["int4-embedding"],
            PREFILL_DECODE_KIND: SCHEMES["mixed48-transformer"],
        },
    ),
}


def parse_scheme(name: Any, where: str) -> Scheme:
    if not isinstance(name, str):
        raise UsageError(f"{where}: scheme must be a name, got {name!r}")
    if name in SCHEMES:
        return SCHEMES[name]
    if _AEQ_NAME.match(name):
        bits = int(m.group(1)) if (m := _BITS.search(name)) else None
        granularity = "blockwise-" + b.group(1) if (b := re.search(r"b(\d+)_", name)) else "channelwise"
        return Scheme(name, bits, granularity, name)
    raise UsageError(
        f"{where}: unknown scheme '{name}'; use one of {', '.join(SCHEMES)} or an ai-edge-quantizer recipe"
        " name such as dynamic_wi4b64_afp32"
    )


def load_recipe_file(path: Path) -> Recipe:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"recipe file {path} cannot be read as YAML: {exc}".splitlines()[0]) from exc
    if not isinstance(data, dict):
        raise UsageError(f"recipe file {path} must be a mapping with 'default' and/or 'sections'")
    unknown_keys = set(data) - {"name", "default", "sections"}
    if unknown_keys:
        raise UsageError(f"recipe file {path}: unknown key(s) {', '.join(sorted(unknown_keys))}")
    default = parse_scheme(data.get("default", "float"), f"{path.name}: default")
    sections_raw = data.get("sections") or {}
    if not isinstance(sections_raw, dict):
        raise UsageError(f"recipe file {path}: 'sections' must map section kinds to schemes")
    sections = {}
    for kind, scheme in sections_raw.items():
        if kind not in TFLITE_SECTION_KINDS:
            raise UsageError(
                f"recipe file {path}: unknown section kind '{kind}'; use {', '.join(TFLITE_SECTION_KINDS)}"
            )
        sections[kind] = parse_scheme(scheme, f"{path.name}: sections.{kind}")
    return Recipe(str(data.get("name") or path.stem), default, sections)


def resolve_recipe(spec: str) -> Recipe:
    """A preset name or a path to a YAML recipe file."""
    if spec in PRESETS:
        return PRESETS[spec]
    path = Path(spec)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise UsageError(f"recipe file {path} does not exist")
        return load_recipe_file(path)
    raise UsageError(f"unknown recipe '{spec}'; use one of {', '.join(PRESETS)} or a YAML recipe file")


def aeq_recipe(scheme: Scheme) -> Any:
    """The ai-edge-quantizer recipe (list of op configs) for a scheme, or None for float."""
    if scheme.aeq is None:
        return None
    from ai_edge_quantizer import qtyping
    from ai_edge_quantizer import recipe as recipe_lib

    ops = qtyping.TFLOperationName
    if scheme.aeq == "_int4_embedding_lookup":
        return recipe_lib.dynamic_wi4c_afp32(operation_name=ops.EMBEDDING_LOOKUP)
    if scheme.aeq == "_int4_fc_int8_per_layer":
        return recipe_lib.dynamic_wi4c_afp32(
            operation_name=ops.FULLY_CONNECTED
        ) + recipe_lib.dynamic_wi8c_afp32(regex="per_layer", operation_name=ops.FULLY_CONNECTED)
    builder = getattr(recipe_lib, scheme.aeq, None)
    if builder is None or not callable(builder):
        raise UsageError(f"ai-edge-quantizer has no recipe '{scheme.aeq}'")
    return builder()
