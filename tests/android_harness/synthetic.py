"""Synthetic .litertlm-shaped builds for push tests: a header and 16 KiB-aligned sections with a manifest.

Only the byte layout matters to push (header, aligned sections, padding); e2e tests also use the real
exported build fixture.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from edgeship.exporter.manifest import ALIGNMENT

BLOCK = ALIGNMENT


def random_sections(sizes: list[int], seed: int = 0) -> list[tuple[str, bytes]]:
    """(kind0, bytes), (kind1, bytes)… of the given sizes, the same for the same seed."""
    rng = __import__("random").Random(seed)
    return [(f"kind{i}", rng.randbytes(size)) for i, size in enumerate(sizes)]


def _align(value: int) -> int:
    return (value + BLOCK - 1) // BLOCK * BLOCK


def write_build(
    build_dir: Path,
    sections: list[tuple[str, bytes]],
    header: bytes | None = None,
    tokenizer: bytes | None = b'{"model": "synthetic"}',
) -> Path:
    """Write model.litertlm + manifest.json (+ tokenizer.json) and return build_dir."""
    build_dir.mkdir(parents=True, exist_ok=True)
    header = header if header is not None else b"LITERTLM" + os.urandom(1000)
    blob = bytearray(header)
    blob += b"\0" * (_align(len(blob)) - len(blob))
    entries = []
    for index, (kind, data) in enumerate(sections):
        offset = len(blob)
        blob += data
        entries.append(
            {
                "index": index,
                "kind": kind,
                "data_type": "TFLiteModel",
                "offset": offset,
                "end": offset + len(data),
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "quant": None,
            }
        )
        if index != len(sections) - 1:
            blob += b"\0" * (_align(len(blob)) - len(blob))
    (build_dir / "model.litertlm").write_bytes(bytes(blob))
    first = entries[0]["offset"] if entries else len(blob)
    manifest = {
        "schema": "edgeship.manifest/1",
        "bundle": {
            "file": "model.litertlm",
            "bytes": len(blob),
            "sha256": hashlib.sha256(blob).hexdigest(),
            "alignment": BLOCK,
        },
        "sections": entries,
        "header": {"offset": 0, "end": first, "sha256": hashlib.sha256(blob[:first]).hexdigest()},
        "model": {"arch": "synthetic", "model_type": "synthetic", "ple": None, "attention": None},
        "export": {"prefill_lengths": [32], "cache_length": 1024, "recipe": "float", "versions": {}},
        "checkpoint": None,
        "tokenizer": None,
        "accuracy": None,
    }
    if tokenizer is not None:
        (build_dir / "tokenizer.json").write_bytes(tokenizer)
        manifest["tokenizer"] = {"file": "tokenizer.json"}
    (build_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return build_dir
