"""Run the graphs of a shipped .litertlm the way LiteRT-LM runs them on CPU, and read the decode logits.

The LiteRT-LM engine's Python API gives text and target-token scores, not next-token distributions, so the
bundle's TFLite sections are run here with the LiteRT interpreter (ai-edge-litert signature runners over
the section bytes read from the bundle — the bytes `push` sends). What the engine feeds each graph
(litert-torch 0.10 export_hf signatures; LiteRT-LM ``llm_litert_compiled_model_executor.cc``):

- ``tf_lite_embedder``: ``prefill_embedder_<T>`` / ``decode_embedder``, ``token_ids [1,T]`` → ``embeddings``.
- ``tf_lite_per_layer_embedder``: ``prefill_per_layer_embedder_<T>`` / ``decode_per_layer_embedder`` →
  ``embeddings [1,T,L,P]`` (the scaled PLE lookup), fed to the main graph as ``per_layer_embeddings``.
- ``tf_lite_prefill_decode``: ``prefill_<T>`` and ``decode``; inputs ``embeddings`` (or ``tokens`` when the
  embedder stays inside), ``input_pos [T]``, ``mask [1,1,T,C]``, ``kv_cache_k_<i>`` / ``kv_cache_v_<i>``;
  outputs the updated caches, and ``logits [1,1,V]`` from ``decode`` only (prefill emits none).
- The mask is the global causal mask, additive: 0 where a query may attend, ``-0.7 × FLT_MAX`` elsewhere
  (LiteRT-LM ``InitializeAttentionMask``/``FillAttentionMask``); sliding layers add their window in-graph.
- A ring-buffer export (sliding layers cache only S ≥ window positions; litert-torch's composite path)
  also takes ``local_mask`` and ``param_tensor [1,1,1,7]`` int32: ``[0]`` the tokens already cached (the
  ring's write offset, mod S), ``[1]`` that plus this call's tokens; the rest only steer GPU kernels (their
  CPU decompositions ignore them). ``local_mask`` is the sliding layers' mask over the ring: decode
  ``[1,1,1,S]`` after the new token is written at ``pos mod S``; prefill ``[1,1,T,S+T]``, the ring as it was
  before the call, then the call's own tokens (litert-torch ``sliding_window/attention_mask.py``).

So a position's distribution comes from a decode step: the prefix is prefilled in chunks of the exported
prefill lengths, then each scored token is decoded at its position.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeship.errors import InputError
from edgeship.exporter.manifest import EMBEDDER_KIND, PLE_SECTION_KIND, PREFILL_DECODE_KIND
from edgeship.quantize.build_input import BuildInput

MASKED = -0.7 * float(np.finfo(np.float32).max)  # LiteRT-LM's float mask value for a hidden key
KV_PREFIX = "kv_cache_"
_PREFILL = re.compile(r"^prefill(?:_.*)?_(\d+)$")
_KNOWN_INPUTS = {
    "embeddings",
    "tokens",
    "per_layer_embeddings",
    "input_pos",
    "mask",
    "local_mask",
    "param_tensor",
}
PARAM_WIDTH = 7  # litert-torch's param_tensor: (1, 1, 1, 7) int32


@dataclass(frozen=True)
class _Graph:
    """One section's interpreter and its signatures: prefill length → runner, and the decode runner."""

    prefill: dict[int, Any]
    decode: Any


def _interpreter(data: bytes, threads: int) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_content=data, num_threads=threads)


def _graph(build: BuildInput, kind: str, threads: int) -> _Graph | None:
    section = build.section(kind)
    if section is None:
        return None
    interpreter = _interpreter(build.read_section(section), threads)
    prefill, decode = {}, None
    for name in interpreter.get_signature_list():
        if name.startswith("decode"):
            decode = interpreter.get_signature_runner(name)
        elif m := _PREFILL.match(name):
            prefill[int(m.group(1))] = interpreter.get_signature_runner(name)
    if decode is None or not prefill:
        found = ", ".join(interpreter.get_signature_list())
        raise InputError(
            f"{kind} has signatures {found}; edgeship verify needs decode and prefill_<length> ones"
            " (litert-torch export_hf)"
        )
    return _Graph(prefill, decode)


