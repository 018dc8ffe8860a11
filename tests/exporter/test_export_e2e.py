"""Real exports (litert-torch, ai-edge-quantizer, litert-lm-builder) of every tested architecture, checked
byte for byte against their manifests and loaded in the real LiteRT-LM engine.

Builds come from the session cache (tests/fixtures/builds.py): each (arch, recipe) is exported once.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from edgeship.exporter.arch import ARCHITECTURES, SYNTHETIC_ARCHS
from edgeship.exporter.litertlm import read_header
from edgeship.exporter.manifest import read_build
from edgeship.hashing import known_sha256, sha256_file
from tests.cli import EdgeshipCli
from tests.fixtures.engine import run_in_engine

pytestmark = pytest.mark.e2e

PLE_KIND = "tf_lite_per_layer_embedder"
ALL_ARCHS = list(SYNTHETIC_ARCHS)  # gemma4, gemma4-text, gemma3n-text, gemma3


@pytest.fixture(scope="module", params=ALL_ARCHS)
def int8_build(request: pytest.FixtureRequest, build_factory) -> tuple[str, Path]:
    return request.param, build_factory(request.param, "tiny", "int8")


def builder_layout(bundle: Path) -> tuple[str, list[tuple[int, int, str, str]]]:
    """The container version and (offset, end, kind, data type) per section as litert-lm-builder's peek
    reader (litert_lm_builder.litertlm_peek, behind `litert-lm-peek`) sees them; kind as contracts.md names
    it: a TFLiteModel section's model_type, else its data type."""
    from litert_lm_builder import litertlm_core, litertlm_peek

    printed = io.StringIO()
    metadata = litertlm_peek.read_litertlm_header(str(bundle), printed)
    version = printed.getvalue().split("LiteRT-LM Version:", 1)[1].split()[0]
    objects = metadata.SectionMetadata()
    layout = []
    for index in range(objects.ObjectsLength() if objects else 0):
        section = objects.Objects(index)
        data_type = litertlm_core.any_section_data_type_to_string(section.DataType())
        kind = (litertlm_peek.get_model_type(section) if data_type == "TFLiteModel" else None) or data_type
        layout.append((section.BeginOffset(), section.EndOffset(), kind, data_type))
    return version, layout


def test_sections_match_manifest_bytes(int8_build: tuple[str, Path]) -> None:
    _, build = int8_build
    manifest = read_build(build).manifest
    bundle = build / manifest["bundle"]["file"]
    assert manifest["bundle"]["bytes"] == bundle.stat().st_size
    assert manifest["bundle"]["sha256"] == sha256_file(bundle)
    header = manifest["header"]
    assert header["sha256"] == sha256_file(bundle, header["offset"], header["end"] - header["offset"])
    on_disk = read_header(bundle).sections
    assert [(s.offset, s.end, s.kind) for s in on_disk] == [
        (s["offset"], s["end"], s["kind"]) for s in manifest["sections"]
    ]
    # The same layout through litert-lm-builder's own reader, not edgeship's (litertlm.py).
    version, sections = builder_layout(bundle)
    assert version == manifest["bundle"]["version"]
    assert sections == [(s["offset"], s["end"], s["kind"], s["data_type"]) for s in manifest["sections"]]
    for section in manifest["sections"]:
        assert section["bytes"] == section["end"] - section["offset"]
        assert section["offset"] % manifest["bundle"]["alignment"] == 0
        assert section["sha256"] == sha256_file(bundle, section["offset"], section["bytes"]), section["kind"]
    kinds = {s["kind"] for s in manifest["sections"]}
    assert {"tf_lite_prefill_decode", "LlmMetadataProto", "HF_Tokenizer_Zlib"} <= kinds
    assert (build / "tokenizer.json").is_file()


def test_checkpoint_weights_sha256_is_the_digest_of_the_weight_files(int8_build: tuple[str, Path]) -> None:
    """contracts.md: weights_sha256 = sha256 over, per weight file in order, its name, NUL, and its own
    sha256 digest — recomputed here with hashlib from the checkpoint's files."""
    _, build = int8_build
    checkpoint = read_build(build).manifest["checkpoint"]
    folder = Path(checkpoint["path"])
    assert checkpoint["files"] == sorted(p.name for p in folder.glob("*.safetensors"))
    digest = hashlib.sha256()
    for name in checkpoint["files"]:
        digest.update(name.encode() + b"\0" + hashlib.sha256((folder / name).read_bytes()).digest())
    assert checkpoint["weights_sha256"] == digest.hexdigest()


def test_ple_section_exactly_for_ple_models(int8_build: tuple[str, Path]) -> None:
    arch, build = int8_build
    manifest = read_build(build).manifest
    has_ple = ARCHITECTURES[SYNTHETIC_ARCHS[arch]].has_ple
    kinds = [s["kind"] for s in manifest["sections"]]
    assert (PLE_KIND in kinds) == has_ple
    assert (manifest["model"]["ple"] is not None) == has_ple
    if has_ple:
        assert "tf_lite_embedder" in kinds
        ple = manifest["model"]["ple"]
        config = json.loads((Path(manifest["checkpoint"]["path"]) / "config.json").read_text())
        text = config.get("text_config", config)
        assert (ple["vocab"], ple["layers"], ple["dim"]) == (
            text["vocab_size_per_layer_input"],
            text["num_hidden_layers"],
            text["hidden_size_per_layer_input"],
        )
        assert ple["row_bytes"] == ple["layers"] * ple["dim"] * ple["bits"] // 8
        assert manifest["model"]["params_core"] < manifest["model"]["params_total"]


