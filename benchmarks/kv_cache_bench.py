"""KV cache layouts on a virtual device: ring-buffer sliding caches vs full caches, predicted and measured.

Exports one checkpoint twice at one cache length — the default (sliding layers get a ring buffer of their
window) and ``--no-sliding-cache`` (every layer holds the whole cache) — profiles both on a virtual device
with `edgeship profile` as a user runs it, and reports per layout: the KV bytes the formula of
reference/gemma-ple-kv.md §5 predicts (owners = non-shared layers; S = min(ctx, W) for capped sliding layers;
2 · kv_heads · head_dim · S · 4 bytes fp32), the bytes the manifest read from the graph, the measured peak
anonymous memory and decode tokens/s. Goal: the difference in anonymous memory between the layouts matches the
formula's difference within 10%. Greedy continuations of both bundles (host LiteRT-LM engine, top-1 sampling,
past the window) are compared token by token.

    .venv/bin/python benchmarks/kv_cache_bench.py [--checkpoint /work/cache/gemma3-270m] [--cache-length 4096]
        [--decode 600] [--iterations 2] [--builds RING_DIR,FULL_DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ple_residency import check, edgeship
from vdevice_session import virtual_device

from edgeship.android_harness.profile.options import WEIGHT_CACHE_KEEP, WEIGHT_CACHE_MODES

PROMPT = "Once upon a time, in a small village by the sea,"


def formula_kv_bytes(attention: dict[str, Any], layers: int, ctx: int, ring: int | None) -> int:
    """gemma-ple-kv.md §5.1, fp32 (litert-torch's default cache dtype)."""
    owners = layers - (attention.get("kv_shared_layers") or 0)
    total = 0
    for i in range(owners):
        layer_type = (attention.get("layer_types") or ["full_attention"] * layers)[i]
        sliding = layer_type == "sliding_attention"
        head_dim = attention["head_dim"] if sliding else attention["global_head_dim"]
        positions = min(ctx, ring) if sliding and ring else ctx
        total += 2 * attention["num_key_value_heads"] * head_dim * positions * 4
    return total


def greedy_tokens(bundle: Path, max_tokens: int) -> list[int]:
    import litert_lm

    engine = litert_lm.Engine(str(bundle), backend=litert_lm.interfaces.CPU(), max_num_tokens=max_tokens)
    session = engine.create_session(
        apply_prompt_template=False, sampler_config=litert_lm.interfaces.SamplerConfig(top_k=1)
    )
    session.run_prefill([PROMPT])
    text = session.run_decode().texts[0]
    tokens = engine.tokenize(text)
    session.close()
    del engine
    return tokens


def export(checkpoint: Path, out: Path, cache_length: int, ring: bool, env: dict[str, str]) -> Path:
    if not (out / "manifest.json").is_file():
        flags = [] if ring else ["--no-sliding-cache"]
        check(
            edgeship(
                "export", str(checkpoint), "-o", str(out), "--cache-length", str(cache_length),
                "--force", "--quiet", *flags, env=env,
            ),
            f"export {out.name}",
        )  # fmt: skip
    return out


def profile(build: Path, serial: str, args: argparse.Namespace, env: dict[str, str], runs: Path) -> dict:
    result = check(
        edgeship(
            "profile", str(build), "--device", serial, "--prefill", "32", "--decode", str(args.decode),
            "--iterations", str(args.iterations), "--warmup", "1", "--max-tokens", str(args.cache_length),
            "--threads", str(args.threads), "--weight-cache", args.weight_cache, "-o", str(runs), "--json",
            env=env,
        ),
        f"profile {build.name}",
    )  # fmt: skip
    [entry] = json.loads(result.stdout)
    return json.loads(Path(entry["profile"]).read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("/work/cache/gemma3-270m"))
    parser.add_argument("--cache-length", type=int, default=4096)
    parser.add_argument("--decode", type=int, default=600)
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--profile", default="vflagship", help="virtual device profile")
    # One runner thread by default: the memory figures are the same at 1 and 4 threads (BENCHMARKS.md, KV
    # cache layouts), and on a 2-core box one thread keeps the layouts' tok/s comparable beside other work.
    parser.add_argument("--threads", type=int, default=1, help="runner CPU threads")
    parser.add_argument("--weight-cache", default=WEIGHT_CACHE_KEEP, choices=WEIGHT_CACHE_MODES)
    parser.add_argument("--builds", help="RING_DIR,FULL_DIR already exported (default: export both)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgeship-kv-bench")
    parser.add_argument(
        "--skip-greedy",
        action="store_true",
        help="Profiles only (the greedy comparison decodes the whole cache).",
    )
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "EDGESHIP_HOME": str(args.work / "home")}
    if args.builds:
        ring_dir, full_dir = (Path(p) for p in args.builds.split(","))
    else:
        ring_dir = export(args.checkpoint, args.work / "ring", args.cache_length, True, env)
        full_dir = export(args.checkpoint, args.work / "full", args.cache_length, False, env)
    builds = {"ring": ring_dir, "full": full_dir}
    rows: dict[str, dict[str, Any]] = {}
    with virtual_device(args.work, "kv-bench", args.profile) as (serial, device_env):
        for layout, build in builds.items():
            manifest = json.loads((build / "manifest.json").read_text())
            attention = manifest["model"]["attention"]
            layers = len(attention["layer_types"])
            kv = manifest["export"]["kv_layout"]
            measured = profile(build, serial, args, {**device_env, **env}, args.work / f"runs-{layout}")
            summary = measured["summary"]
            rows[layout] = {
                "layout": kv["layout"],
                "formula_kv_bytes": formula_kv_bytes(
                    attention, layers, args.cache_length, kv["sliding_ring_buffer"]
                ),
                "manifest_kv_bytes": kv["bytes"],
                "peak_anon_median": summary["memory"]["peak_anon"]["median"],
                "peak_anon_runs": [
                    it["memory"]["peak_anon"] for it in measured["iterations"] if not it["warmup"]
                ],
                "peak_rss_median": summary["memory"]["peak_rss"]["median"],
                "decode_tok_s_median": summary["latency"]["decode_tok_s"]["median"],
            }
    predicted = rows["full"]["formula_kv_bytes"] - rows["ring"]["formula_kv_bytes"]
    measured = rows["full"]["peak_anon_median"] - rows["ring"]["peak_anon_median"]
    tokens = {
        layout: [] if args.skip_greedy else greedy_tokens(build / "model.litertlm", args.cache_length)
        for layout, build in builds.items()
    }
    same = 0
    while (
        same < min(len(tokens["ring"]), len(tokens["full"])) and tokens["ring"][same] == tokens["full"][same]
    ):
        same += 1
    report = {
        "checkpoint": str(args.checkpoint),
        "cache_length": args.cache_length,
        "prefill": 32,
        "decode": args.decode,
        "rows": rows,
        "anon_difference": measured,
        "formula_difference": predicted,
        "difference_ratio": measured / predicted if predicted else None,
        "greedy": {
            "ring_tokens": len(tokens["ring"]),
            "full_tokens": len(tokens["full"]),
            "same_prefix": same,
        },
    }
    (args.work / "kv_results.json").write_text(json.dumps(report, indent=2) + "\n")
    sys.stdout.write(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