class BundleModel:
    """The shipped prefill/decode graph with its embedder and PLE side-table sections."""

    def __init__(self, build: BuildInput, threads: int | None = None) -> None:
        threads = threads or os.cpu_count() or 1
        main = _graph(build, PREFILL_DECODE_KIND, threads)
        if main is None:
            raise InputError(
                f"{build.bundle} has no {PREFILL_DECODE_KIND} section; is it a LiteRT-LM LLM bundle?"
            )
        self._main = main
        self._embedder = _graph(build, EMBEDDER_KIND, threads)
        self._per_layer = _graph(build, PLE_SECTION_KIND, threads)
        inputs = main.decode.get_input_details()
        unknown = sorted(n for n in inputs if n not in _KNOWN_INPUTS and not n.startswith(KV_PREFIX))
        if unknown:
            raise InputError(
                f"the {PREFILL_DECODE_KIND} graph takes inputs edgeship cannot feed ({', '.join(unknown)});"
                " was it exported by another litert-torch than export_hf 0.10?"
            )
        window = build.build.model.attention.sliding_window if build.build.model.attention else None
        if "local_mask" in inputs and not window:
            raise InputError(
                f"the {PREFILL_DECODE_KIND} graph takes a sliding-window mask but manifest.json records no"
                " model.attention.sliding_window; re-export the build"
            )
        self._window = int(window or 0)
        if "embeddings" in inputs and self._embedder is None:
            raise InputError(
                f"the {PREFILL_DECODE_KIND} graph takes embeddings but the bundle has no {EMBEDDER_KIND}"
            )
        if "per_layer_embeddings" in inputs and self._per_layer is None:
            raise InputError(
                f"the {PREFILL_DECODE_KIND} graph takes per_layer_embeddings but the bundle has no"
                f" {PLE_SECTION_KIND} section"
            )
        self._inputs = inputs
        self._kv = {n: d for n, d in inputs.items() if n.startswith(KV_PREFIX)}
        self.vocab = int(main.decode.get_output_details()["logits"]["shape"][-1])
        mask = inputs.get("mask")
        self.cache_length = int(mask["shape"][-1]) if mask is not None else self._cache_from_kv()

    def _cache_from_kv(self) -> int:
        shapes = [tuple(int(d) for d in detail["shape"]) for detail in self._kv.values()]
        return min(max(shape[2:]) for shape in shapes) if shapes else 0

    @property
    def prefill_lengths(self) -> tuple[int, ...]:
        return tuple(sorted(self._main.prefill))

    def distributions(self, tokens: Sequence[int], chunks: Sequence[int], count: int) -> np.ndarray:
        """Decode logits ``[count, vocab]`` for positions ``sum(chunks)`` … ``sum(chunks)+count-1``.

        ``chunks`` are the prefill calls (each an exported prefill length) covering the prefix.
        """
        start = sum(chunks)
        if start + count > min(len(tokens), self.cache_length):
            raise ValueError(f"positions up to {start + count} do not fit {len(tokens)} tokens / the cache")
        cache = {n: np.zeros([int(x) for x in d["shape"]], d["dtype"]) for n, d in self._kv.items()}
        position = 0
        for length in chunks:
            runner = self._main.prefill[length]
            ids = tokens[position : position + length]
            outputs = runner(**self._feed(runner, "prefill", ids, position, cache))
            cache = {n: outputs[n] for n in cache}
            position += length
        rows = np.empty((count, self.vocab), np.float32)
        for i in range(count):
            runner = self._main.decode
            outputs = runner(**self._feed(runner, "decode", tokens[position : position + 1], position, cache))
            cache = {n: outputs[n] for n in cache}
            rows[i] = outputs["logits"].reshape(-1)[-self.vocab :]
            position += 1
        return rows

    def _feed(
        self, runner: Any, phase: str, ids: Sequence[int], start: int, cache: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        details = runner.get_input_details()
        steps = len(ids)
        token_ids = np.asarray(ids, np.int32).reshape(1, steps)
        feed: dict[str, np.ndarray] = dict(cache)
        if "tokens" in details:
            feed["tokens"] = token_ids.astype(details["tokens"]["dtype"])
        if "embeddings" in details:
            feed["embeddings"] = self._lookup(self._embedder, phase, token_ids)
        if "per_layer_embeddings" in details:
            feed["per_layer_embeddings"] = self._lookup(self._per_layer, phase, token_ids)
        feed["input_pos"] = np.arange(start, start + steps, dtype=details["input_pos"]["dtype"])
        if "mask" in details:
            feed["mask"] = _causal_mask(details["mask"], start, steps)
        if "local_mask" in details:
            feed["local_mask"] = _ring_mask(details["local_mask"], phase, start, steps, self._window)
        if "param_tensor" in details:
            feed["param_tensor"] = _ring_params(details["param_tensor"], start, steps)
        return feed

    @staticmethod
    def _lookup(graph: _Graph | None, phase: str, token_ids: np.ndarray) -> np.ndarray:
        assert graph is not None  # checked in __init__
        runner = graph.decode if phase == "decode" else graph.prefill.get(token_ids.shape[1])
        if runner is None:
            raise InputError(f"an embedder section has no prefill signature of length {token_ids.shape[1]}")
        ((name, detail),) = runner.get_input_details().items()
        (output,) = runner(**{name: token_ids.astype(detail["dtype"])}).values()
        return output


def _causal_mask(detail: dict[str, Any], start: int, steps: int) -> np.ndarray:
    """Query ``start + i`` sees keys ``0 … start + i`` (LiteRT-LM FillAttentionMask, text queries)."""
    shape = [int(d) for d in detail["shape"]]
    keys = np.arange(shape[-1])[None, :]
    queries = np.arange(start, start + steps)[:, None]
    visible = (keys <= queries).reshape(1, 1, steps, shape[-1])
    if detail["dtype"] == np.bool_:
        return visible
    return np.where(visible, 0.0, MASKED).astype(detail["dtype"])


def _ring_mask(detail: dict[str, Any], phase: str, start: int, steps: int, window: int) -> np.ndarray:
    """The sliding layers' mask over a ring of S slots (+ this call's tokens in prefill), additive like
    ``_causal_mask``: query ``q`` sees key ``k`` when ``0 <= k <= q`` and ``q - k < window``."""
    shape = [int(d) for d in detail["shape"]]
    queries = np.arange(start, start + steps)[:, None]
    if phase == "decode":
        # The new token is written at start mod S before attention: slot j holds the latest position
        # ≡ j (mod S) that is ≤ start.
        slots = np.arange(shape[-1])[None, :]
        keys = start - (start - slots) % shape[-1]
    else:
        # The ring as it was before this call (the latest position ≡ j (mod S) below start), then the
        # call's own tokens.
        size = shape[-1] - steps
        ring = (start - 1) - ((start - 1) - np.arange(size)[None, :]) % size
        keys = np.concatenate([ring, np.arange(start, start + steps)[None, :]], axis=1)
    visible = ((keys >= 0) & (keys <= queries) & (queries - keys < window)).reshape(shape)
    if detail["dtype"] == np.bool_:
        return visible
    return np.where(visible, 0.0, MASKED).astype(detail["dtype"])


def _ring_params(detail: dict[str, Any], start: int, steps: int) -> np.ndarray:
    """``[cached tokens, cached + this call's, same, 0…]``: the ring write offset and the update length."""
    shape = [int(d) for d in detail["shape"]]
    if shape[-1] != PARAM_WIDTH:
        raise InputError(
            f"the graph's param_tensor is {shape}; edgeship verify knows (1, 1, 1, {PARAM_WIDTH})"
        )
    params = np.zeros(shape, detail["dtype"])
    params[..., 0] = start
    params[..., 1] = start + steps
    params[..., 2] = start + steps
    return params


@dataclass(frozen=True)
class BundleTokenizer:
    """The bundle's own tokenizer section and the start token prepended to every prompt."""

    tokenizer: Any
    bos_id: int | None
    bos_source: str  # "bundle" (LlmMetadataProto start_token), "checkpoint" (its config), or "none"

    def encode(self, text: str) -> list[int]:
        ids = self.tokenizer.encode(text, add_special_tokens=False).ids
        return ([self.bos_id] if self.bos_id is not None else []) + list(ids)


def bundle_tokenizer(build: BuildInput, fallback_bos: int | None = None) -> BundleTokenizer:
    """The HF tokenizer from the bundle's HF_Tokenizer_Zlib section, BOS from its LlmMetadataProto.

    A bundle whose metadata names no start token (e.g. a checkpoint converted from GGUF whose tokenizer
    adds none) would run without BOS in LiteRT-LM, a regime Gemma models are not trained for; the model is
    then compared with ``fallback_bos`` (the checkpoint's ``bos_token_id``) prepended, and the accuracy
    block says so.
    """
    from tokenizers import Tokenizer

    section = build.section("HF_Tokenizer_Zlib")
    if section is None:
        kinds = ", ".join(s.kind for s in build.header.sections)
        raise InputError(
            f"{build.bundle} has no HF_Tokenizer_Zlib section (it has {kinds}); verify needs one"
        )
    raw = build.read_section(section)
    try:
        (size,) = struct.unpack_from("<Q", raw)
        text = zlib.decompress(raw[8:])
        tokenizer = Tokenizer.from_str(text.decode("utf-8"))
    except Exception as exc:  # struct, zlib, UTF-8 or tokenizers' own errors: all mean a corrupt section
        raise InputError(f"{build.bundle}: the tokenizer section cannot be read ({exc})") from exc
    if len(text) != size:
        raise InputError(
            f"{build.bundle}: the tokenizer section is {len(text)} bytes, its header says {size}"
        )
    bos = _start_token(build, tokenizer)
    if bos is not None:
        return BundleTokenizer(tokenizer, bos, "bundle")
    if fallback_bos is not None:
        return BundleTokenizer(tokenizer, fallback_bos, "checkpoint")
    return BundleTokenizer(tokenizer, None, "none")


def _start_token(build: BuildInput, tokenizer: Any) -> int | None:
    section = build.section("LlmMetadataProto")
    if section is None:
        return None
    from litert_lm_builder.runtime.proto import llm_metadata_pb2

    metadata = llm_metadata_pb2.LlmMetadata.FromString(build.read_section(section))
    if not metadata.HasField("start_token"):
        return None
    start = metadata.start_token
    if start.HasField("token_ids") and start.token_ids.ids:
        return int(start.token_ids.ids[0])
    if start.HasField("token_str"):
        return tokenizer.token_to_id(start.token_str)
    return None
