"""The checkpoint in transformers, float32: the distributions the bundle is compared against.

The model is transformers' own class for the checkpoint (not litert-torch's export patches), with eager
attention, so the reference is what the checkpoint means, independent of the export path.

The reference of a checkpoint on given tokens never changes, while a team verifies many bundles of one
checkpoint (every preset, every CI run). Like llama.cpp's ``--kl-divergence-base`` file, the reference logits
are kept on disk (``$EDGESHIP_HOME/reference`` or ``~/.cache/edgeship/reference``), keyed by the weights
digest, the token ids and positions, and the torch/transformers versions; float32, so a float bundle still
measures ≈ 0. A 262 144-token vocabulary costs 1 MiB per scored position (256 MiB for the default 256).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from edgeship.errors import InputError
from edgeship.exporter.checkpoint import Checkpoint
from edgeship.hashing import edgeship_cache_dir

MAX_CACHED_BYTES = 4 * 2**30  # a larger reference is recomputed rather than written


class ReferenceModel:
    def __init__(self, ckpt: Checkpoint, threads: int) -> None:
        import torch
        import transformers

        torch.set_num_threads(threads)
        self._torch = torch
        try:
            self._model: Any = transformers.AutoModelForCausalLM.from_pretrained(
                str(ckpt.path), dtype=torch.float32, attn_implementation="eager"
            )
        except (OSError, ValueError, ImportError) as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"transformers cannot load {ckpt.path} as a causal LM: {message[:300]}") from exc
        self._model.eval()

    def distributions(self, tokens: Sequence[int], positions: Sequence[int]) -> np.ndarray:
        """Logits ``[len(positions), vocab]`` after each of ``positions`` (one forward over the prefix)."""
        torch = self._torch
        end = max(positions) + 1
        with torch.inference_mode():
            ids = torch.tensor([list(tokens[:end])], dtype=torch.long)
            keep = torch.tensor(list(positions), dtype=torch.long)
            logits = self._model(input_ids=ids, logits_to_keep=keep, use_cache=False).logits
        return logits[0].to(torch.float32).numpy()


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def reference_key(weights_sha256: str, requests: Sequence[tuple[Sequence[int], Sequence[int]]]) -> str:
    """What decides the reference logits: weights, every (prefix tokens, positions), the toolchain."""
    payload = {
        "weights": weights_sha256,
        "requests": [
            [list(map(int, tokens[: max(positions) + 1])), list(positions)] for tokens, positions in requests
        ],
        "torch": _version("torch"),
        "transformers": _version("transformers"),
        "mode": "float32-eager",
    }
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()


class ReferenceCache:
    """Reference logits on disk: one float32 .npy per key, rows in request order, written atomically."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or edgeship_cache_dir("reference")

    def path(self, key: str) -> Path:
        return self.root / f"{key}.npy"

    def load(self, key: str, rows: int) -> np.ndarray | None:
        """The cached logits (memory-mapped) when present and whole, else None."""
        try:
            array = np.load(self.path(key), mmap_mode="r")
        except (OSError, ValueError):
            return None
        return array if array.ndim == 2 and array.shape[0] == rows else None

    def store(self, key: str, logits: np.ndarray) -> None:
        """Best effort: a full disk or a read-only home only means computing it again next time."""
        if logits.nbytes > MAX_CACHED_BYTES:
            return
        temporary = self.root / f".{key}.{os.getpid()}.npy"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            np.save(temporary, logits)
            os.replace(temporary, self.path(key))
        except OSError:
            temporary.unlink(missing_ok=True)
