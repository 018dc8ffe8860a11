"""Facts read from a TFLite flatbuffer without running it (the schema's lazy reader copies no weights)."""

from __future__ import annotations

import math
from dataclasses import dataclass

SCALE_BYTES = 4  # quantization scales are float32
ZERO_POINT_BYTES = 8  # zero points are int64


@dataclass(frozen=True)
class GraphStorage:
    """``weights``: elements of the constant float tensors; ``constant_bytes``: what all constants occupy.

    ``constant_bytes`` counts every constant buffer once (quantized weights, blockwise scale tensors, int32
    shape constants...) plus the per-channel scales and zero points stored with the tensors, but not the
    graph's structure: on a tiny model the structure of three signatures outweighs the weights.
    """

    weights: int
    constant_bytes: int


def graph_storage(model: bytes) -> GraphStorage:
    """Weights and constant bytes of a TFLite graph, each buffer counted once.

    A multi-signature graph (prefill_32, prefill_128, decode) lists the same weight tensor in every
    signature's subgraph, pointing at one buffer. Large graphs keep their buffers outside the flatbuffer
    (offset/size instead of inline data); both count.
    """
    from ai_edge_litert import schema_py_generated as schema

    floats = {schema.TensorType.FLOAT32, schema.TensorType.FLOAT16, schema.TensorType.BFLOAT16}
    graph = schema.Model.GetRootAs(model, 0)
    counted: set[int] = set()
    weights = constant_bytes = 0
    for g in range(graph.SubgraphsLength()):
        subgraph = graph.Subgraphs(g)
        for t in range(subgraph.TensorsLength()):
            tensor = subgraph.Tensors(t)
            index = tensor.Buffer()
            if index == 0 or index in counted:
                continue
            buffer = graph.Buffers(index)
            size = (buffer.DataLength() or buffer.Size()) if buffer is not None else 0
            if not size:
                continue
            counted.add(index)
            constant_bytes += size
            quantization = tensor.Quantization()
            if quantization is not None:
                constant_bytes += quantization.ScaleLength() * SCALE_BYTES
                constant_bytes += quantization.ZeroPointLength() * ZERO_POINT_BYTES
            if tensor.Type() in floats:
                weights += math.prod(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else 1
    return GraphStorage(weights, constant_bytes)
