"""Wall time and peak RSS of `edgeship export` vs litert-torch's export_hf with the same settings.

Goal (issue 2): edgeship ≤ 1.05x the time and ≤ 1.0x the peak RSS of the raw call. Both run as child
processes, measured the same way: wall clock around the child, peak RSS from the kernel's rusage of the
child (os.wait4 → ru_maxrss, what /usr/bin/time reports). Runs alternate raw/edgeship so that machine noise
(other jobs on a shared box) hits both sides alike; the medians are reported.

    .venv/bin/python benchmarks/export_bench.py [--sizes tiny,ple-heavy] [--repeat 2] [--work DIR] [--json]
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
import time
from pathlib import Path

PREFILL = "32,128"
CACHE_LENGTH = 1024
RAW_RECIPE = "dynamic_wi8_afp32"  # what edgeship's `int8` preset applies to every section


def measure(argv: list[str], log: Path) -> dict[str, float]:
    """Run argv to completion; wall seconds and peak RSS (bytes) of the child."""
    with open(log, "wb") as out:
        start = time.perf_counter()
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{argv[2:4]} failed with exit code {process.returncode}; see {log}")
    return {"wall_s": wall, "peak_rss_bytes": usage.ru_maxrss * 1024}


def raw_command(ckpt: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "litert_torch.generative.export_hf",
        f"--model={ckpt}", f"--output_dir={out}",
        "--externalize_embedder=True", "--bundle_litert_lm=True",
        f"--prefill_lengths={PREFILL}", f"--cache_length={CACHE_LENGTH}",
        f"--quantization_recipe={RAW_RECIPE}",
    ]  # fmt: skip


def edgeship_command(ckpt: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "edgeship", "export", str(ckpt), "-o", str(out),
        "--recipe", "int8", "--prefill", PREFILL, "--cache-length", str(CACHE_LENGTH), "--force", "--quiet",
    ]  # fmt: skip


def bench_size(size: str, work: Path, repeat: int) -> dict:
    from edgeship.exporter.synthetic import make_checkpoint

    ckpt = work / f"ckpt-gemma4-{size}"
    if not (ckpt / "config.json").exists():
        make_checkpoint("gemma4", size, ckpt, force=True)
    runs: dict[str, list[dict[str, float]]] = {"raw": [], "edgeship": []}
    for i in range(repeat):
        order = ["raw", "edgeship"] if i % 2 == 0 else ["edgeship", "raw"]
        for side in order:
            out = work / f"out-{size}-{side}"
            shutil.rmtree(out, ignore_errors=True)
            argv = raw_command(ckpt, out) if side == "raw" else edgeship_command(ckpt, out)
            result = measure(argv, work / f"{size}-{side}-{i}.log")
            runs[side].append(result)
            print(f"{size:9} {side:8} run {i + 1}: {result['wall_s']:6.1f} s, "
                  f"{result['peak_rss_bytes'] / 2**30:5.2f} GiB", file=sys.stderr)  # fmt: skip
    summary = {}
    for side, results in runs.items():
        summary[side] = {
            "wall_s": statistics.median(r["wall_s"] for r in results),
            "peak_rss_bytes": statistics.median(r["peak_rss_bytes"] for r in results),
            "runs": results,
        }
    summary["ratio"] = {
        "wall": summary["edgeship"]["wall_s"] / summary["raw"]["wall_s"],
        "peak_rss": summary["edgeship"]["peak_rss_bytes"] / summary["raw"]["peak_rss_bytes"],
    }
    bundle = work / f"out-{size}-edgeship" / "model.litertlm"
    summary["bundle_bytes"] = bundle.stat().st_size if bundle.exists() else None
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="tiny,ple-heavy")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--work", type=Path, default=None, help="Folder for checkpoints/outputs (default: temp)."
    )
    parser.add_argument("--json", action="store_true", help="Print the results as JSON on stdout.")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="edgeship-export-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "settings": {"prefill": PREFILL, "cache_length": CACHE_LENGTH, "recipe": "int8 / " + RAW_RECIPE},
        "sizes": {size: bench_size(size, work, args.repeat) for size in args.sizes.split(",")},
    }
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        header = ("size", "raw s", "edgeship s", "x time", "raw GiB", "edgeship GiB", "x RSS")
        print("{:10} {:>8} {:>11} {:>7} {:>8} {:>13} {:>6}".format(*header))
        for size, r in results["sizes"].items():
            raw, ours = r["raw"], r["edgeship"]
            print(
                f"{size:10} {raw['wall_s']:8.1f} {ours['wall_s']:11.1f} {r['ratio']['wall']:7.3f}"
                f" {r['raw']['peak_rss_bytes'] / 2**30:8.2f} {r['edgeship']['peak_rss_bytes'] / 2**30:13.2f}"
                f" {r['ratio']['peak_rss']:6.3f}"
            )
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
