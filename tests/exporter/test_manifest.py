"""The build-dir contract's one reader: checks and messages, the typed view, and the small writer API."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgeship.errors import InputError
from edgeship.exporter.manifest import (
    ALIGNMENT,
    PLE_SECTION_KIND,
    Attention,
    PleFacts,
    read_build,
    summarize,
    update_manifest,
)
from edgeship.hashing import sha256_file
from tests.android_harness.synthetic import random_sections, write_build

PLE = {"vocab": 64, "layers": 2, "dim": 8, "bits": 8, "row_bytes": 16, "table_bytes": 1024}
ATTENTION = {
    "layer_types": ["sliding_attention", "full_attention"],
    "sliding_window": 512,
    "kv_shared_layers": 1,
    "head_dim": 64,
    "global_head_dim": 128,
    "num_key_value_heads": 1,
    "num_attention_heads": 2,
}


def _rewrite(build: Path, change) -> None:  # type: ignore[no-untyped-def]
    manifest = json.loads((build / "manifest.json").read_text())
    change(manifest)
    (build / "manifest.json").write_text(json.dumps(manifest))


def test_read_build(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no manifest\.json"):
        read_build(tmp_path)
    (tmp_path / "manifest.json").write_text("{")
    with pytest.raises(InputError, match="not valid JSON"):
        read_build(tmp_path)
    manifest = {
        "schema": "edgeship.manifest/1",
        "bundle": {"file": "model.litertlm", "bytes": 32768, "sha256": "ab" * 32},
        "sections": [
            {"kind": PLE_SECTION_KIND, "offset": 16384, "end": 32768, "sha256": "cd" * 32, "quant": None}
        ],
        "model": {"arch": "gemma4"},
        "export": {"recipe": "int8"},
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="missing"):
        read_build(tmp_path)
    (tmp_path / "model.litertlm").write_bytes(b"\0" * 32768)
    build = read_build(tmp_path)
    assert build.sha12 == "ab" * 6
    assert build.manifest_sha256 == sha256_file(tmp_path / "manifest.json")
    assert build.ple_section is not None and build.ple_section.bytes == 16384
    assert build.tokenizer_path is None and build.model.ple is None and build.export.cache_length is None


def test_read_build_refuses_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no manifest\.json"):
        read_build(tmp_path)
    with pytest.raises(InputError, match="is not a folder"):
        read_build(tmp_path / "nonexistent")
    build = write_build(tmp_path / "b", random_sections([40_000]))
    with (build / "model.litertlm").open("r+b") as handle:  # same size, different bytes
        handle.seek(20_000)
        handle.write(b"\xff" * 8)
    read_build(build)  # sizes and fields only: the digest is an option
    with pytest.raises(InputError, match="does not match its manifest"):
        read_build(build, verify=True)
    with (build / "model.litertlm").open("ab") as handle:
        handle.write(b"x")
    with pytest.raises(InputError, match="bytes but its manifest says"):
        read_build(build)


def test_read_build_refuses_overlappingrandom_sections(tmp_path: Path) -> None:
    build = write_build(tmp_path / "b", random_sections([40_000, 40_000]))
    manifest = json.loads((build / "manifest.json").read_text())
    manifest["sections"][1]["offset"] = manifest["sections"][0]["offset"] + 100
    (build / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="overlaps"):
        read_build(build)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda m: m.update(schema="edgeship.profile/1"), "has schema 'edgeship.profile/1'"),
        (lambda m: m.pop("export"), "lacks 'export'"),
        (lambda m: m["sections"][0].pop("sha256"), "field 'sha256'"),
        (lambda m: m["bundle"].update(bytes="many"), "malformed field"),
        (lambda m: m.update(tokenizer={"file": "gone.json"}), "gone.json is missing"),
    ],
)
def test_each_bad_manifest_is_one_line_naming_what_is_wrong(tmp_path: Path, change, words: str) -> None:  # type: ignore[no-untyped-def]
    build = write_build(tmp_path / "b", random_sections([1000]))
    _rewrite(build, change)
    with pytest.raises(InputError, match=r"re-export|edgeship build|incomplete") as info:
        read_build(build)
    assert words in str(info.value) and "\n" not in str(info.value)


HEX = "ab" * 32


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda m: m["bundle"].update(sha256="x; touch pwned; echo "), "bundle.sha256 'x; touch pwned"),
        (lambda m: m["bundle"].update(sha256=HEX.upper()), "bundle.sha256"),
        (lambda m: m["bundle"].update(sha256=HEX[:63]), "64 lowercase hex"),
        (lambda m: m["sections"][0].update(sha256=HEX + "\nfile x " + HEX + " 1"), "sections[0].sha256"),
        (lambda m: m["header"].update(sha256="-"), "header.sha256"),
        (
            lambda m: m.update(checkpoint={"path": "/c", "weights_sha256": "$(id)"}),
            "checkpoint.weights_sha256",
        ),
        (lambda m: m["sections"][0].update(kind="embedder\n" + HEX + " 0 16384 x"), "sections[0].kind"),
        (lambda m: m["sections"][0].update(kind="a b"), "[A-Za-z0-9_.-]+"),
        (lambda m: m["sections"][0].update(kind=7), "sections[0].kind 7"),
        (
            lambda m: m.update(tokenizer={"file": "tok$(id).json"}),
            "tokenizer.file 'tok$(id).json' must be one",
        ),
        (lambda m: m.update(tokenizer={"file": "../../etc/hostname"}), "tokenizer.file '../../etc/hostname'"),
        (lambda m: m.update(tokenizer={"file": "/etc/hostname"}), "one path component"),
        (lambda m: m.update(tokenizer={"file": ".hidden"}), "not starting with . or -"),
        (lambda m: m.update(tokenizer={"file": "sent"}), "tokenizer.file 'sent' is a reserved name"),
        (lambda m: m.update(tokenizer={"file": "model.litertlm"}), "reserved"),
        (lambda m: m["bundle"].update(file="../other/model.litertlm"), "bundle.file '../other"),
        (lambda m: m["bundle"].update(file="manifest.json"), "bundle.file 'manifest.json' is a reserved"),
    ],
)
def test_what_reaches_a_device_is_held_to_its_rule(tmp_path: Path, change, words: str) -> None:  # type: ignore[no-untyped-def]
    build = write_build(tmp_path / "b", random_sections([1000]))
    _rewrite(build, change)
    with pytest.raises(InputError) as info:
        read_build(build)
    message = str(info.value)
    assert words in message and "\n" not in message and "manifest.json" in message, message


def test_a_manifest_file_symlinked_out_of_the_build_dir_is_refused(tmp_path: Path) -> None:
    build = write_build(tmp_path / "b", random_sections([1000]))
    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    (build / "tokenizer.json").unlink()
    (build / "tokenizer.json").symlink_to(outside)
    with pytest.raises(InputError, match=r"is a symlink to .*outside the build dir"):
        read_build(build)
    # A symlink to a file beside it in the build dir is fine: nothing leaves the build dir.
    (build / "tokenizer.json").unlink()
    (build / "tok-real.json").write_text("{}")
    (build / "tokenizer.json").symlink_to("tok-real.json")
    assert read_build(build).tokenizer_path == build / "tokenizer.json"
    bundle = build / "model.litertlm"
    moved = tmp_path / "model.litertlm"
    bundle.rename(moved)
    bundle.symlink_to(moved)
    with pytest.raises(InputError, match=r"bundle\.file .*outside the build dir"):
        read_build(build)


def test_the_typed_view_holds_what_the_manifest_says(tmp_path: Path) -> None:
    build_dir = write_build(
        tmp_path / "b", [(PLE_SECTION_KIND, b"p" * 5000), ("tf_lite_prefill_decode", b"t" * 10)]
    )

    def add_model(manifest: dict) -> None:  # type: ignore[type-arg]
        manifest["model"].update(params_total=1000, params_core=250, ple=PLE, attention=ATTENTION)
        manifest["sections"][0]["quant"] = {
            "recipe": "int8",
            "scheme": "x",
            "bits": 4,
            "granularity": "blockwise-32",
        }

    _rewrite(build_dir, add_model)
    build = read_build(build_dir)
    assert build.model.ple == PleFacts(**PLE)
    assert build.model.attention == Attention(**{**ATTENTION, "layer_types": tuple(ATTENTION["layer_types"])})
    assert [s.kind for s in build.sections] == [PLE_SECTION_KIND, "tf_lite_prefill_decode"]
    assert build.sections[1].offset % ALIGNMENT == 0
    assert build.sections[0].quant is not None and build.sections[0].quant.short == "int4 blockwise-32"
    assert build.export.cache_length == 1024 and build.export.prefill_lengths == (32,)
    view = summarize(build)
    assert view["schema"] == "edgeship.inspect/1" and view["model"]["core_share"] == 0.25
    assert view["model"]["ple"]["section_bytes"] == 5000
    assert [s["quant_short"] for s in view["sections"]] == ["int4 blockwise-32", "-"]


def test_update_manifest_rewrites_it_atomically_and_keeps_the_bundle_fixed(tmp_path: Path) -> None:
    build_dir = write_build(tmp_path / "b", random_sections([3000]))
    before = json.loads((build_dir / "manifest.json").read_text())
    updated = update_manifest(build_dir, {"accuracy": {"kl_divergence": 0.01}})
    assert updated.accuracy == {"kl_divergence": 0.01}
    after = json.loads((build_dir / "manifest.json").read_text())
    assert list(after) == list(before) and {**before, "accuracy": after["accuracy"]} == after
    assert updated.manifest_sha256 == hashlib.sha256((build_dir / "manifest.json").read_bytes()).hexdigest()
    assert [p.name for p in build_dir.iterdir() if p.name.startswith(".")] == []  # no temporary left
    with pytest.raises(ValueError, match="cannot be updated"):
        update_manifest(build_dir, {"bundle": {}})


def test_the_reader_imports_nothing_heavy() -> None:
    heavy = ("torch", "tensorflow", "litert_torch", "litert_lm", "transformers", "ai_edge_quantizer", "yaml")
    code = f"import sys, edgeship.exporter.manifest; print([m for m in {heavy!r} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
