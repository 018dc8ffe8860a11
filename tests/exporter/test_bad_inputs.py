"""Every bad input to `edgeship export`: one-line error, exit code != 0, no traceback, no bundle at BUILD_DIR.

These run the real CLI in a subprocess; validation happens before torch/litert-torch are imported, so each
case takes about a second.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from edgeship.errors import InputError, UsageError
from edgeship.exporter.arch import ARCHITECTURES
from edgeship.exporter.checkpoint import read_checkpoint, read_safetensors_header
from tests.cli import EdgeshipCli

Export = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def export(cli: EdgeshipCli) -> Export:
    """`edgeship export ARGS...` through the isolated CLI helper."""
    return lambda *args: cli("export", *args, timeout=600)


def assert_clean_failure(
    result: subprocess.CompletedProcess[str], *needles: str, build: Path | None = None
) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("edgeship: error:")
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert result.stdout == ""
    if build is not None:
        assert not (build / "model.litertlm").exists()
        leftovers = [p.name for p in build.parent.iterdir() if ".partial-" in p.name]
        assert leftovers == []


@pytest.fixture
def ckpt(tiny_gemma4_checkpoint: Path, tmp_path: Path) -> Path:
    """A private, writable copy of the tiny Gemma-4 checkpoint to damage."""
    copy = tmp_path / "ckpt"
    shutil.copytree(tiny_gemma4_checkpoint, copy)
    return copy


def test_missing_config(export: Export, ckpt: Path, tmp_path: Path) -> None:
    (ckpt / "config.json").unlink()
    assert_clean_failure(export(ckpt, "-o", tmp_path / "b"), "no config.json", build=tmp_path / "b")


def test_missing_checkpoint_folder(export: Export, tmp_path: Path) -> None:
    assert_clean_failure(export(tmp_path / "nope", "-o", tmp_path / "b"), "does not exist")


def test_missing_weights(export: Export, ckpt: Path, tmp_path: Path) -> None:
    (ckpt / "model.safetensors").unlink()
    assert_clean_failure(export(ckpt, "-o", tmp_path / "b"), "no *.safetensors", build=tmp_path / "b")


def test_truncated_safetensors(export: Export, ckpt: Path, tmp_path: Path) -> None:
    weights = ckpt / "model.safetensors"
    size = weights.stat().st_size
    with open(weights, "r+b") as handle:
        handle.truncate(size - 1000)
    assert_clean_failure(export(ckpt, "-o", tmp_path / "b"), "truncated", build=tmp_path / "b")


def test_corrupt_safetensors_header(export: Export, ckpt: Path, tmp_path: Path) -> None:
    weights = ckpt / "model.safetensors"
    with open(weights, "r+b") as handle:
        handle.seek(8)
        handle.write(b"\xff\xfe garbage")
    assert_clean_failure(export(ckpt, "-o", tmp_path / "b"), "corrupt", build=tmp_path / "b")


def test_weights_not_matching_config(export: Export, ckpt: Path, tmp_path: Path) -> None:
    config = json.loads((ckpt / "config.json").read_text())
    config["text_config"]["hidden_size"] *= 2
    (ckpt / "config.json").write_text(json.dumps(config))
    assert_clean_failure(
        export(ckpt, "-o", tmp_path / "b"),
        "do not match config.json",
        "embed_tokens",
        build=tmp_path / "b",
    )


def test_layer_count_not_matching_config(ckpt: Path) -> None:
    config = json.loads((ckpt / "config.json").read_text())
    config["text_config"]["num_hidden_layers"] = 6
    config["text_config"]["layer_types"] = config["text_config"]["layer_types"][:6]
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match=r"do not match config\.json"):
        read_checkpoint(ckpt)


def test_unsupported_architecture_names_supported_ones(export: Export, ckpt: Path, tmp_path: Path) -> None:
    config = json.loads((ckpt / "config.json").read_text())
    config["model_type"] = "mamba"
    (ckpt / "config.json").write_text(json.dumps(config))
    tested = [t for t, spec in ARCHITECTURES.items() if spec.tested]
    assert_clean_failure(export(ckpt, "-o", tmp_path / "b"), "unsupported architecture 'mamba'", *tested)


def test_missing_tokenizer(export: Export, ckpt: Path, tmp_path: Path) -> None:
    (ckpt / "tokenizer.json").unlink()
    assert_clean_failure(export(ckpt, "-o", tmp_path / "b"), "no tokenizer", build=tmp_path / "b")


def test_unknown_recipe(export: Export, ckpt: Path, tmp_path: Path) -> None:
    assert_clean_failure(
        export(ckpt, "-o", tmp_path / "b", "--recipe", "int3"), "unknown recipe 'int3'", "int8"
    )


def test_bad_recipe_file(export: Export, ckpt: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("default: int8\nsections:\n  tf_lite_vision: int4\n")
    assert_clean_failure(export(ckpt, "-o", tmp_path / "b", "--recipe", recipe), "unknown section kind")


def test_non_empty_build_dir_without_force(export: Export, ckpt: Path, tmp_path: Path) -> None:
    build = tmp_path / "b"
    build.mkdir()
    (build / "keep.txt").write_text("precious")
    assert_clean_failure(export(ckpt, "-o", build), "not empty", "--force")
    assert (build / "keep.txt").read_text() == "precious"


def test_bad_prefill(export: Export, ckpt: Path, tmp_path: Path) -> None:
    assert_clean_failure(export(ckpt, "-o", tmp_path / "b", "--prefill", "32,abc"), "--prefill")


def test_sharded_checkpoint_missing_shard(tmp_path: Path) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    ckpt = tmp_path / "sharded"
    ckpt.mkdir()
    save_file({"a": np.zeros((2, 2), np.float32)}, str(ckpt / "model-00001-of-00002.safetensors"))
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (ckpt / "model.safetensors.index.json").write_text(json.dumps(index))
    (ckpt / "config.json").write_text(json.dumps({"model_type": "gemma3_text"}))
    with pytest.raises(InputError, match="missing weight shard"):
        read_checkpoint(ckpt)


def test_safetensors_header_reads_shapes(tiny_gemma4_checkpoint: Path) -> None:
    tensors = read_safetensors_header(tiny_gemma4_checkpoint / "model.safetensors")
    config = json.loads((tiny_gemma4_checkpoint / "config.json").read_text())["text_config"]
    embed = tensors["model.language_model.embed_tokens.weight"]
    assert embed.shape == (config["vocab_size"], config["hidden_size"])
    ple = tensors["model.language_model.embed_tokens_per_layer.weight"]
    assert ple.shape == (
        config["vocab_size_per_layer_input"],
        config["num_hidden_layers"] * config["hidden_size_per_layer_input"],
    )


def test_make_checkpoint_refuses_unknown_arch(tmp_path: Path) -> None:
    from edgeship.exporter.synthetic import make_checkpoint

    with pytest.raises(UsageError, match="unknown --arch"):
        make_checkpoint("gpt2", "tiny", tmp_path / "x")
    with pytest.raises(UsageError, match="no PLE table"):
        make_checkpoint("gemma3", "ple-heavy", tmp_path / "y")


def test_debug_shows_the_traceback(cli: EdgeshipCli, tmp_path: Path) -> None:
    result = cli("--debug", "export", tmp_path / "nope", "-o", tmp_path / "b")
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "does not exist" in result.stderr


def test_disk_full_injected_at_the_write_layer(
    ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC while the toolchain writes its graphs: staging removed, nothing at BUILD_DIR, one-line error.

    (test_export_e2e.py::test_disk_full_leaves_no_bundle does the same with a real full tmpfs.)
    """
    import errno

    from edgeship.errors import ExportError
    from edgeship.exporter import worker
    from edgeship.exporter.pipeline import export_build

    def write_until_full(ckpt_: object, work_dir: Path, *args: object) -> None:
        (work_dir / "model.tflite").write_bytes(
            b"\0" * 4096
        )  # a partial graph on disk, as a real export leaves
        raise OSError(errno.ENOSPC, "No space left on device", str(work_dir / "model.tflite"))

    monkeypatch.setattr(worker, "run_toolchain", write_until_full)
    build = tmp_path / "b"
    with pytest.raises(ExportError, match="disk full") as info:
        export_build(ckpt, build, "int8")
    assert "\n" not in str(info.value)
    assert not build.exists()
    assert [p.name for p in tmp_path.iterdir() if ".partial-" in p.name] == []


def test_failed_force_export_keeps_the_previous_build(
    ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgeship.errors import ExportError
    from edgeship.exporter import worker
    from edgeship.exporter.pipeline import ExportOptions, export_build

    build = tmp_path / "b"
    build.mkdir()
    (build / "model.litertlm").write_bytes(b"previous complete build")

    def toolchain_bug(*args: object) -> None:
        raise ExportError("litert-torch failed to export gemma4 checkpoint: RuntimeError: boom")

    monkeypatch.setattr(worker, "run_toolchain", toolchain_bug)
    with pytest.raises(ExportError, match="boom"):
        export_build(ckpt, build, ExportOptions(force=True))
    assert (build / "model.litertlm").read_bytes() == b"previous complete build"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
