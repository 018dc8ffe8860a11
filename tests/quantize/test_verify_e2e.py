"""`edgeship verify` through the CLI: the shipped bundle (real LiteRT interpreter over its sections) against
the checkpoint in transformers, per preset; the gate; the manifest's accuracy block; `export --verify`; and
every bad input leaving the build dir as it was."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from edgeship.hashing import sha256_file
from tests.fixtures.engine import greedy_tokens
from tests.quantize.conftest import TINY_PRESETS, cli, json_out, load_manifest, one_line_error, snapshot

pytestmark = pytest.mark.e2e

QUICK_POSITIONS = "32"  # per preset; the default 256 is checked once below


@pytest.fixture(scope="session")
def verified(
    preset_builds: dict[str, Path], tiny_gemma4_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[Path, dict, int]]:
    """Every preset build (a copy) verified through the CLI: (build, --json output, exit code)."""
    out = tmp_path_factory.mktemp("verified")
    results = {}
    for preset, build in preset_builds.items():
        copy = out / preset
        shutil.copytree(build, copy)
        result = cli(
            "verify", str(copy), "--checkpoint", str(tiny_gemma4_checkpoint), "--positions", QUICK_POSITIONS,
            "--json", "--quiet",
        )  # fmt: skip
        assert result.returncode in (0, 1), result.stderr[-3000:]
        results[preset] = (copy, json_out(result), result.returncode)
    return results


def _stats(verified: dict, preset: str) -> dict:
    return verified[preset][1]["accuracy"]["statistics"]


@pytest.mark.parametrize("preset", TINY_PRESETS)
def test_statistics_are_present_and_plausible(preset: str, verified: dict) -> None:
    _, output, code = verified[preset]
    accuracy = output["accuracy"]
    stats = accuracy["statistics"]
    assert stats["positions"] == int(QUICK_POSITIONS) == len(output["positions"])
    kld = stats["kld"]
    assert 0 <= kld["median"] <= kld["p99"] <= kld["p999"] <= kld["max"]
    assert kld["mean"] <= kld["max"]
    assert 0 <= stats["top1"]["agreement"] <= 1
    assert stats["delta_p_rms"] >= 0
    per_position = [p["kld"] for p in output["positions"]]
    assert sum(per_position) / len(per_position) == pytest.approx(kld["mean"])
    assert {p["bucket"] for p in output["positions"]} == {"inside_window", "beyond_window"}
    buckets = accuracy["buckets"]
    assert buckets["inside_window"]["positions"] + buckets["beyond_window"]["positions"] == stats["positions"]
    window = accuracy["geometry"]["sliding_window"]
    for position in output["positions"]:
        assert (position["position"] < window) == (position["bucket"] == "inside_window")
    assert accuracy["recipe"] == preset
    assert (code == 0) == (accuracy["verdict"] == "pass") == (accuracy["failures"] == [])


def test_float_is_the_checkpoint_and_quantization_costs_in_order(verified: dict) -> None:
    float_stats = _stats(verified, "float")
    assert float_stats["kld"]["max"] < 1e-6
    assert float_stats["top1"]["agreement"] == 1.0
    assert verified["float"][2] == 0  # passes its own (strictest) default gate
    int8, int4 = _stats(verified, "int8")["kld"]["mean"], _stats(verified, "int4")["kld"]["mean"]
    assert float_stats["kld"]["mean"] < int8 < int4
    for preset in ("int4-b32", "mixed48"):
        assert _stats(verified, preset)["kld"]["mean"] > int8, preset


def test_accuracy_block_is_in_the_manifest_and_the_bundle_is_unchanged(
    verified: dict, preset_builds: dict[str, Path]
) -> None:
    for preset, (build, output, _) in verified.items():
        manifest = load_manifest(build)
        original = load_manifest(preset_builds[preset])
        assert manifest["accuracy"] == output["accuracy"]
        assert {k: v for k, v in manifest.items() if k != "accuracy"} == {
            k: v for k, v in original.items() if k != "accuracy"
        }
        assert sha256_file(build / "model.litertlm") == original["bundle"]["sha256"]
        accuracy = manifest["accuracy"]
        assert accuracy["schema"] == "edgeship.accuracy/1"
        assert accuracy["bundle_sha256"] == original["bundle"]["sha256"]
        assert accuracy["prompt_set"]["version"] == "edgeship-prompts/1"
        assert accuracy["checkpoint"]["weights_sha256"] == original["checkpoint"]["weights_sha256"]
        assert accuracy["checkpoint"]["matches_manifest"] and not accuracy["checkpoint"]["forced"]
        assert {"ai-edge-litert", "transformers", "torch", "edgeship"} <= set(accuracy["versions"])
        assert accuracy["thresholds"]["source"] == f"{preset} default"
        assert accuracy["bos"]["source"] == "bundle"


def test_default_is_256_positions_split_by_the_sliding_window(
    preset_builds: dict[str, Path], tiny_gemma4_checkpoint: Path, tmp_path: Path
) -> None:
    build = tmp_path / "int8"
    shutil.copytree(preset_builds["int8"], build)
    result = cli("verify", str(build), "--checkpoint", str(tiny_gemma4_checkpoint))
    assert result.returncode in (0, 1), result.stderr[-3000:]
    accuracy = load_manifest(build)["accuracy"]
    assert accuracy["statistics"]["positions"] == 256
    assert accuracy["buckets"]["inside_window"]["positions"] == 128
    assert accuracy["buckets"]["beyond_window"]["positions"] == 128
    assert accuracy["geometry"]["kv_shared_layers"] == 2  # the tiny Gemma-4 shares its last two layers' KV
    assert "beyond window" in result.stdout and "mean KLD" in result.stdout  # the human table


def test_gate_fails_when_a_threshold_cannot_be_met(
    preset_builds: dict[str, Path], tiny_gemma4_checkpoint: Path, tmp_path: Path
) -> None:
    build = tmp_path / "int4"
    shutil.copytree(preset_builds["int4"], build)
    result = cli(
        "verify", str(build), "--checkpoint", str(tiny_gemma4_checkpoint), "--positions", QUICK_POSITIONS,
        "--max-kl", "1e-9", "--max-kl-p999", "1e-9", "--min-top1", "1", "--quiet",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-3000:]
    assert "accuracy below threshold" in one_line_error(result)
    accuracy = load_manifest(build)["accuracy"]
    assert accuracy["verdict"] == "fail"
    assert len(accuracy["failures"]) == 3
    assert "overridden by --max-kl, --min-top1, --max-kl-p999" in accuracy["thresholds"]["source"]


def test_export_verify_on_a_model_without_ple(gemma3_export_verify: tuple[Path, dict]) -> None:
    """Gemma 3: the main graph takes tokens (no external embedder, no PLE section); float equals the model."""
    build, output = gemma3_export_verify
    accuracy = output["accuracy"]
    assert accuracy == load_manifest(build)["accuracy"]
    assert accuracy["verdict"] == "pass"
    assert accuracy["statistics"]["kld"]["max"] < 1e-6
    assert {s["kind"] for s in output["sections"]} >= {"tf_lite_prefill_decode"}
    assert "tf_lite_per_layer_embedder" not in {s["kind"] for s in output["sections"]}


def test_a_ring_buffer_build_verifies_like_a_full_cache_one(
    float_copy: Path, full_kv_float_build: Path, tiny_gemma4_checkpoint: Path, tmp_path: Path
) -> None:
    """The default float export caps the sliding caches at the window (its graph takes local_mask and
    param_tensor besides the global mask); verify feeds them and finds the checkpoint, past the window too,
    as for the full-cache export, and both score the same positions alike."""
    full_copy = tmp_path / "full"
    shutil.copytree(full_kv_float_build, full_copy)  # verify records its accuracy in the manifest
    layouts = {"ring": float_copy, "full": full_copy}
    assert load_manifest(float_copy)["export"]["kv_layout"]["layout"] == "sliding-ring-buffer"
    assert load_manifest(full_copy)["export"]["kv_layout"]["layout"] == "full"
    scored = {}
    for layout, build in layouts.items():
        result = cli("verify", str(build), "--checkpoint", str(tiny_gemma4_checkpoint), "--json", "--quiet")
        assert result.returncode == 0, (layout, result.stderr[-3000:])
        scored[layout] = [(p["prompt"], p["position"], p["same_top"]) for p in json_out(result)["positions"]]
        accuracy = json_out(result)["accuracy"]
        beyond = accuracy["buckets"]["beyond_window"]
        assert beyond["positions"] == 128, layout
        assert accuracy["statistics"]["kld"]["max"] < 1e-6, layout
        assert beyond["kld"]["max"] < 1e-6 and beyond["top1"]["agreement"] == 1.0, layout
        # Scored positions reach well past the ring's length (the window): the ring has wrapped around.
        window = accuracy["geometry"]["sliding_window"]
        assert max(p["position"] for p in json_out(result)["positions"]) >= window + window // 2, layout
    assert scored["ring"] == scored["full"]


def test_ring_and_full_cache_bundles_generate_the_same_text_in_litert_lm(
    tiny_float_build: Path, full_kv_float_build: Path
) -> None:
    """LiteRT-LM fills the ring-buffer graph's extra inputs itself: its greedy continuation (float, so no
    quantization noise between the two graphs) is the full-cache bundle's, well past the 64-token window."""
    prompt = "The quick brown fox jumps over the lazy dog. " * 3
    ring = greedy_tokens(tiny_float_build / "model.litertlm", prompt, 400)
    full = greedy_tokens(full_kv_float_build / "model.litertlm", prompt, 400)
    window = load_manifest(tiny_float_build)["model"]["attention"]["sliding_window"]
    assert len(ring) > 3 * window
    assert ring == full


