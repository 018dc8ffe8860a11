"""Export memory, time and quality: `edgeship export` (frugal path by default) vs litert-torch's export_hf.

Goals (issue 12): on a real Gemma 3 270M at int8, edgeship's peak RSS ≤ 0.5x the raw call's, wall time
≤ 1.0x, its bundle's LiteRT-LM greedy continuation agreeing with transformers at least as often as the raw
bundle's (same prompts), section sizes within 1%; the same table for the synthetic tiny, ple-heavy and
ple-full Gemma 4. Also edgeship's own peak prediction (exporter/memory.py) against each measured peak (25%).

Every side runs as a child process, measured the same way: wall clock around it, and peak memory as the
largest of (a) the kernel's ru_maxrss for the process tree (wait4: the largest single process) and (b) the sum
of VmRSS over the live process tree sampled every 100 ms — the frugal path runs a parent plus one child at a
time, so (b) is its honest figure. Sides alternate between repeats so machine noise hits both alike.

    .venv/bin/python benchmarks/export_bench.py [--sizes tiny,ple-heavy,ple-full,gemma3-270m]
        [--sides raw,frugal,in-process] [--repeat 1] [--work DIR] [--json]

gemma3-270m needs the converted checkpoint: `python benchmarks/gemma3_270m.py` (/work/cache/gemma3-270m).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PREFILL = "32,128"
CACHE_LENGTH = 1024
RAW_RECIPE = "dynamic_wi8_afp32"  # what edgeship's `int8` preset applies to every section
REAL_CHECKPOINT = Path("/work/cache/gemma3-270m")
PROMPTS = (
    "The capital of France is",
    "Water boils at a temperature of",
    "The three primary colors are",
    "In 1969, the first person to walk on the moon was",
    "A haiku is a short poem that",
    "To make a cup of tea, first",
    "The largest planet in our solar system is",
    "Photosynthesis is the process by which plants",
)
COMPARED_TOKENS = 16


def _tree(pid: int) -> list[int]:
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return pids
    for child in children:
        pids += _tree(int(child))
    return pids


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def measure(argv: list[str], log: Path) -> dict[str, float]:
    """Run argv to completion: wall seconds, ru_maxrss and the sampled peak of the tree's summed RSS."""
    peak = [0]
    with open(log, "wb") as out:
        start = time.perf_counter()
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], sum(_rss(p) for p in _tree(process.pid)))
                done.wait(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(argv[:5])}... failed with exit code {code}; see {log}")
    maxrss = usage.ru_maxrss * 1024
    return {
        "wall_s": wall,
        "maxrss_bytes": maxrss,
        "tree_rss_bytes": peak[0],
        "peak_bytes": max(maxrss, peak[0]),
    }


def raw_command(ckpt: Path, out: Path, externalize: bool) -> list[str]:
    return [
        sys.executable, "-m", "litert_torch.generative.export_hf",
        f"--model={ckpt}", f"--output_dir={out}",
        f"--externalize_embedder={externalize}", "--bundle_litert_lm=True",
        f"--prefill_lengths={PREFILL}", f"--cache_length={CACHE_LENGTH}",
        f"--quantization_recipe={RAW_RECIPE}",
    ]  # fmt: skip


def edgeship_command(ckpt: Path, out: Path, path: str) -> list[str]:
    return [
        sys.executable, "-m", "edgeship", "export", str(ckpt), "-o", str(out),
        "--recipe", "int8", "--prefill", PREFILL, "--cache-length", str(CACHE_LENGTH),
        "--memory-path", path, "--force", "--quiet", "--ignore-memory-check",
    ]  # fmt: skip


def checkpoint_for(size: str, work: Path) -> Path:
    if size == "gemma3-270m":
        if not (REAL_CHECKPOINT / "READY").is_file():
            raise SystemExit(f"no {REAL_CHECKPOINT}/READY: run benchmarks/gemma3_270m.py first")
        return REAL_CHECKPOINT
    from edgeship.exporter.synthetic import make_checkpoint

    ckpt = work / f"ckpt-gemma4-{size}"
    if not (ckpt / "config.json").exists():
        make_checkpoint("gemma4", size, ckpt, force=True)
    return ckpt


def predictions(ckpt: Path) -> dict[str, int]:
    from edgeship.exporter import litert, memory
    from edgeship.exporter.checkpoint import read_checkpoint
    from edgeship.quantize.recipes import resolve_recipe

    checkpoint = read_checkpoint(ckpt)
    externalize = litert.default_externalize_embedder(checkpoint)
    return {
        path: memory.predict_peak(checkpoint, resolve_recipe("int8"), path, externalize).peak_bytes
        for path in memory.PATHS
    }


def section_sizes(bundle: Path) -> dict[str, int]:
    from edgeship.exporter.litertlm import read_header

    return {s.kind: s.bytes for s in read_header(bundle).sections}


def reference_continuations(ckpt: Path) -> list[list[int]]:
    """transformers' greedy continuation of each prompt (token ids), float32 on the CPU."""
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(ckpt))
    model = transformers.AutoModelForCausalLM.from_pretrained(str(ckpt), dtype=torch.float32).eval()
    out = []
    with torch.no_grad():
        for prompt in PROMPTS:
            ids = tokenizer(prompt, return_tensors="pt").input_ids
            generated = model.generate(ids, max_new_tokens=COMPARED_TOKENS, do_sample=False)
            out.append(generated[0, ids.shape[1] :].tolist())
    return out


