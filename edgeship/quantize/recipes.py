"""Quantization recipes: named presets and YAML files choosing a scheme per bundle section kind.

A recipe maps each section kind (``tf_lite_prefill_decode``, ``tf_lite_embedder``,
``tf_lite_per_layer_embedder``...) to a *scheme*; a scheme turns into an ai-edge-quantizer recipe (a list of
op configs) only when applied, so reading a recipe needs no heavy import.

Scheme names: ``float`` (no quantization), ``int8`` (dynamic int8 weights, channelwise),
``int4`` (channelwise), ``int4-b32`` / ``int4-b64`` (blockwise), ``int4-embedding`` (int4 embedding
lookups), ``mixed48-transformer`` (int4 fully-connected, the PLE gate/projection int8), or any
ai-edge-quantizer recipe function name (``dynamic_wi4b64_afp32``, ``weight_only_wi8_afp32``...).

YAML recipe file (``--recipe FILE``, or a name under ``recipes:`` in edgeship.yaml)::

    name: my-recipe            # optional, defaults to the file stem
    default: int8              # sections not listed below
    sections:
      tf_lite_per_layer_embedder: int4
      tf_lite_embedder: int4-b32
      tf_lite_prefill_decode:  # a scheme with overrides, applied in order (a later match wins)
        scheme: int4
        op: FULLY_CONNECTED    # optional: the base scheme only for this TFLite op (others stay float)
        overrides:
          - {regex: per_layer, op: FULLY_CONNECTED, scheme: int8}   # tensors whose name matches
          - {regex: "attn\\.q_proj", scheme: float}                 # float = leave unquantized

``op`` is an ai-edge-quantizer ``TFLOperationName`` (``FULLY_CONNECTED``, ``EMBEDDING_LOOKUP``,
``BATCH_MATMUL``...); ``regex`` is matched (``re.search``) against the op's output tensor name. A section a
YAML recipe names must exist in the build it is applied to; presets name only what they find.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
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

ALL_OPS = "*"
ALL_TENSORS = ".*"
# ai-edge-quantizer's channelwise recipe names are plain functions without op/regex arguments; their
# ``c`` aliases are the same recipe and take them (recipe.py: dynamic_wi8_afp32 = dynamic_wi8c_afp32()).
_ALIASES = {"dynamic_wi8_afp32": "dynamic_wi8c_afp32", "dynamic_wi4_afp32": "dynamic_wi4c_afp32"}


@dataclass(frozen=True)
class Rule:
    """One ai-edge-quantizer config: ``aeq`` recipe (None = keep float) for ``op`` ops on ``regex`` names."""

    aeq: str | None
    op: str = ALL_OPS
    regex: str = ALL_TENSORS

    def to_dict(self) -> dict[str, Any]:
        return {"scheme": self.aeq or "float", "op": self.op, "regex": self.regex}


@dataclass(frozen=True)
class Scheme:
    """How one section is quantized; ``bits`` None means float. ``rules`` apply in order, later wins."""

    name: str
    bits: int | None
    granularity: str  # channelwise | blockwise-32 | blockwise-64 | float | mixed
    rules: tuple[Rule, ...] = ()

    @property
    def is_float(self) -> bool:
        return not self.rules or all(rule.aeq is None for rule in self.rules)

    @property
    def composite(self) -> bool:
        """More than one rule, or one restricted to some ops or names."""
        return len(self.rules) > 1 or any(r.op != ALL_OPS or r.regex != ALL_TENSORS for r in self.rules)

    def describe(self, recipe: str) -> dict[str, Any]:
        """The manifest's ``quant`` entry."""
        described: dict[str, Any] = {
            "recipe": recipe,
            "scheme": self.name if self.composite else (self.rules[0].aeq if self.rules else "float"),
            "bits": self.bits,
            "granularity": self.granularity,
        }
        if self.composite:
            described["rules"] = [rule.to_dict() for rule in self.rules]
        return described


def _simple(name: str, bits: int | None, granularity: str, aeq: str | None) -> Scheme:
    return Scheme(name, bits, granularity, (Rule(aeq),) if aeq else ())


