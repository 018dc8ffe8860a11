"""Probe overhead: decode tokens/s of a runner with the probe sampling every 50 ms vs the runner alone.

Goal: probed / alone ≥ 0.98 (medians over interleaved runs on the same bundle and machine). Pairs alternate
their order (alone-probed, probed-alone, …) so that drift of a shared machine does not favour one side. The
script also reports what the probe itself measured about its cost: the mean time of one /proc/PID/status read,
of one smaps_rollup read and of one /proc/PID/smaps read, how many of each the adaptive rates allowed, and the
probe's CPU time as a share of wall time, and the cost of the exit sample (the probe traces the runner).

    .venv/bin/python benchmarks/probe_overhead.py [--build BUILD_DIR] [--pairs 6] [--decode 256] [--threads 1]
        [--runner native|host-python]

Without --build it generates the ple-heavy checkpoint and exports it (int8) under --work (about a minute).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edgeship.android_harness.probe import build_probe, probe_command, read_probe_output  # noqa: E402
from edgeship.android_harness.runners import NATIVE, RunConfig, get_adapter, resolve_runner  # noqa: E402


def edgeship(*args: str, timeout: float = 3600) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edgeship", *args], capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        sys.exit(f"edgeship {args[0]} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")


def make_build(work: Path, size: str) -> Path:
    checkpoint, build = work / f"ckpt-{size}", work / f"build-{size}-int8"
    if not (build / "manifest.json").is_file():
        edgeship(
            "testing", "make-checkpoint", "--arch", "gemma4", "--size", size, "-o", str(checkpoint), "--force"
        )
        edgeship("export", str(checkpoint), "-o", str(build), "--recipe", "int8", "--force", "--quiet")
    return build


def runner_argv(which: str, bundle: Path, cfg: RunConfig) -> tuple[list[str], dict[str, str]]:
    """The argv of edgeship's runner ``which`` (native, host-python) on ``bundle``, and its environment (the
    native runner finds the wheel's library through LD_LIBRARY_PATH, as on a device)."""
    runner = resolve_runner("x86_64", which, {})
    argv = get_adapter(runner.name).build_command(str(bundle), cfg, runner_path=str(runner.path))
    env = {**os.environ, **runner.device_env([str(extra.parent) for extra in runner.extra_files])}
    return argv, env


def run_alone(argv: list[str], out: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=3600, env=env)
    wall = time.monotonic() - started
    if completed.returncode != 0:
        sys.exit(f"runner failed ({completed.returncode}): {completed.stderr[-2000:]}")
    metrics = get_adapter("litert_lm_main").parse(completed.stdout, completed.stderr)
    return {"decode_tok_s": metrics.decode_tok_s, "prefill_tok_s": metrics.prefill_tok_s, "wall_s": wall}


def run_probed(
    probe: Path, argv: list[str], bundle: Path, out: Path, interval_ms: int, env: dict[str, str] | None = None
) -> dict[str, Any]:
    command = probe_command(str(probe), str(out), argv, interval_ms=interval_ms, maps=[str(bundle)])
    completed = subprocess.run(command, capture_output=True, text=True, timeout=3600, env=env)
    run = read_probe_output(out)
    if completed.returncode != 0 or not run.ok:
        sys.exit(f"probed runner failed ({completed.returncode}): {run.stderr()[-2000:]}")
    metrics = get_adapter("litert_lm_main").parse(run.stdout(), run.stderr())
    probe_cpu = run.raw.get("probe_rusage") or {}
    return {
        "decode_tok_s": metrics.decode_tok_s,
        "prefill_tok_s": metrics.prefill_tok_s,
        "wall_s": run.wall_s,
        "samples": len(run.samples),
        "sample_cost_us_mean": run.sample_cost_us_mean,
        "rollup_samples": run.rollup_samples,
        "rollup_cost_us_mean": run.rollup_cost_us_mean,
        "smaps_samples": run.smaps_samples,
        "smaps_cost_us_mean": run.smaps_cost_us_mean,
        "exit_sample_cost_us": (run.raw.get("exit_sample") or {}).get("cost_us"),
        "traced": run.traced,
        "probe_cpu_s": (probe_cpu.get("utime_s") or 0) + (probe_cpu.get("stime_s") or 0),
    }


