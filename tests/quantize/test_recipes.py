"""Recipes: presets, YAML per-section files, and their translation to ai-edge-quantizer recipes."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeship.errors import UsageError
from edgeship.exporter.manifest import EMBEDDER_KIND, PLE_SECTION_KIND, PREFILL_DECODE_KIND
from edgeship.quantize.recipes import (
    PRESETS,
    SCHEMES,
    aeq_recipe,
    parse_scheme,
    resolve_recipe,
)


def test_presets_named_in_the_issue_exist() -> None:
    assert {"float", "int8", "int4", "int4-b32", "mixed48"} <= set(PRESETS)


def test_mixed48_gives_ple_and_embedder_int4_and_transformer_mixed() -> None:
    recipe = resolve_recipe("mixed48")
    assert recipe.scheme_for(PLE_SECTION_KIND).bits == 4
    assert recipe.scheme_for(EMBEDDER_KIND).bits == 4
    assert recipe.scheme_for(PREFILL_DECODE_KIND).granularity == "mixed"


def test_mixed48_matches_ai_edge_quantizer_gemma4_mixed48() -> None:
    """Our per-section mixed48 is the same op configs as ai-edge-quantizer's own gemma4_mixed48 dict."""
    from ai_edge_quantizer import recipe as recipe_lib

    reference = recipe_lib.gemma4_mixed48()
    recipe = resolve_recipe("mixed48")
    for kind in (EMBEDDER_KIND, PLE_SECTION_KIND, PREFILL_DECODE_KIND):
        assert aeq_recipe(recipe.scheme_for(kind)) == reference[kind], kind


def test_yaml_recipe_chooses_scheme_per_section(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(
        "name: edge\ndefault: int8\nsections:\n  tf_lite_per_layer_embedder: int4-b32\n"
        "  tf_lite_embedder: dynamic_wi4b64_afp32\n"
    )
    recipe = resolve_recipe(str(path))
    assert recipe.name == "edge"
    assert recipe.scheme_for(PREFILL_DECODE_KIND) is SCHEMES["int8"]
    assert recipe.scheme_for(PLE_SECTION_KIND) is SCHEMES["int4-b32"]
    embedder = recipe.scheme_for(EMBEDDER_KIND)
    assert (embedder.bits, embedder.granularity) == (4, "blockwise-64")
    assert isinstance(aeq_recipe(embedder), list) and aeq_recipe(embedder)


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_every_scheme_builds_an_aeq_recipe_or_float(name: str) -> None:
    recipe = aeq_recipe(SCHEMES[name])
    if name == "float":
        assert recipe is None
    else:
        assert isinstance(recipe, list) and all("op_config" in entry for entry in recipe)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("default: int3\n", "unknown scheme 'int3'"),
        ("sections:\n  tf_lite_vision: int4\n", "unknown section kind"),
        ("defaults: int8\n", "unknown key"),
        ("- int8\n", "must be a mapping"),
        ("sections: [1, 2]\n", "must map section kinds"),
        ("default: [int8\n", "cannot be read as YAML"),
    ],
)
def test_bad_yaml_recipe_is_one_line_usage_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message) as info:
        resolve_recipe(str(path))
    assert "\n" not in str(info.value)


def test_unknown_recipe_names_the_presets() -> None:
    with pytest.raises(UsageError, match="int8") as info:
        resolve_recipe("int3")
    assert "unknown recipe 'int3'" in str(info.value)


def test_missing_recipe_file() -> None:
    with pytest.raises(UsageError, match="does not exist"):
        resolve_recipe("/nonexistent/recipe.yaml")


def test_aeq_names_are_accepted_with_their_bits() -> None:
    scheme = parse_scheme("weight_only_wi8_afp32", "test")
    assert (scheme.bits, scheme.granularity, scheme.aeq) == (8, "channelwise", "weight_only_wi8_afp32")
