"""Read and validate a Hugging Face checkpoint folder before any heavy work starts.

Everything here reads headers only: a safetensors file is an 8-byte little-endian header length, a JSON header
naming each tensor's dtype, shape and [begin, end) byte range, then the data. A truncated or corrupt file, or
weights whose shapes disagree with config.json, are caught in milliseconds instead of after a minute of
torch/MLIR work (or, worse, not at all).
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeship.errors import InputError
from edgeship.exporter.arch import ArchSpec, arch_for

CONFIG_FILE = "config.json"
INDEX_FILE = "model.safetensors.index.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")
MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit

DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip

# Tensors of multimodal towers: not part of the exported text model.
_TOWER_PATTERN = re.compile(
    r"(^|\.)(vision_tower|audio_tower|embed_vision|embed_audio|multi_modal_projector)\."
)


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]
    file: str

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass
class Checkpoint:
    """A validated checkpoint: its config, weight files and tensor table (no weights loaded)."""

    path: Path
    config: dict[str, Any]
    arch: ArchSpec
    weight_files: list[str]
    tensors: dict[str, TensorInfo]
    tokenizer_file: str
    text_config: dict[str, Any] = field(default_factory=dict)

    @property
    def model_type(self) -> str:
        return self.config["model_type"]

    def text_tensors(self) -> list[TensorInfo]:
        return [t for t in self.tensors.values() if not _TOWER_PATTERN.search(t.name)]

    def find(self, suffix: str) -> TensorInfo | None:
        """The text-model tensor whose name ends with ``suffix`` (``embed_tokens.weight``...)."""
        for tensor in self.text_tensors():
            if tensor.name.endswith(suffix):
                return tensor
        return None


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON ({what}): {exc}") from exc


def read_safetensors_header(path: Path) -> dict[str, TensorInfo]:
    """The tensor table of one safetensors file, checked against the file's real length."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise InputError(
                f"{path.name} is truncated ({size} bytes): re-download or re-save the checkpoint"
            )
        (header_len,) = struct.unpack("<Q", head)
        if header_len == 0 or header_len > MAX_HEADER_BYTES or 8 + header_len > size:
            raise InputError(
                f"{path.name} is corrupt or truncated (header length {header_len}, file {size} bytes)"
            )
        raw = handle.read(header_len)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path.name} has a corrupt safetensors header: {exc}") from exc
    if not isinstance(header, dict):
        raise InputError(f"{path.name} has a corrupt safetensors header (not a JSON object)")
    tensors: dict[str, TensorInfo] = {}
    data_bytes = size - 8 - header_len
    data_end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = (
                entry["dtype"],
                tuple(int(d) for d in entry["shape"]),
                entry["data_offsets"],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{path.name}: tensor '{name}' has a corrupt header entry") from exc
        if dtype not in DTYPE_BYTES:
            raise InputError(f"{path.name}: tensor '{name}' has unknown dtype {dtype}")
        if end - begin != math.prod(shape) * DTYPE_BYTES[dtype] or begin < 0:
            raise InputError(
                f"{path.name}: tensor '{name}' byte range does not match its shape {list(shape)}"
            )
        data_end = max(data_end, end)
        tensors[name] = TensorInfo(name, dtype, shape, path.name)
    if data_end > data_bytes:
        raise InputError(
            f"{path.name} is truncated: tensors need {data_end} data bytes, file has {data_bytes};"
            " re-download or re-save the checkpoint"
        )
    if data_end < data_bytes:
        raise InputError(
            f"{path.name} is corrupt: {data_bytes - data_end} trailing bytes after the last tensor"
        )
    return tensors


def _weight_files(path: Path) -> list[str]:
    index = path / INDEX_FILE
    if index.exists():
        weight_map = _read_json(index, "sharded weights index").get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise InputError(f"{index} has no weight_map; is the sharded checkpoint complete?")
        files = sorted(set(weight_map.values()))
        missing = [f for f in files if not (path / f).is_file()]
        if missing:
            raise InputError(f"missing weight shard(s) {', '.join(missing)} named by {INDEX_FILE} in {path}")
        return files
    files = sorted(p.name for p in path.glob("*.safetensors"))
    if not files:
        found = sorted(p.name for p in path.glob("*.bin")) + sorted(p.name for p in path.glob("*.pth"))
        hint = f" (found {', '.join(found)}: convert to safetensors)" if found else ""
        raise InputError(f"no *.safetensors weights in {path}{hint}")
    return files


def _expect_shape(ckpt: Checkpoint, suffix: str, expected: tuple[int, ...], what: str) -> None:
    tensor = ckpt.find(suffix)
    if tensor is None:
        raise InputError(
            f"weights have no '{suffix}' tensor ({what}); do the weights belong to this config.json?"
        )
    if tensor.shape != expected:
        raise InputError(
            f"weights do not match config.json: {tensor.name} is {list(tensor.shape)}, config implies"
            f" {list(expected)} ({what})"
        )


def _check_against_config(ckpt: Checkpoint) -> None:
    text = ckpt.text_config
    vocab, hidden, layers = text.get("vocab_size"), text.get("hidden_size"), text.get("num_hidden_layers")
    if not all(isinstance(v, int) for v in (vocab, hidden, layers)):
        raise InputError("config.json lacks vocab_size, hidden_size or num_hidden_layers for the text model")
    _expect_shape(ckpt, "embed_tokens.weight", (vocab, hidden), "vocab_size x hidden_size")
    layer_ids = {
        int(m.group(1))
        for t in ckpt.text_tensors()
        if (m := re.search(r"\.layers\.(\d+)\.", t.name)) is not None
    }
    if layer_ids and (max(layer_ids) + 1 != layers or len(layer_ids) != layers):
        raise InputError(
            f"weights do not match config.json: weights have {len(layer_ids)} layers,"
            f" num_hidden_layers is {layers}"
        )
    if ckpt.arch.has_ple:
        ple_dim = text.get("hidden_size_per_layer_input")
        ple_vocab = text.get("vocab_size_per_layer_input", vocab)
        if ple_dim:
            _expect_shape(
                ckpt, "embed_tokens_per_layer.weight", (ple_vocab, layers * ple_dim),
                "vocab_size_per_layer_input x (layers x hidden_size_per_layer_input)",
            )  # fmt: skip


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Validate a checkpoint folder; raises InputError naming the first problem found."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"checkpoint folder {path} does not exist or is not a folder")
    config_path = path / CONFIG_FILE
    if not config_path.is_file():
        raise InputError(f"no {CONFIG_FILE} in {path}; is this a Hugging Face checkpoint folder?")
    config = _read_json(config_path, "model config")
    if not isinstance(config, dict):
        raise InputError(f"{config_path} is not a JSON object")
    arch = arch_for(config.get("model_type"))
    text_config = config.get("text_config") or config
    if not isinstance(text_config, dict):
        raise InputError(f"{config_path}: text_config is not a JSON object")
    files = _weight_files(path)
    tensors: dict[str, TensorInfo] = {}
    for name in files:
        for tensor_name, info in read_safetensors_header(path / name).items():
            if tensor_name in tensors:
                raise InputError(
                    f"tensor '{tensor_name}' appears in both {tensors[tensor_name].file} and {name}"
                )
            tensors[tensor_name] = info
    index = path / INDEX_FILE
    if index.exists():
        weight_map = _read_json(index, "sharded weights index")["weight_map"]
        missing = [n for n, f in weight_map.items() if tensors.get(n) is None or tensors[n].file != f]
        if missing:
            raise InputError(
                f"{INDEX_FILE} names {len(missing)} tensor(s) not in their shard, e.g. '{missing[0]}'"
            )
    tokenizer = next((f for f in TOKENIZER_FILES if (path / f).is_file()), None)
    if tokenizer is None:
        raise InputError(
            f"no tokenizer in {path} (expected {' or '.join(TOKENIZER_FILES)} next to the weights)"
        )
    ckpt = Checkpoint(path, config, arch, files, tensors, tokenizer, text_config)
    _check_against_config(ckpt)
    return ckpt


@dataclass(frozen=True)
class ModelFacts:
    """Counts and shapes the manifest reports (from headers and config, no weights loaded)."""

    params_total: int
    params_core: int
    ple: dict[str, int] | None
    attention: dict[str, Any]
    text_model_type: str


def ple_facts(vocab: int, layers: int, dim: int, bits: int | None) -> dict[str, int]:
    """The manifest's ``model.ple``: ``vocab`` rows of ``layers`` x ``dim`` values at ``bits`` (None: 32)."""
    bits = bits or 32
    row_bytes = layers * dim * bits // 8
    return {
        "vocab": vocab, "layers": layers, "dim": dim, "bits": bits,
        "row_bytes": row_bytes, "table_bytes": row_bytes * vocab,
    }  # fmt: skip


def model_facts(ckpt: Checkpoint, ple_bits: int | None) -> ModelFacts:
    text = ckpt.text_config
    tensors = ckpt.text_tensors()
    total = sum(t.numel for t in tensors)
    embed = ckpt.find("embed_tokens.weight")
    ple_tensor = ckpt.find("embed_tokens_per_layer.weight") if ckpt.arch.has_ple else None
    core = total - (embed.numel if embed else 0) - (ple_tensor.numel if ple_tensor else 0)
    ple = None
    if ple_tensor is not None:
        ple = ple_facts(
            ple_tensor.shape[0], text["num_hidden_layers"], text["hidden_size_per_layer_input"], ple_bits
        )
    per_layer = text.get("per_layer_config") or {}
    global_dims = {v.get("head_dim") for v in per_layer.values() if isinstance(v, dict) and v.get("head_dim")}
    attention = {
        "layer_types": text.get("layer_types"),
        "sliding_window": text.get("sliding_window"),
        "kv_shared_layers": text.get("num_kv_shared_layers", 0),
        "head_dim": text.get("head_dim"),
        "global_head_dim": max(global_dims)
        if global_dims
        else text.get("global_head_dim", text.get("head_dim")),
        "num_key_value_heads": text.get("num_key_value_heads"),
        "num_attention_heads": text.get("num_attention_heads"),
    }
    return ModelFacts(total, core, ple, attention, text.get("model_type", ckpt.model_type))