def machine() -> dict[str, Any]:
    """What the figures were measured on, and how loaded it was (the box is shared)."""
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_avg_1m": os.getloadavg()[0],
    }


def emit(figures: dict[str, Any], json_out: Path | None) -> None:
    text = json.dumps(figures, indent=2, default=str)
    if json_out:
        json_out.write_text(text + "\n")
    print(text)


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "stdev": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--build", type=Path, help="an exported BUILD_DIR (default: export the ple-heavy one)"
    )
    parser.add_argument(
        "--size", default="ple-heavy", help="checkpoint size to export when --build is not given"
    )
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgeship-probe-bench")
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--prefill", type=int, default=32)
    parser.add_argument("--decode", type=int, default=256)
    parser.add_argument(
        "--threads", type=int, default=1, help="runner CPU threads (leave a core to the probe)"
    )
    parser.add_argument("--interval-ms", type=int, default=50)
    parser.add_argument("--runner", default=NATIVE, help="edgeship's runner: native (default) or host-python")
    parser.add_argument("--json-out", type=Path, help="also write the figures here")
    args = parser.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    build = args.build or make_build(args.work, args.size)
    manifest = json.loads((build / "manifest.json").read_text())
    bundle = build / manifest["bundle"]["file"]
    probe = build_probe("x86_64")
    cfg = RunConfig(prefill=args.prefill, decode=args.decode, threads=args.threads)
    argv, env = runner_argv(args.runner, bundle, cfg)

    run_alone(argv, args.work / "warmup", env)  # page cache (and python imports) warm for both sides
    alone: list[dict[str, Any]] = []
    probed: list[dict[str, Any]] = []
    for pair in range(args.pairs):
        order = ("alone", "probed") if pair % 2 == 0 else ("probed", "alone")
        for side in order:
            out = args.work / f"pair{pair}-{side}"
            if side == "alone":
                alone.append(run_alone(argv, out, env))
            else:
                probed.append(run_probed(probe, argv, bundle, out, args.interval_ms, env))
            last = (alone if side == "alone" else probed)[-1]
            print(f"pair {pair} {side:6s} decode {last['decode_tok_s']:.2f} tok/s", file=sys.stderr)

    alone_decode = summary([r["decode_tok_s"] for r in alone])
    probed_decode = summary([r["decode_tok_s"] for r in probed])
    figures = {
        "machine": machine(),
        "bundle": {"path": str(bundle), "bytes": bundle.stat().st_size},
        "config": {**vars(args), "build": str(build), "work": str(args.work)},
        "decode_tok_s": {"alone": alone_decode, "probed": probed_decode},
        "ratio_probed_over_alone": probed_decode["median"] / alone_decode["median"],
        # Each pair ran back to back, so its ratio cancels slow drift of a shared machine.
        "median_pair_ratio": statistics.median(
            p["decode_tok_s"] / a["decode_tok_s"] for a, p in zip(alone, probed, strict=True)
        ),
        "goal": 0.98,
        "probe_costs": {
            "sample_cost_us_mean": statistics.mean(r["sample_cost_us_mean"] for r in probed),
            "rollup_cost_us_mean": statistics.mean(r["rollup_cost_us_mean"] or 0 for r in probed),
            "rollup_samples_mean": statistics.mean(r["rollup_samples"] for r in probed),
            "smaps_cost_us_mean": statistics.mean(r["smaps_cost_us_mean"] or 0 for r in probed),
            "smaps_samples_mean": statistics.mean(r["smaps_samples"] for r in probed),
            "samples_mean": statistics.mean(r["samples"] for r in probed),
            "exit_sample_cost_us_mean": statistics.mean(r["exit_sample_cost_us"] or 0 for r in probed),
            "traced_runs": sum(1 for r in probed if r["traced"]),
            "probe_cpu_share_of_wall": statistics.mean(r["probe_cpu_s"] / r["wall_s"] for r in probed),
        },
        "runs": {"alone": alone, "probed": probed},
    }
    emit(figures, args.json_out)


if __name__ == "__main__":
    main()
