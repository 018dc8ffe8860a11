"""Tiny deterministic checkpoints for tests, benchmarks and the demo.

Weights come from a seeded numpy generator per tensor name (not torch's init, which may change between torch
versions), and the tokenizer is a real byte-level BPE trained with `tokenizers` on a built-in corpus, padded
with unreachable entries up to the model's vocabulary so every token id has a piece.

Sizes:
- ``tiny``: hidden 64, 8 layers, vocab 512, PLE 32 per layer — exports in about a minute. Every weight
  dimension is a multiple of 32, so the blockwise-32 recipes apply too.
- ``ple-heavy``: vocab 65 536 x 8 layers x 256 PLE (~134 M of ~144 M parameters are the PLE table), so the
  side-table dominates the bundle the way it does for a real E2B model (262 144 x 35 x 256).
- ``ple-full``: the ple-heavy shape with a real Gemma PLE vocabulary, 262 144 x 8 layers x 256 (~537 M PLE
  parameters; ~0.55 GB int8 bundle): the largest bundle this 2-core machine kind exports in a few minutes, for
  push and residency benchmarks. Not used by the test suite.
- ``e2b``: the real Gemma 4 E2B text geometry (reference/gemma-ple-kv.md §3): 35 layers (4 sliding : 1 full,
  the last 20 sharing KV), hidden 1536, 8 heads / 1 KV head, head dim 256 (512 global), MLP 6144 (12 288 on
  the shared layers), PLE 262 144 x 35 x 256 — ~4.6 B text parameters, ~9.3 GB in bf16, the dtype Gemma ships.
  Written as a stream (a tensor at a time, the 4.7 GB PLE table in row blocks), so making it needs ~100 MB of
  RAM, not the checkpoint's size; for memory-scale measurements (`edgeship export` refuses it here: it
  predicts its own need first).

Weights are written by a small streaming safetensors writer (header first, then each tensor's bytes as they
are generated), so no size is ever held in memory whole.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeship.errors import UsageError
from edgeship.exporter.arch import SYNTHETIC_ARCHS

SIZES = ("tiny", "ple-heavy", "ple-full", "e2b")
# Rows of the PLE table (= token vocabulary) per size; the larger sizes share one layer shape.
VOCAB_BY_SIZE = {"tiny": 512, "ple-heavy": 65536, "ple-full": 262144, "e2b": 262144}
# Weight dtype per size: float32 for the test sizes; bf16 for e2b, as Gemma checkpoints are published.
DTYPE_BY_SIZE = {"e2b": "BF16"}
ROW_BLOCK_BYTES = 64 * 1024 * 1024  # a large tensor is generated and written this many bytes at a time
SHARD_BYTES = 256 * 1024 * 1024  # larger checkpoints are written sharded, with an index, like HF does
SEED = 20260
SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<start_of_turn>{{ message['role'] }}\n"
    "{{ message['content'] }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
_CORPUS_LINES = [
    "edgeship takes a checkpoint to a phone, measures it and reports what it finds.",
    "The per-layer embedding table is looked up one row per token and stays memory mapped.",
    "Sliding window layers alternate with global attention layers; the last layers share their caches.",
    "A quick brown fox jumps over the lazy dog while the compiler lowers the graph.",
    "Prefill processes the prompt at once; decode produces one token after another.",
    "Quantization turns float weights into int8 or int4 values with a scale per channel or per block.",
    "Push the bundle section by section, so an unchanged table is never sent twice.",
    "Numbers 0 1 2 3 4 5 6 7 8 9 10 100 1000 and punctuation: commas, periods; colons!",
]


@dataclass(frozen=True)
class SyntheticSpec:
    arch: str  # make-checkpoint name (gemma4, gemma4-text, gemma3n-text, gemma3)
    size: str
    model_type: str
    config: dict[str, Any]


PLE_MODEL_LAYERS = 8


def _ple_model_shape(size: str) -> dict[str, Any]:
    """What the synthetic Gemma 4 and Gemma 3n share: PLE table, sizes, attention pattern, KV sharing."""
    heavy = size != "tiny"
    vocab = VOCAB_BY_SIZE[size]
    return {
        "vocab_size": vocab,
        "vocab_size_per_layer_input": vocab,
        "hidden_size": 128 if heavy else 64,
        "hidden_size_per_layer_input": 256 if heavy else 32,
        "intermediate_size": 256 if heavy else 128,
        "num_hidden_layers": PLE_MODEL_LAYERS,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 32,
        # KV sharing needs both layer types among the producing layers (transformers refuses otherwise).
        "layer_types": (["sliding_attention"] * 3 + ["full_attention"]) * 2,
        "num_kv_shared_layers": 2,
        "sliding_window": 64,
        "max_position_embeddings": 4096,
        "pad_token_id": 0,
        "eos_token_id": 1,
        "bos_token_id": 2,
        "tie_word_embeddings": True,
    }


def _gemma4_text_config(size: str) -> dict[str, Any]:
    if size == "e2b":
        return _gemma4_e2b_config()
    return {"model_type": "gemma4_text", **_ple_model_shape(size), "global_head_dim": 64}


E2B_LAYERS = 35


def _gemma4_e2b_config() -> dict[str, Any]:
    """Gemma 4 E2B's text model (transformers' convert_gemma4_weights `_VARIANTS`, gemma-ple-kv.md §3)."""
    return {
        "model_type": "gemma4_text",
        "vocab_size": 262144,
        "vocab_size_per_layer_input": 262144,
        "hidden_size": 1536,
        "hidden_size_per_layer_input": 256,
        "intermediate_size": 6144,
        "use_double_wide_mlp": True,
        "num_hidden_layers": E2B_LAYERS,
        "num_attention_heads": 8,
        "num_key_value_heads": 1,
        "head_dim": 256,
        "global_head_dim": 512,
        "layer_types": (["sliding_attention"] * 4 + ["full_attention"]) * (E2B_LAYERS // 5),
        "num_kv_shared_layers": 20,
        "sliding_window": 512,
        "max_position_embeddings": 131072,
        "final_logit_softcapping": 30.0,
        "pad_token_id": 0,
        "eos_token_id": 1,
        "bos_token_id": 2,
        "tie_word_embeddings": True,
    }


def _gemma3n_text_config(size: str) -> dict[str, Any]:
    return {
        "model_type": "gemma3n_text",
        **_ple_model_shape(size),
        "laurel_rank": 8,
        "altup_num_inputs": 4,
        "activation_sparsity_pattern": [0.0] * PLE_MODEL_LAYERS,
    }


def _gemma3_text_config(size: str) -> dict[str, Any]:
    if size != "tiny":
        raise UsageError(
            "gemma3 has no PLE table; use --size tiny (PLE sizes exist for gemma4 and gemma3n-text)"
        )
    return {
        "model_type": "gemma3_text",
        "vocab_size": 512,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 4,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 32,
        "query_pre_attn_scalar": 32,
        "layer_types": ["sliding_attention"] * 3 + ["full_attention"],
        "sliding_window": 64,
        "max_position_embeddings": 4096,
        "pad_token_id": 0,
        "eos_token_id": 1,
        "bos_token_id": 2,
        "tie_word_embeddings": True,
    }


def synthetic_spec(arch: str, size: str) -> SyntheticSpec:
    if arch not in SYNTHETIC_ARCHS:
        raise UsageError(f"unknown --arch '{arch}'; choose one of {', '.join(SYNTHETIC_ARCHS)}")
    if size not in SIZES:
        raise UsageError(f"unknown --size '{size}'; choose one of {', '.join(SIZES)}")
    model_type = SYNTHETIC_ARCHS[arch]
    if size == "e2b" and not model_type.startswith("gemma4"):
        raise UsageError("--size e2b is Gemma 4 E2B's geometry; use it with --arch gemma4 or gemma4-text")
    if model_type.startswith("gemma4"):
        config = _gemma4_text_config(size)
    elif model_type.startswith("gemma3n"):
        config = _gemma3n_text_config(size)
    else:
        config = _gemma3_text_config(size)
    return SyntheticSpec(arch=arch, size=size, model_type=model_type, config=config)


def _build_config(spec: SyntheticSpec) -> Any:
    """The transformers config object (multimodal with no towers for `gemma4`)."""
    import transformers

    text = dict(spec.config)
    text_type = text.pop("model_type")
    text_config_cls = transformers.AutoConfig.for_model(text_type).__class__
    text_config = text_config_cls(**text)
    if spec.model_type == "gemma4":
        return transformers.Gemma4Config(
            text_config=text_config.to_dict(), vision_config=None, audio_config=None, tie_word_embeddings=True
        )
    return text_config


def _tensor_shapes(config: Any) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the weights, from the model class built on the meta device (no memory)."""
    import torch
    import transformers

    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config)
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    if getattr(config, "tie_word_embeddings", False) or getattr(
        config.get_text_config(), "tie_word_embeddings", False
    ):
        shapes.pop("lm_head.weight", None)  # tied to the token embedding: HF does not save it
    return shapes


