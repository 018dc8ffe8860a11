"""Synthetic checkpoints: deterministic bytes, the shapes each size promises, a working tokenizer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from edgeship.exporter.checkpoint import model_facts, read_checkpoint
from edgeship.hashing import sha256_file


def test_make_checkpoint_cli_is_deterministic(tiny_gemma4_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "again"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgeship",
            "testing",
            "make-checkpoint",
            "--arch",
            "gemma4",
            "-o",
            str(out),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    files = json.loads(result.stdout)["files"]
    assert files == sorted(p.name for p in tiny_gemma4_checkpoint.iterdir())
    for name in files:
        assert sha256_file(out / name) == sha256_file(tiny_gemma4_checkpoint / name), name


def test_tiny_gemma4_has_the_promised_shape(tiny_gemma4_checkpoint: Path) -> None:
    ckpt = read_checkpoint(tiny_gemma4_checkpoint)
    text = ckpt.text_config
    assert ckpt.model_type == "gemma4"
    assert set(text["layer_types"]) == {"sliding_attention", "full_attention"}
    assert text["num_kv_shared_layers"] > 0
    facts = model_facts(ckpt, ple_bits=8)
    assert facts.ple is not None
    assert facts.ple["row_bytes"] == text["num_hidden_layers"] * text["hidden_size_per_layer_input"]
    assert 0 < facts.params_core < facts.params_total


def test_tokenizer_round_trips_text(tiny_gemma4_checkpoint: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_gemma4_checkpoint))
    ids = tokenizer("the per-layer embedding table").input_ids
    assert ids[0] == tokenizer.bos_token_id == 2
    assert tokenizer.decode(ids, skip_special_tokens=True) == "the per-layer embedding table"
    assert (
        len(tokenizer)
        == json.loads((tiny_gemma4_checkpoint / "config.json").read_text())["text_config"]["vocab_size"]
    )