def engine_continuations(bundle: Path, ckpt: Path) -> list[list[int]]:
    """The bundle's greedy continuation of each prompt in the real LiteRT-LM engine, as token ids."""
    import litert_lm
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(ckpt))
    engine = litert_lm.Engine(str(bundle), backend=litert_lm.interfaces.CPU(), max_num_tokens=96)
    out = []
    for prompt in PROMPTS:
        session = engine.create_session(
            apply_prompt_template=False, sampler_config=litert_lm.interfaces.SamplerConfig(top_k=1)
        )
        session.run_prefill([prompt])
        text = session.run_decode().texts[0]
        out.append(tokenizer(text, add_special_tokens=False).input_ids[:COMPARED_TOKENS])
        session.close()
    del engine
    return out


def agreement(reference: list[list[int]], got: list[list[int]]) -> dict[str, float]:
    """Prompts whose first COMPARED_TOKENS tokens match exactly, and the mean matching prefix."""
    prefixes = []
    for ref, ours in zip(reference, got, strict=True):
        n = 0
        while n < min(len(ref), len(ours)) and ref[n] == ours[n]:
            n += 1
        prefixes.append(n)
    return {
        "exact": sum(p >= COMPARED_TOKENS for p in prefixes),
        "prompts": len(prefixes),
        "mean_prefix": statistics.mean(prefixes),
    }


def bench_size(size: str, work: Path, repeat: int, sides: list[str]) -> dict:
    ckpt = checkpoint_for(size, work)
    from edgeship.exporter import litert
    from edgeship.exporter.checkpoint import read_checkpoint

    externalize = litert.default_externalize_embedder(read_checkpoint(ckpt))
    runs: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    for i in range(repeat):
        order = sides if i % 2 == 0 else list(reversed(sides))
        for side in order:
            out = work / f"out-{size}-{side}"
            shutil.rmtree(out, ignore_errors=True)
            argv = raw_command(ckpt, out, externalize) if side == "raw" else edgeship_command(ckpt, out, side)
            result = measure(argv, work / f"{size}-{side}-{i}.log")
            runs[side].append(result)
            gb = {k: v / 1e9 for k, v in result.items() if k.endswith("_bytes")}
            print(
                f"{size:12} {side:10} run {i + 1}: {result['wall_s']:6.1f} s, peak {gb['peak_bytes']:5.2f}"
                f" GB (tree {gb['tree_rss_bytes']:5.2f}, maxrss {gb['maxrss_bytes']:5.2f})",
                file=sys.stderr,
                flush=True,
            )
    summary: dict = {"predicted_peak_bytes": predictions(ckpt), "sides": {}}
    for side, results in runs.items():
        bundle = work / f"out-{size}-{side}" / "model.litertlm"
        summary["sides"][side] = {
            "wall_s": statistics.median(r["wall_s"] for r in results),
            "peak_bytes": statistics.median(r["peak_bytes"] for r in results),
            "runs": results,
            "sections": section_sizes(bundle),
        }
    if size == "gemma3-270m":
        reference = reference_continuations(ckpt)
        for side in sides:
            bundle = work / f"out-{size}-{side}" / "model.litertlm"
            summary["sides"][side]["agreement"] = agreement(reference, engine_continuations(bundle, ckpt))
    if "raw" in runs:
        raw = summary["sides"]["raw"]
        for side in sides:
            ours = summary["sides"][side]
            ours["x_peak"] = ours["peak_bytes"] / raw["peak_bytes"]
            ours["x_wall"] = ours["wall_s"] / raw["wall_s"]
            ours["max_section_diff"] = max(
                abs(ours["sections"].get(kind, 0) - n) / n for kind, n in raw["sections"].items() if n
            )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="tiny,ple-heavy,ple-full,gemma3-270m")
    parser.add_argument("--sides", default="raw,frugal")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--work", type=Path, default=None, help="Folder for checkpoints/outputs (default: temp)."
    )
    parser.add_argument("--json", action="store_true", help="Print the results as JSON on stdout.")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="edgeship-export-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    sides = args.sides.split(",")
    results = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "load_average_start": os.getloadavg(),
        "settings": {"prefill": PREFILL, "cache_length": CACHE_LENGTH, "recipe": "int8 / " + RAW_RECIPE},
        "sizes": {},
    }
    for size in args.sizes.split(","):
        results["sizes"][size] = bench_size(size, work, args.repeat, sides)
        (work / "results.json").write_text(json.dumps(results, indent=2))  # partial results survive a crash
    results["load_average_end"] = os.getloadavg()
    (work / "results.json").write_text(json.dumps(results, indent=2))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    header = ("size", "side", "wall s", "peak GB", "x peak", "x wall", "sections", "agree")
    print("{:12} {:10} {:>7} {:>8} {:>7} {:>7} {:>9} {}".format(*header))
    for size, r in results["sizes"].items():
        for side, s in r["sides"].items():
            a = s.get("agreement")
            agree = f"{a['exact']}/{a['prompts']} ({a['mean_prefix']:.1f})" if a else "-"
            print(
                f"{size:12} {side:10} {s['wall_s']:7.1f} {s['peak_bytes'] / 1e9:8.2f}"
                f" {s.get('x_peak', 1):7.3f}"
                f" {s.get('x_wall', 1):7.3f} {s.get('max_section_diff', 0) * 100:8.2f}% {agree}"
            )
        pred = {k: v / 1e9 for k, v in r["predicted_peak_bytes"].items()}
        print(f"{'':12} predicted: in-process {pred['in-process']:.2f} GB, frugal {pred['frugal']:.2f} GB")


if __name__ == "__main__":
    main()