def test_a_different_checkpoint_is_refused_unless_forced(
    float_copy: Path, build_factory, tmp_path: Path
) -> None:
    from tests.fixtures.builds import cached_checkpoint

    other = cached_checkpoint("gemma4-text", "tiny")  # same shapes, other weights
    before = snapshot(float_copy)
    refused = cli("verify", str(float_copy), "--checkpoint", str(other))
    assert refused.returncode == 2
    assert "is not the one" in one_line_error(refused) and "--force" in refused.stderr
    assert snapshot(float_copy) == before
    forced = cli(
        "verify", str(float_copy), "--checkpoint", str(other), "--force", "--positions", "16", "--json"
    )
    assert forced.returncode in (0, 1), forced.stderr[-3000:]
    checkpoint = json_out(forced)["accuracy"]["checkpoint"]
    assert checkpoint["forced"] and not checkpoint["matches_manifest"]


# --- bad input: exit 2, one line, the build dir untouched ----------------------------------------------


def _refused(build: Path, args: list[str], message: str) -> None:
    before = snapshot(build)
    result = cli("verify", str(build), *args)
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert message in one_line_error(result)
    assert snapshot(build) == before


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--min-top1", "1.5", "--min-top1 must be between 0 and 1"),
        ("--max-kl", "-1", "--max-kl must be"),
        ("--max-kl-p999", "nan", "--max-kl-p999 must be"),
        ("--positions", "100000", "scorable positions"),
    ],
)
def test_bad_options(
    float_copy: Path, tiny_gemma4_checkpoint: Path, option: str, value: str, message: str
) -> None:
    _refused(float_copy, ["--checkpoint", str(tiny_gemma4_checkpoint), option, value], message)