def test_quant_recorded_per_tflite_section(int8_build: tuple[str, Path]) -> None:
    _, build = int8_build
    for section in read_build(build).manifest["sections"]:
        if section["data_type"] == "TFLiteModel":
            assert section["quant"] == {
                "recipe": "int8", "scheme": "dynamic_wi8_afp32", "bits": 8, "granularity": "channelwise",
            }  # fmt: skip
        else:
            assert section["quant"] is None


def test_bundle_runs_in_litert_lm_engine(int8_build: tuple[str, Path]) -> None:
    _, build = int8_build
    run_in_engine(build / "model.litertlm")


def test_export_is_byte_reproducible_through_cli(
    build_factory, cli: EdgeshipCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh `edgeship export` of the same checkpoint and recipe gives the cached build's exact bytes."""
    cached = build_factory("gemma4", "tiny", "int8")
    manifest = read_build(cached).manifest
    fresh = tmp_path / "again"
    # Another string-hash seed than the cached build's: set/dict iteration order must not leak into bytes.
    exporting = cli.with_env(PYTHONHASHSEED="4242")
    result = exporting("export", manifest["checkpoint"]["path"], "-o", fresh, "--json", timeout=1200)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)
    assert summary["bundle"]["sha256"] == manifest["bundle"]["sha256"]
    assert sha256_file(fresh / "model.litertlm") == manifest["bundle"]["sha256"]
    # The export recorded the digest of the file it wrote, so the first push need not hash it again.
    monkeypatch.setenv("EDGESHIP_HOME", str(cli.home))
    assert known_sha256(fresh / "model.litertlm") == manifest["bundle"]["sha256"]
    assert [s["sha256"] for s in summary["sections"]] == [s["sha256"] for s in manifest["sections"]]
    assert "Traceback" not in result.stderr
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_text_only_gemma4_gets_same_split_as_multimodal(build_factory) -> None:
    multimodal = read_build(build_factory("gemma4", "tiny", "int8")).manifest
    text_only = read_build(build_factory("gemma4-text", "tiny", "int8")).manifest
    assert text_only["model"]["adapted_as"] == "gemma4"
    assert [s["kind"] for s in text_only["sections"]] == [s["kind"] for s in multimodal["sections"]]
    assert [s["bytes"] for s in text_only["sections"]] == [s["bytes"] for s in multimodal["sections"]]


def test_mixed48_quantizes_each_section_kind_its_own_way(build_factory) -> None:
    int8 = {s["kind"]: s for s in read_build(build_factory("gemma4", "tiny", "int8")).manifest["sections"]}
    mixed_build = build_factory("gemma4", "tiny", "mixed48")
    mixed = {s["kind"]: s for s in read_build(mixed_build).manifest["sections"]}
    assert mixed[PLE_KIND]["quant"]["bits"] == 4
    assert mixed["tf_lite_embedder"]["quant"]["bits"] == 4
    assert mixed["tf_lite_prefill_decode"]["quant"]["granularity"] == "mixed"
    # int4 rows are half the int8 ones: the PLE and embedder sections shrink, the metadata does not.
    assert mixed[PLE_KIND]["bytes"] < int8[PLE_KIND]["bytes"]
    assert mixed["tf_lite_embedder"]["bytes"] < int8["tf_lite_embedder"]["bytes"]
    assert mixed["tf_lite_prefill_decode"]["bytes"] < int8["tf_lite_prefill_decode"]["bytes"]
    run_in_engine(mixed_build / "model.litertlm")


def test_inspect_json_and_table(build_factory, cli: EdgeshipCli) -> None:
    build = build_factory("gemma4", "tiny", "int8")
    manifest = read_build(build).manifest
    result = cli("inspect", build, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert sum(s["bytes"] for s in data["sections"]) <= manifest["bundle"]["bytes"]
    assert (
        abs(
            sum(s["share"] for s in data["sections"])
            - sum(s["bytes"] for s in manifest["sections"]) / manifest["bundle"]["bytes"]
        )
        < 1e-9
    )
    assert data["model"]["ple"]["section_bytes"] == next(
        s["bytes"] for s in manifest["sections"] if s["kind"] == PLE_KIND
    )
    table = cli("inspect", build)
    assert table.returncode == 0
    assert PLE_KIND in table.stdout and "bytes read per token" in table.stdout


def test_disk_full_leaves_no_bundle(tiny_gemma4_checkpoint: Path, cli: EdgeshipCli, tmp_path: Path) -> None:
    """A real ENOSPC: BUILD_DIR on a 1 MiB tmpfs (root only); the float graphs do not fit."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        build = mount_point / "build"
        result = cli("export", tiny_gemma4_checkpoint, "-o", build, "--quiet", timeout=1200)
        assert result.returncode != 0
        assert "Traceback" not in result.stderr
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "disk full" in lines[0], result.stderr
        if "; log: " in lines[0]:  # the toolchain log is kept for the user; this test needs no copy
            Path(lines[0].rsplit("; log: ", 1)[1].strip()).unlink(missing_ok=True)
        assert not build.exists()
        assert list(mount_point.iterdir()) == []
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)
        shutil.rmtree(mount_point, ignore_errors=True)