SCHEMES: dict[str, Scheme] = {
    s.name: s
    for s in (
        _simple("float", None, "float", None),
        _simple("int8", 8, "channelwise", "dynamic_wi8_afp32"),
        _simple("int4", 4, "channelwise", "dynamic_wi4_afp32"),
        _simple("int4-b32", 4, "blockwise-32", "dynamic_wi4b32_afp32"),
        _simple("int4-b64", 4, "blockwise-64", "dynamic_wi4b64_afp32"),
        Scheme("int4-embedding", 4, "channelwise", (Rule("dynamic_wi4c_afp32", op="EMBEDDING_LOOKUP"),)),
        # ai-edge-quantizer's gemma4_mixed48 prefill/decode entry: the per-layer path needs 8 bits.
        Scheme(
            "mixed48-transformer",
            4,
            "mixed",
            (
                Rule("dynamic_wi4c_afp32", op="FULLY_CONNECTED"),
                Rule("dynamic_wi8c_afp32", op="FULLY_CONNECTED", regex="per_layer"),
            ),
        ),
    )
}

_AEQ_NAME = re.compile(r"^(dynamic|weight_only)_wi\d+[a-z0-9_]*_afp32$")
_BITS = re.compile(r"wi(\d+)")
_OP_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$|^\*$")


@dataclass(frozen=True)
class Recipe:
    name: str
    default: Scheme
    sections: dict[str, Scheme] = field(default_factory=dict)
    # A YAML recipe's sections were named by a person: applying it to a build without one is an error.
    strict: bool = False

    def scheme_for(self, kind: str) -> Scheme:
        return self.sections.get(kind, self.default)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "default": _scheme_entry(self.default),
            "sections": {kind: _scheme_entry(scheme) for kind, scheme in sorted(self.sections.items())},
        }

    @property
    def lowest_bits(self) -> int | None:
        """The fewest bits any section gets (None when every section stays float)."""
        bits = [s.bits for s in (self.default, *self.sections.values()) if s.bits]
        return min(bits) if bits else None

    def check_sections(self, kinds: set[str], where: str) -> None:
        """A strict recipe naming a section kind the build lacks is a usage error."""
        missing = sorted(set(self.sections) - kinds) if self.strict else []
        if missing:
            raise UsageError(
                f"recipe '{self.name}' names section {', '.join(missing)} that {where} does not have"
                f" (it has {', '.join(sorted(kinds)) or 'no TFLite sections'})"
            )


def _scheme_entry(scheme: Scheme) -> Any:
    """A named scheme by its name; one made up in a YAML file by its rules too (they decide the bytes)."""
    if scheme.name in SCHEMES or not scheme.composite:
        return scheme.name
    return {"scheme": scheme.name, "rules": [rule.to_dict() for rule in scheme.rules]}


PRESETS: dict[str, Recipe] = {
    "float": Recipe("float", SCHEMES["float"]),
    "int8": Recipe("int8", SCHEMES["int8"]),
    "int4": Recipe("int4", SCHEMES["int4"]),
    "int4-b32": Recipe("int4-b32", SCHEMES["int4-b32"]),
    "int4-b64": Recipe("int4-b64", SCHEMES["int4-b64"]),
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
    # The PLE table is read a row per token from flash, so it is the section worth shrinking; the transformer
    # and embedder keep int8.
    "ple4-main8": Recipe("ple4-main8", SCHEMES["int8"], {PLE_SECTION_KIND: SCHEMES["int4-embedding"]}),
}


def _aeq_scheme(name: str) -> Scheme:
    bits = int(m.group(1)) if (m := _BITS.search(name)) else None
    granularity = "blockwise-" + b.group(1) if (b := re.search(r"b(\d+)_", name)) else "channelwise"
    return _simple(name, bits, granularity, name)


def parse_scheme(name: Any, where: str) -> Scheme:
    if not isinstance(name, str):
        raise UsageError(f"{where}: scheme must be a name, got {name!r}")
    if name in SCHEMES:
        return SCHEMES[name]
    if _AEQ_NAME.match(name):
        return _aeq_scheme(name)
    raise UsageError(
        f"{where}: unknown scheme '{name}'; use one of {', '.join(SCHEMES)} or an ai-edge-quantizer recipe"
        " name such as dynamic_wi4b64_afp32"
    )


