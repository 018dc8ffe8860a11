"""Per preset: bundle size, PLE section size, verify's statistics and wall time; quantize vs export time.

From one float build of a checkpoint, every preset is made with `edgeship quantize` (timed) and checked with
`edgeship verify` against the checkpoint (timed, 256 positions by default, `--json`). Optionally one preset is
also exported from the checkpoint (`--export-recipe int8`) to compare quantize's time with the export it
replaces. Each command runs as a child process, measured like benchmarks/export_bench.py: wall clock around
the child, peak RSS from os.wait4. Verify's exit code 1 (a threshold missed) is a result here, not a failure.

    .venv/bin/python benchmarks/verify_bench.py --float-build BUILD --checkpoint CKPT --work DIR \\
        [--presets float,int8,...] [--positions 256] [--export-recipe int8] [--json OUT.json]

The figures and the machine's load go into BENCHMARKS.md; the default thresholds of
edgeship/quantize/thresholds.py were calibrated from this script's output on Gemma 3 270M.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

PRESETS = ("float", "int8", "int4", "int4-b32", "int4-b64", "mixed48", "ple4-main8")
PLE_KIND = "tf_lite_per_layer_embedder"


def run(argv: list[str], log: Path, allowed: tuple[int, ...] = (0,)) -> dict[str, float | int]:
    with open(log, "wb") as out:
        start = time.perf_counter()
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code not in allowed:
        raise SystemExit(f"{' '.join(argv[2:4])} failed with exit code {code}; see {log}")
    return {"wall_s": round(wall, 2), "peak_rss_bytes": usage.ru_maxrss * 1024, "exit": code}


def edgeship(*args: str) -> list[str]:
    return [sys.executable, "-m", "edgeship", *args]


def bench_preset(preset: str, args: argparse.Namespace, work: Path) -> dict:
    build = work / preset
    quantize = run(
        edgeship(
            "quantize", str(args.float_build), "--recipe", preset, "-o", str(build), "--force", "--quiet"
        ),
        work / f"{preset}.quantize.log",
    )
    verify_log = work / f"{preset}.verify.json"
    verify = run(
        edgeship(
            "verify", str(build), "--checkpoint", str(args.checkpoint), "--positions", str(args.positions),
            "--json", "--quiet",
        ),
        verify_log,
        allowed=(0, 1),
    )  # fmt: skip
    text = verify_log.read_text()
    accuracy = json.loads(text[: text.rindex("}") + 1])["accuracy"]
    manifest = json.loads((build / "manifest.json").read_text())
    ple = next((s["bytes"] for s in manifest["sections"] if s["kind"] == PLE_KIND), None)
    stats = accuracy["statistics"]
    return {
        "preset": preset,
        "bundle_bytes": manifest["bundle"]["bytes"],
        "ple_section_bytes": ple,
        "kld_mean": stats["kld"]["mean"],
        "kld_median": stats["kld"]["median"],
        "kld_p99": stats["kld"]["p99"],
        "kld_p999": stats["kld"]["p999"],
        "kld_max": stats["kld"]["max"],
        "top1": stats["top1"]["agreement"],
        "delta_p_rms": stats["delta_p_rms"],
        "buckets": {
            name: {"kld_mean": b["kld"]["mean"], "top1": b["top1"]["agreement"], "positions": b["positions"]}
            for name, b in accuracy["buckets"].items()
        },
        "verdict": accuracy["verdict"],
        "bits_per_weight": {s["kind"]: s["bits_per_weight"] for s in manifest["quantized_from"]["sections"]},
        "quantize": quantize,
        "verify": verify,
        "verify_timing": accuracy["timing"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--float-build", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True, help="Folder for the preset builds and logs.")
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument("--positions", type=int, default=256)
    parser.add_argument("--export-recipe", help="Also export the checkpoint with this recipe (timed).")
    parser.add_argument("--json", type=Path, help="Write the results here.")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    for preset in args.presets.split(","):
        row = bench_preset(preset, args, args.work)
        rows.append(row)
        print(json.dumps(row), flush=True)
    result: dict = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_avg": os.getloadavg()},
        "float_build": str(args.float_build),
        "checkpoint": str(args.checkpoint),
        "rows": rows,
    }
    if args.export_recipe:
        out = args.work / f"export-{args.export_recipe}"
        result["export"] = {
            "recipe": args.export_recipe,
            **run(
                edgeship("export", str(args.checkpoint), "-o", str(out), "--recipe", args.export_recipe,
                         "--force", "--quiet"),
                args.work / "export.log",
            ),
        }  # fmt: skip
        shutil.rmtree(out, ignore_errors=True)
    result["machine"]["load_avg_end"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print("| preset | bundle | PLE section | mean KLD | p99.9 KLD | top-1 | RMS Δp | verify s | quantize s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        ple = f"{r['ple_section_bytes'] / 2**20:.1f} MiB" if r["ple_section_bytes"] else "-"
        print(
            f"| {r['preset']} | {r['bundle_bytes'] / 2**20:.1f} MiB | {ple} | {r['kld_mean']:.4g} |"
            f" {r['kld_p999']:.4g} | {r['top1'] * 100:.1f}% | {r['delta_p_rms'] * 100:.2f}% |"
            f" {r['verify']['wall_s']:.1f} | {r['quantize']['wall_s']:.1f} |"
        )


if __name__ == "__main__":
    main()
