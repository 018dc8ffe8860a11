"""Apply a scheme to one TFLite graph with ai-edge-quantizer (the only place that calls it).

Both `export` (on the graphs litert-torch writes) and `quantize` (on the sections of a float bundle) come
here, so a recipe gives the same bytes whichever way it is applied.
"""

from __future__ import annotations

import re
from pathlib import Path

from edgeship.errors import UsageError
from edgeship.quantize.recipes import Scheme, aeq_recipe

_NOT_DIVISIBLE = re.compile(
    r"Quantized dimension \d+ in tensor shape \([^)]*\) is not divisible by block size \d+"
)
_TENSOR = re.compile(r"for tensor: ([^;]+)")


class SchemeDoesNotApply(UsageError):
    """The scheme cannot quantize this graph (blockwise on a dimension not a multiple of the block...)."""


def quantize_graph(model: bytes | Path, scheme: Scheme, kind: str) -> bytes:
    """The quantized flatbuffer of ``model`` (a .tflite path or its bytes) under ``scheme``."""
    from ai_edge_quantizer import quantizer as quantizer_lib

    recipe = aeq_recipe(scheme)
    if recipe is None:
        raise ValueError(f"scheme '{scheme.name}' is float: there is nothing to quantize")
    qt = quantizer_lib.Quantizer(str(model) if isinstance(model, Path) else model)
    qt.load_quantization_recipe(recipe)
    try:
        return bytes(qt.quantize().quantized_model)
    except (OSError, MemoryError):
        raise
    except Exception as exc:
        raise SchemeDoesNotApply(f"scheme '{scheme.name}' cannot quantize {kind}: {_reason(exc)}") from exc


def _reason(exc: Exception) -> str:
    """ai-edge-quantizer's error in one line: the tensor (last scope of its name) and what is wrong."""
    text = " ".join(str(exc).split())
    blockwise = _NOT_DIVISIBLE.search(text)
    tensor = _TENSOR.search(text)
    where = f"tensor {tensor.group(1).rsplit('/', 1)[-1]}: " if tensor else ""
    if blockwise:
        return (
            f"{where}{blockwise.group(0).rstrip('.')}; blockwise schemes need input dimensions that are"
            " multiples of the block size: give that section int4/int8 in a recipe file"
        )
    return f"{where}{type(exc).__name__}: {text[-200:]}"
