"""KV cache layouts: the ring-buffer plan, and the cache layers an export's manifest reads from its graph."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeship.exporter import kv_cache
from edgeship.exporter.manifest import read_build
from tests.fixtures.engine import run_in_engine

SLIDING = "sliding_attention"
FULL = "full_attention"


def test_ring_plan_rounds_the_window_and_skips_what_gains_nothing() -> None:
    attention = {"sliding_window": 500, "layer_types": [SLIDING, FULL]}
    assert kv_cache.ring_buffer_plan("gemma3", attention, 4096) == kv_cache.RingPlan(512, None)
    # A window as long as the cache, or no sliding layer: nothing to cap.
    assert kv_cache.ring_buffer_plan("gemma3", attention, 512).size is None
    assert (
        kv_cache.ring_buffer_plan("gemma3", {"sliding_window": 64, "layer_types": [FULL]}, 4096).size is None
    )
    # A family litert-torch cannot export with a ring buffer: no ring, and the reason in one line.
    plan = kv_cache.ring_buffer_plan("gemma3n", attention, 4096)
    assert plan.size is None and plan.unsupported and "\n" not in plan.unsupported


def _layers(manifest: dict) -> list[dict]:
    return manifest["export"]["kv_cache"]


@pytest.mark.e2e
def test_gemma4_manifest_records_the_graphs_capped_cache_layers(tiny_gemma4_build: Path) -> None:
    """Tiny Gemma 4 (window 64, cache 1024): 8 layers, the last 2 share KV, so 6 cache layers; the sliding
    ones are ring buffers of the window, the global ones hold the whole cache; it runs past the window."""
    manifest = read_build(tiny_gemma4_build).manifest
    config = json.loads((Path(manifest["checkpoint"]["path"]) / "config.json").read_text())["text_config"]
    kv = manifest["export"]["kv_layout"]
    assert kv["layout"] == kv_cache.SLIDING_RING and kv["sliding_ring_buffer"] == config["sliding_window"]
    assert kv["note"] is None
    owners = config["num_hidden_layers"] - config["num_kv_shared_layers"]
    assert [layer["layer"] for layer in _layers(manifest)] == list(range(owners))
    for layer in _layers(manifest):
        sliding = layer["layer_type"] == SLIDING
        attention = manifest["model"]["attention"]
        head_dim = attention["head_dim"] if sliding else attention["global_head_dim"]
        positions = config["sliding_window"] if sliding else 1024
        assert layer["layer_type"] == config["layer_types"][layer["layer"]]
        assert layer["k_shape"] == [1, config["num_key_value_heads"], positions, head_dim]
        assert layer["v_shape"] == [1, config["num_key_value_heads"], head_dim, positions]
        assert layer["dtype"] == "float32" and layer["bytes"] == 2 * positions * head_dim * 4
    assert kv["bytes"] == sum(layer["bytes"] for layer in _layers(manifest))
    # The typed reader carries the same layers.
    typed = read_build(tiny_gemma4_build).export
    assert [layer.positions for layer in typed.kv_cache] == [
        layer["positions"] for layer in _layers(manifest)
    ]
    assert typed.kv_layout is not None and typed.kv_layout.layout == kv_cache.SLIDING_RING
    run_in_engine(tiny_gemma4_build / "model.litertlm", prefill=32, decode=96)


@pytest.mark.e2e
def test_unverified_family_says_so_and_records_the_layout_it_got(build_factory) -> None:
    """Gemma 3n: the ring buffer is not verified for its exportable, so the full layout, with the reason."""
    export = read_build(build_factory("gemma3n-text", "tiny", "int8")).manifest["export"]
    kv = export["kv_layout"]
    assert kv["layout"] == kv_cache.FULL and kv["sliding_ring_buffer"] is None
    assert kv["note"] and "gemma3n" in kv["note"]
    assert all(layer["positions"] == 1024 for layer in export["kv_cache"])


@pytest.mark.e2e
def test_gemma3_ring_buffer_export_caps_the_sliding_caches_and_runs(build_factory) -> None:
    """Tiny Gemma 3 (window 64, cache 1024; litert-torch's other exportable): sliding layers hold the window,
    global ones the cache; it runs past the window, where the ring wraps around during decode."""
    build = build_factory("gemma3", "tiny", "int8")
    manifest = read_build(build).manifest
    assert manifest["export"]["kv_layout"]["layout"] == kv_cache.SLIDING_RING
    window = manifest["model"]["attention"]["sliding_window"]
    types = {layer["layer_type"] for layer in _layers(manifest)}
    assert types == {SLIDING, FULL}
    for layer in _layers(manifest):
        expected = window if layer["layer_type"] == SLIDING else 1024
        assert layer["positions"] == expected and layer["k_shape"][2] == expected
    run_in_engine(build / "model.litertlm", prefill=32, decode=96)


@pytest.mark.e2e
def test_no_sliding_cache_gives_every_layer_the_whole_cache(build_factory, full_kv_float_build: Path) -> None:
    """``sliding_cache=False`` (--no-sliding-cache): the same cache layers, each of cache_length, and more
    KV bytes than the default ring-buffer export of the same checkpoint."""
    ring = read_build(build_factory("gemma4", "tiny", "float")).manifest["export"]
    full = read_build(full_kv_float_build).manifest["export"]
    assert full["kv_layout"]["layout"] == kv_cache.FULL and full["kv_layout"]["sliding_ring_buffer"] is None
    assert [layer["layer"] for layer in full["kv_cache"]] == [layer["layer"] for layer in ring["kv_cache"]]
    assert all(layer["positions"] == 1024 for layer in full["kv_cache"])
    assert full["kv_layout"]["bytes"] > ring["kv_layout"]["bytes"]
    run_in_engine(full_kv_float_build / "model.litertlm", prefill=32, decode=96)
