"""The KV cache an exported graph really has: one entry per cache layer, read from the graph, not assumed.

litert-torch gives every cache-owning layer a ``kv_cache_k_<i>`` / ``kv_cache_v_<i>`` input on each signature
(K ``(1, kv_heads, S, head_dim)``, V ``(1, kv_heads, head_dim, S)``; shared layers own none). S is the cache
length for global layers, and for sliding layers too unless the export set a ring buffer
(``sliding_window_ring_buffer_size``), in which case S is that window rounded up to 32. The shapes and dtypes
here come from the decode signature of the prefill/decode .tflite, read through its flatbuffer schema on a
memory map (only the header pages are touched, never the weights).

Planner and report read ``manifest.export.kv_cache`` and ``export.kv_layout`` (docs/contracts.md).
"""

from __future__ import annotations

import math
import mmap
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeship.errors import ExportError

RING_ALIGNMENT = 32  # litert-torch rounds the ring-buffer length up to a multiple of 32
FULL = "full"  # every cache layer holds cache_length positions
SLIDING_RING = "sliding-ring-buffer"  # sliding layers hold only their window

_CACHE_INPUT = re.compile(r"^kv_cache_([kv])_(\d+)$")
# TensorType enum of the TFLite schema -> (name, bytes per element)
_TENSOR_TYPES = {0: ("float32", 4), 1: ("float16", 2), 2: ("int32", 4), 9: ("int8", 1), 16: ("bfloat16", 2)}


@dataclass(frozen=True)
class CacheTensor:
    shape: tuple[int, ...]
    dtype: str
    bytes: int


@dataclass(frozen=True)
class CacheLayer:
    layer: int
    layer_type: str | None  # from config.json's layer_types (sliding_attention / full_attention)
    positions: int  # the sequence axis of K (axis 2)
    k: CacheTensor
    v: CacheTensor

    @property
    def bytes(self) -> int:
        return self.k.bytes + self.v.bytes


# Families whose litert-torch 0.10.0 export traces with a ring buffer and whose bundle runs in LiteRT-LM
# past the window (measured on the tiny checkpoints). On litert-torch's plain CPU path neither Gemma 4 nor
# Gemma 3 traces ("broadcast 64 ... to [1, 1, 2, 65]": the mask covers the ring, attention reads ring + the
# new token); on its composite path (litert._RING_BUFFER_SWITCHES) both do. Gemma 3n: not verified.
RING_BUFFER_FAMILIES: tuple[str, ...] = ("gemma3", "gemma4")


@dataclass(frozen=True)
class RingPlan:
    size: int | None  # ring length to ask litert-torch for; None: full cache_length for sliding layers
    unsupported: str | None  # why a model that would gain from a ring buffer does not get one


def ring_buffer_plan(family: str, attention: dict[str, Any], cache_length: int) -> RingPlan:
    """The ring length for this model's sliding layers, or why there is none.

    Only a model with sliding layers whose window is shorter than the cache gains anything.
    """
    window = attention.get("sliding_window")
    layer_types = attention.get("layer_types") or []
    if not window or "sliding_attention" not in layer_types:
        return RingPlan(None, None)
    size = math.ceil(window / RING_ALIGNMENT) * RING_ALIGNMENT
    if size >= cache_length:
        return RingPlan(None, None)
    if family not in RING_BUFFER_FAMILIES:
        return RingPlan(
            None,
            f"litert-torch 0.10.0 cannot export a ring-buffer KV cache for {family} (its {family} exportable"
            f" has no ring-buffer masks): sliding layers keep the full {cache_length} positions",
        )
    return RingPlan(size, None)


def _tensor(tensor: Any) -> CacheTensor:
    code = tensor.Type()
    if code not in _TENSOR_TYPES:
        raise ExportError(f"the exported graph has a KV cache tensor of unknown TFLite type {code}")
    name, width = _TENSOR_TYPES[code]
    shape = tuple(int(d) for d in tensor.ShapeAsNumpy())
    return CacheTensor(shape, name, math.prod(shape) * width)


def read_cache_layers(
    graph: Path, layer_types: list[str] | None, signature: str = "decode"
) -> list[CacheLayer]:
    """The cache layers of ``graph``'s ``signature`` (decode: the one a generated token runs)."""
    from ai_edge_litert import schema_py_generated as schema

    with open(graph, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
        model = schema.Model.GetRootAs(view, 0)
        found: dict[int, dict[str, CacheTensor]] = {}
        for s in range(model.SignatureDefsLength()):
            definition = model.SignatureDefs(s)
            if definition.SignatureKey().decode() != signature:
                continue
            subgraph = model.Subgraphs(definition.SubgraphIndex())
            for i in range(definition.InputsLength()):
                entry = definition.Inputs(i)
                match = _CACHE_INPUT.match(entry.Name().decode())
                if match:
                    role, layer = match.group(1), int(match.group(2))
                    found.setdefault(layer, {})[role] = _tensor(subgraph.Tensors(entry.TensorIndex()))
    layers = []
    for layer in sorted(found):
        pair = found[layer]
        if set(pair) != {"k", "v"}:
            raise ExportError(f"the exported graph has an unpaired KV cache input for layer {layer}")
        layer_type = layer_types[layer] if layer_types and layer < len(layer_types) else None
        positions = pair["k"].shape[2] if len(pair["k"].shape) > 2 else 0
        layers.append(CacheLayer(layer, layer_type, positions, pair["k"], pair["v"]))
    return layers


def layout_of(layers: list[CacheLayer], cache_length: int) -> str:
    capped = any(
        layer.positions < cache_length for layer in layers if layer.layer_type == "sliding_attention"
    )
    return SLIDING_RING if capped else FULL


def manifest_entries(layers: list[CacheLayer]) -> list[dict[str, Any]]:
    """``export.kv_cache``: one entry per cache layer with its real tensors (the planner reads these)."""
    return [
        {
            "layer": layer.layer,
            "layer_type": layer.layer_type,
            "k_shape": list(layer.k.shape),
            "v_shape": list(layer.v.shape),
            "dtype": layer.k.dtype,
            "positions": layer.positions,
            "bytes": layer.bytes,
        }
        for layer in layers
    ]


def layout_entry(layers: list[CacheLayer], cache_length: int, plan: RingPlan) -> dict[str, Any]:
    """``export.kv_layout``: the layout the export got, the ring asked for, and why not when it could not."""
    return {
        "layout": layout_of(layers, cache_length),
        "sliding_ring_buffer": plan.size,
        "note": plan.unsupported,
        "bytes": sum(layer.bytes for layer in layers),
    }
