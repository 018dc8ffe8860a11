"""`edgeship quantize` through the CLI on a real float export: presets, YAML recipes, reproducibility, and
every bad input leaving the input build as it was and no output behind."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from edgeship.exporter.manifest import PREFILL_DECODE_KIND
from edgeship.hashing import sha256_file
from tests.fixtures.engine import run_in_engine
from tests.quantize.conftest import cli, json_out, load_manifest, one_line_error, snapshot

pytestmark = pytest.mark.e2e


def _without_quantized_from(manifest: dict) -> dict:
    return {k: v for k, v in manifest.items() if k != "quantized_from"}


@pytest.mark.parametrize("recipe", ["int8", "mixed48"])
def test_quantize_gives_the_bytes_export_gives(
    recipe: str, preset_builds: dict[str, Path], build_factory: Callable[[str, str, str], Path]
) -> None:
    """Quantizing the float build is the same bundle, byte for byte, as exporting the checkpoint with it."""
    exported = load_manifest(build_factory("gemma4", "tiny", recipe))
    quantized = load_manifest(preset_builds[recipe])
    assert quantized["bundle"]["sha256"] == exported["bundle"]["sha256"]
    assert sha256_file(preset_builds[recipe] / "model.litertlm") == exported["bundle"]["sha256"]
    assert _without_quantized_from(quantized) == exported


def test_manifest_says_per_section_bytes_bits_and_scheme(
    preset_builds: dict[str, Path], tiny_float_build: Path
) -> None:
    float_sections = {s["kind"]: s for s in load_manifest(tiny_float_build)["sections"]}
    expected_bits = {"float": (31.5, 33), "int8": (8, 10.5), "int4": (4, 6.5), "int4-b32": (4, 6.5)}
    for preset, (low, high) in expected_bits.items():
        manifest = load_manifest(preset_builds[preset])
        new_sections = {s["kind"]: s for s in manifest["sections"]}
        done = manifest["quantized_from"]
        assert done["recipe"] == preset
        assert done["bundle_sha256"] == load_manifest(tiny_float_build)["bundle"]["sha256"]
        kinds = [change["kind"] for change in done["sections"]]
        assert kinds == [k for k, s in float_sections.items() if s["data_type"] == "TFLiteModel"]
        for change in done["sections"]:
            assert change["bytes_before"] == float_sections[change["kind"]]["bytes"]
            assert change["bytes_after"] == new_sections[change["kind"]]["bytes"]
            assert change["scheme"] == new_sections[change["kind"]]["quant"]
            assert low < change["bits_per_weight"] < high, (preset, change)
        if preset != "float":
            assert manifest["bundle"]["bytes"] < load_manifest(tiny_float_build)["bundle"]["bytes"]
    ple = load_manifest(preset_builds["ple4-main8"])
    bits = {s["kind"]: s["quant"]["bits"] for s in ple["sections"] if s["quant"]}
    assert bits == {PREFILL_DECODE_KIND: 8, "tf_lite_embedder": 8, "tf_lite_per_layer_embedder": 4}
    assert ple["model"]["ple"]["bits"] == 4
    assert ple["model"]["ple"]["row_bytes"] == ple["model"]["ple"]["layers"] * ple["model"]["ple"]["dim"] // 2


def test_quantize_is_byte_reproducible(
    preset_builds: dict[str, Path], tiny_float_build: Path, tmp_path: Path
) -> None:
    again = tmp_path / "again"
    result = cli("quantize", str(tiny_float_build), "--recipe", "int4-b32", "-o", str(again), "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (
        json_out(result)["bundle"]["sha256"] == load_manifest(preset_builds["int4-b32"])["bundle"]["sha256"]
    )
    assert sha256_file(again / "model.litertlm") == json_out(result)["bundle"]["sha256"]


@pytest.mark.parametrize(("preset", "granularity"), [("int4", "channelwise"), ("int4-b32", "blockwise-32")])
def test_int4_presets_are_4_bit_in_their_granularity_and_smaller_than_int8(
    preset: str, granularity: str, preset_builds: dict[str, Path]
) -> None:
    """As `export --recipe` gives them too: quantize and export make the same bytes (tested above)."""
    int8 = {s["kind"]: s for s in load_manifest(preset_builds["int8"])["sections"]}
    graphs = [s for s in load_manifest(preset_builds[preset])["sections"] if s["data_type"] == "TFLiteModel"]
    assert graphs
    for section in graphs:
        assert (section["quant"]["bits"], section["quant"]["granularity"]) == (4, granularity)
        assert section["bytes"] < int8[section["kind"]]["bytes"], section["kind"]


@pytest.mark.parametrize("preset", ["int4", "int4-b32", "mixed48", "ple4-main8"])
def test_quantized_bundle_runs_in_litert_lm(
    preset: str, preset_builds: dict[str, Path], tmp_path: Path
) -> None:
    # The engine writes its XNNPACK cache beside the bundle: run a copy, not the shared build.
    bundle = tmp_path / "model.litertlm"
    shutil.copyfile(preset_builds[preset] / "model.litertlm", bundle)
    run_in_engine(bundle)


def test_yaml_recipe_with_overrides_and_a_recipe_named_in_edgeship_yaml(
    tiny_float_build: Path, tmp_path: Path
) -> None:
    recipe = tmp_path / "recipes" / "edge.yaml"
    recipe.parent.mkdir()
    recipe.write_text(
        "default: int8\n"
        "sections:\n"
        "  tf_lite_per_layer_embedder: int4\n"
        "  tf_lite_prefill_decode:\n"
        "    scheme: int4\n"
        "    op: FULLY_CONNECTED\n"
        "    overrides:\n"
        "      - {regex: per_layer, op: FULLY_CONNECTED, scheme: int8}\n"
    )
    config = tmp_path / "edgeship.yaml"
    config.write_text("recipes:\n  edge: recipes/edge.yaml\n")
    by_file = cli(
        "quantize", str(tiny_float_build), "--recipe", str(recipe), "-o", str(tmp_path / "a"), "--json"
    )
    assert by_file.returncode == 0, by_file.stderr[-2000:]
    by_name = cli(
        "quantize", str(tiny_float_build), "--recipe", "edge", "-o", str(tmp_path / "b"), "--json",
        env={"EDGESHIP_CONFIG": str(config)},
    )  # fmt: skip
    assert by_name.returncode == 0, by_name.stderr[-2000:]
    a, b = json_out(by_file), json_out(by_name)
    assert a["bundle"]["sha256"] == b["bundle"]["sha256"]  # the same recipe, however it is named
    quant = {s["kind"]: s["quant"] for s in a["sections"] if s["quant"]}
    assert quant["tf_lite_per_layer_embedder"]["bits"] == 4
    assert quant["tf_lite_embedder"]["bits"] == 8
    rules = quant[PREFILL_DECODE_KIND]["rules"]
    assert [(r["op"], r["regex"]) for r in rules] == [
        ("FULLY_CONNECTED", ".*"),
        ("FULLY_CONNECTED", "per_layer"),
    ]
    # The same rules as the mixed48 preset's prefill/decode entry give the same section bytes.
    mixed = cli("quantize", str(tiny_float_build), "--recipe", "mixed48", "-o", str(tmp_path / "m"), "--json")
    assert mixed.returncode == 0, mixed.stderr[-2000:]
    sha = {s["kind"]: s["sha256"] for s in json_out(mixed)["sections"]}
    assert (
        next(s["sha256"] for s in a["sections"] if s["kind"] == PREFILL_DECODE_KIND)
        == sha[PREFILL_DECODE_KIND]
    )


# --- bad input -------------------------------------------------------------------------------------------


def _refused(
    args: list[str], build: Path, out: Path, message: str, env: dict[str, str] | None = None
) -> None:
    before = snapshot(build)
    result = cli("quantize", str(build), *args, "-o", str(out), env=env)
    assert result.returncode != 0
    assert message in one_line_error(result)
    assert snapshot(build) == before
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if ".partial-" in p.name]


@pytest.mark.parametrize(
    ("recipe_text", "message"),
    [
        (None, "unknown recipe 'int3'"),
        ("default: int3\n", "unknown scheme 'int3'"),
        ("sections:\n  tf_lite_prefill_decode: {scheme: int4, op: NOT_AN_OP}\n", "knows no op 'NOT_AN_OP'"),
    ],
)
def test_unknown_recipe_or_scheme(
    float_copy: Path, tmp_path: Path, recipe_text: str | None, message: str
) -> None:
    spec = "int3"
    if recipe_text is not None:
        spec = str(tmp_path / "bad.yaml")
        Path(spec).write_text(recipe_text)
    _refused(["--recipe", spec], float_copy, tmp_path / "out", message)


def test_a_scheme_that_cannot_apply_to_the_graph(float_copy: Path, tmp_path: Path) -> None:
    """Blockwise-64 on the tiny model, whose weights have input dimensions of 32."""
    _refused(["--recipe", "int4-b64"], float_copy, tmp_path / "out", "is not divisible by block size 64")


def test_recipe_naming_a_section_the_build_lacks(gemma3_float_build: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "ple.yaml"
    recipe.write_text("default: int8\nsections:\n  tf_lite_per_layer_embedder: int4\n")
    copy = tmp_path / "g3"
    shutil.copytree(gemma3_float_build, copy)
    _refused(["--recipe", str(recipe)], copy, tmp_path / "out", "names section tf_lite_per_layer_embedder")


def test_a_quantized_build_is_not_a_float_build(preset_builds: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "int8"
    shutil.copytree(preset_builds["int8"], copy)
    _refused(["--recipe", "int4"], copy, tmp_path / "out", "is not a float build")


def test_output_is_the_input(float_copy: Path) -> None:
    before = snapshot(float_copy)
    result = cli("quantize", str(float_copy), "--recipe", "int8", "-o", str(float_copy), "--force")
    assert result.returncode != 0
    assert "is the input build" in one_line_error(result)
    assert snapshot(float_copy) == before


def test_truncated_bundle(float_copy: Path, tmp_path: Path) -> None:
    bundle = float_copy / "model.litertlm"
    os.truncate(bundle, bundle.stat().st_size - 4096)
    _refused(["--recipe", "int8"], float_copy, tmp_path / "out", "but its manifest says")


def test_manifest_that_disagrees_with_the_bundle(float_copy: Path, tmp_path: Path) -> None:
    path = float_copy / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["sections"][3]["offset"] += 16384
    path.write_text(json.dumps(manifest))
    _refused(["--recipe", "int8"], float_copy, tmp_path / "out", "disagrees with the bundle")


def test_section_bytes_that_changed_after_export(float_copy: Path, tmp_path: Path) -> None:
    manifest = load_manifest(float_copy)
    section = next(s for s in manifest["sections"] if s["kind"] == PREFILL_DECODE_KIND)
    with open(float_copy / "model.litertlm", "r+b") as handle:
        handle.seek(section["offset"] + section["bytes"] // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))
    _refused(["--recipe", "int8"], float_copy, tmp_path / "out", "does not match its sha256")