@pytest.mark.parametrize(
    ("content", "message"), [(b"", "has no text"), (b"\x7fELF\x02\x01\x01\x00\x00\x00", "not text")]
)
def test_bad_prompt_files(
    float_copy: Path, tiny_gemma4_checkpoint: Path, tmp_path: Path, content: bytes, message: str
) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_bytes(content)
    _refused(float_copy, ["--checkpoint", str(tiny_gemma4_checkpoint), "--prompts", str(prompts)], message)


def test_truncated_bundle(float_copy: Path, tiny_gemma4_checkpoint: Path) -> None:
    bundle = float_copy / "model.litertlm"
    os.truncate(bundle, bundle.stat().st_size // 2)
    _refused(float_copy, ["--checkpoint", str(tiny_gemma4_checkpoint)], "but its manifest says")


def test_manifest_of_another_bundle(float_copy: Path, tiny_gemma4_checkpoint: Path) -> None:
    path = float_copy / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["sections"][-1]["end"] -= 64
    path.write_text(json.dumps(manifest))
    _refused(float_copy, ["--checkpoint", str(tiny_gemma4_checkpoint)], "disagrees with the bundle")


def test_missing_build_and_missing_checkpoint(
    float_copy: Path, tmp_path: Path, tiny_gemma4_checkpoint: Path
) -> None:
    missing = cli("verify", str(tmp_path / "nope"), "--checkpoint", str(tiny_gemma4_checkpoint))
    assert missing.returncode == 2 and "is not a folder" in one_line_error(missing)
    _refused(float_copy, ["--checkpoint", str(tmp_path / "no-checkpoint")], "does not exist")
    no_option = cli("verify", str(float_copy))
    assert no_option.returncode == 2 and "--checkpoint" in no_option.stderr


def test_cached_reference_gives_the_same_figures(
    verified: dict, preset_builds: dict[str, Path], tiny_gemma4_checkpoint: Path, tmp_path: Path
) -> None:
    """The reference logits kept from an earlier verify equal computing them again in transformers."""
    build = tmp_path / "int8"
    shutil.copytree(preset_builds["int8"], build)
    fresh = cli(
        "verify", str(build), "--checkpoint", str(tiny_gemma4_checkpoint), "--positions", QUICK_POSITIONS,
        "--no-reference-cache", "--json", "--quiet",
    )  # fmt: skip
    assert fresh.returncode in (0, 1), fresh.stderr[-3000:]
    recomputed = json_out(fresh)["accuracy"]
    cached = verified["int8"][1]["accuracy"]
    assert not recomputed["timing"]["reference_cached"]
    assert cached["timing"]["reference_cached"]  # the float build, verified first, computed it
    assert recomputed["timing"]["reference_key"] == cached["timing"]["reference_key"]
    assert recomputed["statistics"] == cached["statistics"]