def _rule_selector(entry: Mapping[str, Any], where: str) -> tuple[str, str]:
    op = entry.get("op", ALL_OPS)
    regex = entry.get("regex", ALL_TENSORS)
    if not isinstance(op, str) or not _OP_NAME.match(op):
        raise UsageError(f"{where}: op must be a TFLite op name such as FULLY_CONNECTED, got {op!r}")
    if not isinstance(regex, str):
        raise UsageError(f"{where}: regex must be a string, got {regex!r}")
    try:
        re.compile(regex)
    except re.error as exc:
        raise UsageError(f"{where}: regex {regex!r} does not compile: {exc}") from exc
    return op, regex


def _single_rule(scheme: Scheme, op: str, regex: str, where: str) -> Rule:
    """``scheme`` narrowed to ``op`` / ``regex``; only single-recipe schemes can be narrowed."""
    if scheme.composite:
        raise UsageError(
            f"{where}: '{scheme.name}' is already a composite scheme; use a plain one (float, int8, int4,"
            " int4-b32, int4-b64 or an ai-edge-quantizer recipe name) with op/regex"
        )
    return Rule(scheme.rules[0].aeq if scheme.rules else None, op, regex)


def _parse_section(value: Any, where: str) -> Scheme:
    """A scheme name, or a mapping {scheme, op?, overrides?: [{scheme, op?, regex?}]}."""
    if not isinstance(value, Mapping):
        return parse_scheme(value, where)
    unknown = set(value) - {"scheme", "op", "overrides"}
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    if "scheme" not in value:
        raise UsageError(f"{where}: a section mapping needs 'scheme'")
    base = parse_scheme(value["scheme"], f"{where}.scheme")
    op, _ = _rule_selector({"op": value.get("op", ALL_OPS)}, where)
    rules = [_single_rule(base, op, ALL_TENSORS, where)]
    overrides = value.get("overrides") or []
    if not isinstance(overrides, list):
        raise UsageError(f"{where}: 'overrides' must be a list of {{scheme, op, regex}} entries")
    for i, entry in enumerate(overrides):
        at = f"{where}.overrides[{i}]"
        if not isinstance(entry, Mapping) or "scheme" not in entry:
            raise UsageError(f"{at}: each override is a mapping with 'scheme' and 'op' and/or 'regex'")
        extra = set(entry) - {"scheme", "op", "regex"}
        if extra:
            raise UsageError(f"{at}: unknown key(s) {', '.join(sorted(map(str, extra)))}")
        op_i, regex_i = _rule_selector(entry, at)
        rules.append(_single_rule(parse_scheme(entry["scheme"], f"{at}.scheme"), op_i, regex_i, at))
    if len(rules) == 1 and op == ALL_OPS:
        return base
    bits = {parse_scheme(e["scheme"], where).bits for e in overrides} | {base.bits}
    granularities = {parse_scheme(e["scheme"], where).granularity for e in overrides} | {base.granularity}
    mixed = len(bits) > 1 or len(granularities) > 1
    return Scheme(
        f"{base.name}+{len(rules) - 1}" if overrides else f"{base.name}@{op}",
        base.bits,
        "mixed" if mixed else base.granularity,
        tuple(rules),
    )


def recipe_from_mapping(data: Any, name: str, where: str) -> Recipe:
    """A YAML recipe (already parsed): {name?, default?, sections?}."""
    if not isinstance(data, Mapping):
        raise UsageError(f"{where} must be a mapping with 'default' and/or 'sections'")
    unknown_keys = set(data) - {"name", "default", "sections"}
    if unknown_keys:
        raise UsageError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown_keys)))}")
    default = _parse_section(data.get("default", "float"), f"{where}: default")
    sections_raw = data.get("sections") or {}
    if not isinstance(sections_raw, Mapping):
        raise UsageError(f"{where}: 'sections' must map section kinds to schemes")
    sections = {}
    for kind, scheme in sections_raw.items():
        if kind not in TFLITE_SECTION_KINDS:
            raise UsageError(f"{where}: unknown section kind '{kind}'; use {', '.join(TFLITE_SECTION_KINDS)}")
        sections[kind] = _parse_section(scheme, f"{where}: sections.{kind}")
    return Recipe(str(data.get("name") or name), default, sections, strict=True)


