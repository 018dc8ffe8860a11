"""KV cache bytes as the runtime allocates them, and as full attention would (the "−74%" launch claim).

LiteRT-LM allocates every cache tensor of the exported graph up front, for the graph's cache length, whatever
prompt is run. The layout comes from the manifest when the export recorded it (``export.kv_cache``: one entry
per cache layer with its K and V shapes and dtype, read from the graph); otherwise from the attention facts
with litert-torch's defaults (reference gemma-ple-kv.md §5.1): fp32, K (1, nkv, S, hd) and V
(1, nkv, hd, S), only the layers before the KV-shared tail own a cache, and sliding layers get the full cache
length (no ring buffer unless one was exported).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SLIDING = "sliding_attention"
DTYPE_BYTES = {"float32": 4, "fp32": 4, "float16": 2, "fp16": 2, "bfloat16": 2, "bf16": 2, "int8": 1}
DEFAULT_DTYPE = "float32"


@dataclass(frozen=True)
class CacheLayer:
    layer: int
    layer_type: str
    kv_heads: int
    head_dim: int
    length: int  # positions the cache holds (the ring size for a capped sliding layer)
    bytes_per_element: int

    @property
    def bytes(self) -> int:
        return 2 * self.kv_heads * self.head_dim * self.length * self.bytes_per_element


@dataclass(frozen=True)
class KvLayout:
    layers: tuple[CacheLayer, ...]
    source: str  # "manifest export.kv_cache" | "attention facts, litert-torch defaults"

    @property
    def bytes(self) -> int:
        return sum(layer.bytes for layer in self.layers)

    @property
    def sliding_capped(self) -> bool:
        full = max((layer.length for layer in self.layers), default=0)
        return any(layer.layer_type == SLIDING and layer.length < full for layer in self.layers)


def _head_dim(attention: dict[str, Any], layer_type: str) -> int:
    if layer_type != SLIDING and attention.get("global_head_dim"):
        return int(attention["global_head_dim"])
    return int(attention.get("head_dim") or 0)


def owners(attention: dict[str, Any]) -> list[int]:
    """Layers that own a cache: all but the KV-shared tail (shared layers read a producer's cache)."""
    types = list(attention.get("layer_types") or [])
    shared = int(attention.get("kv_shared_layers") or 0)
    return list(range(max(0, len(types) - shared)))


def layout_from_attention(attention: dict[str, Any], cache_length: int) -> KvLayout:
    types = list(attention.get("layer_types") or [])
    kv_heads = int(attention.get("num_key_value_heads") or 1)
    element = DTYPE_BYTES[DEFAULT_DTYPE]
    layers = tuple(
        CacheLayer(i, types[i], kv_heads, _head_dim(attention, types[i]), cache_length, element)
        for i in owners(attention)
    )
    return KvLayout(layers, "attention facts, litert-torch defaults (fp32, sliding layers uncapped)")


def layout_from_manifest(entries: Sequence[dict[str, Any]]) -> KvLayout:
    """``export.kv_cache`` entries: {layer, layer_type, k_shape, v_shape, dtype} (the graph's shapes)."""
    layers = []
    for entry in entries:
        k_shape = [int(d) for d in entry["k_shape"]]
        element = DTYPE_BYTES.get(str(entry.get("dtype", DEFAULT_DTYPE)), 4)
        # K is (1, nkv, S, hd): S is the third axis; nkv × hd from the rest.
        length = k_shape[2] if len(k_shape) == 4 else k_shape[-2]
        per_position = math.prod(k_shape) // max(length, 1)
        layers.append(
            CacheLayer(
                int(entry["layer"]), str(entry.get("layer_type", "")), 1, per_position, length, element
            )
        )
    return KvLayout(tuple(layers), "manifest export.kv_cache (read from the exported graph)")


def kv_layout(manifest: dict[str, Any]) -> KvLayout | None:
    """The bundle's cache layout; None when the model has no attention facts (nothing to allocate)."""
    export = manifest.get("export") or {}
    if export.get("kv_cache"):
        return layout_from_manifest(export["kv_cache"])
    attention = (manifest.get("model") or {}).get("attention")
    if not attention or not attention.get("layer_types"):
        return None
    return layout_from_attention(attention, int(export.get("cache_length") or 0))


def full_attention_bytes(attention: dict[str, Any], context: int, bytes_per_element: int) -> int:
    """Every layer caching the whole context with its own geometry, no sharing, no window."""
    types = list(attention.get("layer_types") or [])
    kv_heads = int(attention.get("num_key_value_heads") or 1)
    return sum(2 * kv_heads * _head_dim(attention, t) * context * bytes_per_element for t in types)


def architecture_bytes(attention: dict[str, Any], context: int, bytes_per_element: int) -> int:
    """What the architecture allows: sharing applied and sliding layers capped at the window."""
    types = list(attention.get("layer_types") or [])
    kv_heads = int(attention.get("num_key_value_heads") or 1)
    window = int(attention.get("sliding_window") or context)
    total = 0
    for i in owners(attention):
        length = min(context, window) if types[i] == SLIDING else context
        total += 2 * kv_heads * _head_dim(attention, types[i]) * length * bytes_per_element
    return total


def layout_bytes_at(layout: KvLayout, context: int, cache_length: int) -> int:
    """This bundle's layout scaled to another context: uncapped layers grow with it, capped ones stay."""
    total = 0
    for layer in layout.layers:
        capped = layer.length < cache_length
        length = min(context, layer.length) if capped else context
        total += 2 * layer.kv_heads * layer.head_dim * length * layer.bytes_per_element
    return total