_DTYPE_BYTES = {"F32": 4, "BF16": 2}


def _tensor_blocks(name: str, shape: tuple[int, ...]) -> Iterator[np.ndarray]:
    """A tensor's float32 values in row blocks; one seeded stream per name, so the blocks join to the same
    values a single draw gives (numpy's Generator fills sequentially)."""
    seed = int.from_bytes(hashlib.sha256(f"{SEED}:{name}".encode()).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    if len(shape) <= 1:
        # Norm scales and layer scalars: near one keeps activations in range through the layers.
        yield (1.0 + 0.01 * rng.standard_normal(shape)).astype(np.float32)
        return
    row = int(np.prod(shape[1:]))
    rows_per_block = max(1, ROW_BLOCK_BYTES // (4 * row))
    for start in range(0, shape[0], rows_per_block):
        rows = min(rows_per_block, shape[0] - start)
        yield 0.02 * rng.standard_normal((rows, *shape[1:]), dtype=np.float32)


def _encode(values: np.ndarray, dtype: str) -> bytes:
    if dtype == "F32":
        return values.astype("<f4").tobytes()
    # bfloat16 = the top half of a float32, rounded to nearest even.
    bits = values.astype("<f4").view("<u4").astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype("<u2").tobytes()


def _write_safetensors(path: Path, shapes: dict[str, tuple[int, ...]], names: list[str], dtype: str) -> None:
    """One safetensors file: its JSON header first, then each tensor streamed block by block."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name in names:
        nbytes = int(np.prod(shapes[name])) * _DTYPE_BYTES[dtype]
        header[name] = {
            "dtype": dtype,
            "shape": list(shapes[name]),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the data starts 8-byte aligned, as safetensors writes it
    with open(path, "wb") as handle:
        handle.write(len(raw).to_bytes(8, "little") + raw)
        for name in names:
            for block in _tensor_blocks(name, shapes[name]):
                handle.write(_encode(block, dtype))


def _write_weights(shapes: dict[str, tuple[int, ...]], out: Path, dtype: str = "F32") -> list[str]:
    names = sorted(shapes)
    width = _DTYPE_BYTES[dtype]
    total = sum(int(np.prod(shapes[n])) * width for n in names)
    if total <= SHARD_BYTES:
        _write_safetensors(out / "model.safetensors", shapes, names, dtype)
        return ["model.safetensors"]
    shards: list[list[str]] = [[]]
    size = 0
    for name in names:
        nbytes = int(np.prod(shapes[name])) * width
        if shards[-1] and size + nbytes > SHARD_BYTES:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += nbytes
    files = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    weight_map = {}
    for file, shard in zip(files, shards, strict=True):
        _write_safetensors(out / file, shapes, shard, dtype)
        weight_map.update(dict.fromkeys(shard, file))
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return files


def _corpus() -> list[str]:
    rng = np.random.default_rng(SEED)
    words = " ".join(_CORPUS_LINES).replace(",", "").replace(".", "").split()
    lines = list(_CORPUS_LINES)
    for _ in range(400):
        lines.append(" ".join(rng.choice(words, size=12)))
    return lines


def _write_tokenizer(vocab_size: int, out: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=min(vocab_size, 512),
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus(), trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
    # Pad the vocabulary to the model's with unreachable pieces: every id the model can emit decodes.
    data = json.loads(tokenizer.to_str())
    vocab = data["model"]["vocab"]
    next_id = max(vocab.values()) + 1
    while next_id < vocab_size:
        vocab[f"<unused{next_id}>"] = next_id
        next_id += 1
    tokenizer = Tokenizer.from_str(json.dumps(data))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        model_max_length=4096,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(out))


def make_checkpoint(arch: str, size: str, out: str | Path, force: bool = False) -> Path:
    """Write a deterministic HF checkpoint folder (config.json, safetensors, tokenizer); returns its path."""
    spec = synthetic_spec(arch, size)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not force:
            raise UsageError(f"{out} exists and is not empty; choose another -o or pass --force")
        shutil.rmtree(out)
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    config = _build_config(spec)
    config.save_pretrained(str(staging))
    _write_weights(_tensor_shapes(config), staging, DTYPE_BY_SIZE.get(size, "F32"))
    _write_tokenizer(spec.config["vocab_size"], staging)
    if out.exists():
        out.rmdir()
    staging.rename(out)
    return out