def load_recipe_file(path: Path) -> Recipe:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UsageError(f"recipe file {path} cannot be read as YAML: {exc}".splitlines()[0]) from exc
    return recipe_from_mapping(data, path.stem, f"recipe file {path}")


def resolve_recipe(spec: str, named: Mapping[str, Any] | None = None, base: Path | None = None) -> Recipe:
    """A preset name, a name under ``recipes:`` in edgeship.yaml, or a path to a YAML recipe file.

    ``named`` defaults to the recipes of the config found the usual way (``$EDGESHIP_CONFIG``, else
    ./edgeship.yaml); a named recipe is a file path (relative to the config's folder) or an inline mapping.
    """
    if named is None:
        from edgeship.config import load_config

        config = load_config()
        named, base = config.recipes, (config.source.parent if config.source else None)
    shadowing = sorted(set(named) & set(PRESETS))
    if shadowing:
        raise UsageError(
            f"edgeship.yaml recipes: '{shadowing[0]}' is the name of a preset; give the recipe another name"
        )
    if spec in PRESETS:
        return PRESETS[spec]
    if spec in named:
        value = named[spec]
        if isinstance(value, Mapping):
            return recipe_from_mapping({"name": spec, **value}, spec, f"edgeship.yaml recipes.{spec}")
        path = Path(str(value))
        if not path.is_absolute() and base is not None:
            path = base / path
        if not path.is_file():
            raise UsageError(f"edgeship.yaml recipes.{spec}: recipe file {path} does not exist")
        return load_recipe_file(path)
    path = Path(spec)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise UsageError(f"recipe file {path} does not exist")
        return load_recipe_file(path)
    known = ", ".join([*PRESETS, *named])
    raise UsageError(f"unknown recipe '{spec}'; use one of {known} or a YAML recipe file")


def aeq_recipe(scheme: Scheme) -> Any:
    """The ai-edge-quantizer recipe (list of op configs) for a scheme, or None for float.

    Each rule's configs come from ai-edge-quantizer's own recipe functions, concatenated in order the way its
    ``gemma4_mixed48`` recipe is; its RecipeManager lets a later config win where two match.
    """
    if scheme.is_float:
        return None
    from ai_edge_quantizer import algorithm_manager, qtyping, recipe_manager
    from ai_edge_quantizer import recipe as recipe_lib

    entries: list[Any] = []
    for rule in scheme.rules:
        try:
            operation = qtyping.TFLOperationName(rule.op)
        except ValueError:
            raise UsageError(
                f"scheme '{scheme.name}': ai-edge-quantizer knows no op '{rule.op}'"
                f" (e.g. {qtyping.TFLOperationName.FULLY_CONNECTED.value},"
                f" {qtyping.TFLOperationName.EMBEDDING_LOOKUP.value})"
            ) from None
        if rule.aeq is None:
            manager = recipe_manager.RecipeManager()
            manager.add_quantization_config(
                rule.regex, operation, algorithm_key=algorithm_manager.AlgorithmName.NO_QUANTIZE
            )
            entries += manager.get_quantization_recipe()
            continue
        if (rule.op, rule.regex) == (ALL_OPS, ALL_TENSORS):
            builder = getattr(recipe_lib, rule.aeq, None)
            kwargs: dict[str, Any] = {}
        else:
            builder = getattr(recipe_lib, _ALIASES.get(rule.aeq, rule.aeq), None)
            kwargs = {"regex": rule.regex, "operation_name": operation}
        if builder is None or not callable(builder):
            raise UsageError(f"ai-edge-quantizer has no recipe '{rule.aeq}'")
        try:
            entries += builder(**kwargs)
        except TypeError:
            raise UsageError(
                f"ai-edge-quantizer recipe '{rule.aeq}' cannot be limited to an op or regex; use"
                " a dynamic_wi<bits><c|b32|b64>_afp32 recipe"
            ) from None
    return entries
