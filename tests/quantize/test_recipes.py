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
    assert (scheme.bits, scheme.granularity) == (8, "channelwise")
    assert scheme.rules[0].aeq == "weight_only_wi8_afp32"


def test_presets_of_issue_11_exist() -> None:
    assert {"float", "int8", "int4", "int4-b32", "int4-b64", "mixed48", "ple4-main8"} <= set(PRESETS)
    assert resolve_recipe("int4-b64").scheme_for(PREFILL_DECODE_KIND).granularity == "blockwise-64"
    ple4 = resolve_recipe("ple4-main8")
    assert (ple4.scheme_for(PLE_SECTION_KIND).bits, ple4.scheme_for(PREFILL_DECODE_KIND).bits) == (4, 8)
    assert ple4.scheme_for(EMBEDDER_KIND).bits == 8


def test_yaml_section_with_op_and_regex_overrides(tmp_path: Path) -> None:
    """Overrides become ai-edge-quantizer configs after the base one (its RecipeManager: later ones win)."""
    from ai_edge_quantizer import recipe as recipe_lib

    path = tmp_path / "edge.yaml"
    path.write_text(
        "default: int8\n"
        "sections:\n"
        "  tf_lite_prefill_decode:\n"
        "    scheme: int4\n"
        "    op: FULLY_CONNECTED\n"
        "    overrides:\n"
        "      - {regex: per_layer, op: FULLY_CONNECTED, scheme: int8}\n"
        "      - {regex: 'q_proj', scheme: float}\n"
    )
    scheme = resolve_recipe(str(path)).scheme_for(PREFILL_DECODE_KIND)
    assert (scheme.bits, scheme.granularity) == (4, "mixed")
    entries = aeq_recipe(scheme)
    # The first two are exactly ai-edge-quantizer's own gemma4_mixed48 prefill/decode configs.
    assert entries[:2] == recipe_lib.gemma4_mixed48()[PREFILL_DECODE_KIND]
    assert (entries[2]["regex"], entries[2]["algorithm_key"]) == ("q_proj", "no_quantize")
    described = scheme.describe("edge")
    assert [r["scheme"] for r in described["rules"]] == ["dynamic_wi4_afp32", "dynamic_wi8_afp32", "float"]


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("{scheme: int4, op: fully_connected}", "op must be a TFLite op name"),
        ("{scheme: int4, overrides: [{regex: '(', scheme: int8}]}", "does not compile"),
        ("{scheme: int4, overrides: [{regex: x, scheme: mixed48-transformer}]}", "already a composite"),
        ("{scheme: int4, overrides: [{regex: x}]}", "each override is a mapping with 'scheme'"),
        ("{scheme: int4, overrides: [{regex: x, scheme: int8, bits: 3}]}", "unknown key"),
        ("{op: FULLY_CONNECTED}", "needs 'scheme'"),
        ("{scheme: int4, overrides: x}", "must be a list"),
    ],
)
def test_bad_section_mappings_are_usage_errors(tmp_path: Path, section: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(f"sections:\n  tf_lite_prefill_decode: {section}\n")
    with pytest.raises(UsageError, match=message) as info:
        resolve_recipe(str(path))
    assert "\n" not in str(info.value)


def test_unknown_op_is_caught_when_the_recipe_is_built(tmp_path: Path) -> None:
    path = tmp_path / "op.yaml"
    path.write_text("sections:\n  tf_lite_prefill_decode: {scheme: int4, op: NOT_AN_OP}\n")
    with pytest.raises(UsageError, match="knows no op 'NOT_AN_OP'"):
        aeq_recipe(resolve_recipe(str(path)).scheme_for(PREFILL_DECODE_KIND))


def test_recipes_named_in_edgeship_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "small.yaml").write_text("default: int4\n")
    config = tmp_path / "edgeship.yaml"
    config.write_text(
        "recipes:\n"
        "  small: recipes/small.yaml\n"
        "  ple-only: {default: int8, sections: {tf_lite_per_layer_embedder: int4}}\n"
    )
    monkeypatch.setenv("EDGESHIP_CONFIG", str(config))
    monkeypatch.chdir(tmp_path / "recipes")  # the file path is relative to edgeship.yaml, not the cwd
    assert resolve_recipe("small").default is SCHEMES["int4"]
    inline = resolve_recipe("ple-only")
    assert inline.name == "ple-only" and inline.scheme_for(PLE_SECTION_KIND).bits == 4
    assert resolve_recipe("int8") is PRESETS["int8"]
    with pytest.raises(UsageError, match="small, ple-only"):
        resolve_recipe("tiny")


def test_config_recipe_may_not_shadow_a_preset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "edgeship.yaml"
    config.write_text("recipes:\n  int8: {default: int4}\n")
    monkeypatch.setenv("EDGESHIP_CONFIG", str(config))
    with pytest.raises(UsageError, match="'int8' is the name of a preset"):
        resolve_recipe("int8")


def test_yaml_recipe_naming_a_missing_section_is_refused_presets_are_not(tmp_path: Path) -> None:
    path = tmp_path / "ple.yaml"
    path.write_text("sections:\n  tf_lite_per_layer_embedder: int4\n")
    kinds = {PREFILL_DECODE_KIND}
    with pytest.raises(UsageError, match="names section tf_lite_per_layer_embedder that build x does not"):
        resolve_recipe(str(path)).check_sections(kinds, "build x")
    resolve_recipe("mixed48").check_sections(kinds, "build x")  # presets apply to what a build has
