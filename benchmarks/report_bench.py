"""Time `edgeship report`, `gate` and `plan` where users wait: a bench of 10 devices × 5 bundles × 10 runs.

Goals (issue 10): report over 50 profile.json files with real timelines ≤ 3 s; gate and plan ≤ 1 s; none of
them imports torch, tensorflow or litert_torch. The 50 profiles are real: the tiny and ple-heavy builds are
profiled once on a virtual device with 10 runs each (real probe timelines, maps and results), then each
profile folder is copied under 10 device identities and 5 bundle identities (sha256, recipe), which is all
that differs between phones of a bench to these commands.

    .venv/bin/python benchmarks/report_bench.py [--repeats 5] [--work DIR]

Wall times are of the whole command (`python -m edgeship …`: interpreter start-up and imports included),
medians of the repeats, with the CPU seconds the command and its plot workers used (on a box shared with
other work the wall time says more about the others; `report` draws its plots on every core, so on a quiet
2-core box its wall time is below its CPU time). `--reuse`: the source runs already under --work.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ple_residency import check, edgeship  # noqa: E402
from vdevice_session import virtual_device  # noqa: E402

BUNDLES = 5
DEVICES = 10


def profile_sources(work: Path, iterations: int) -> dict[str, Path]:
    from tests.fixtures.builds import cached_build

    builds = {size: cached_build("gemma4", size, "int8") for size in ("tiny", "ple-heavy")}
    sources = {}
    with virtual_device(work, "report-bench") as (serial, env):
        for size, build in builds.items():
            result = check(
                edgeship("profile", str(build), "--device", serial, "--prefill", "32", "--decode", "256",
                         "--iterations", str(iterations), "--warmup", "1", "--smaps-interval-ms", "50",
                         "-o", str(work / "source"), "--json", env=env),
                f"profile {size}",
            )  # fmt: skip
            sources[size] = Path(json.loads(result.stdout)[0]["profile"]).parent
    return sources | {"builds": builds}  # type: ignore[return-value]


def reuse_sources(work: Path) -> dict[str, Path]:
    from tests.fixtures.builds import cached_build

    found = {}
    for profile in sorted((work / "source").glob("*/*/profile.json")):
        data = json.loads(profile.read_text())
        size = "tiny" if data["bundle"]["bytes"] < 10**7 else "ple-heavy"
        found[size] = profile.parent
    if set(found) != {"tiny", "ple-heavy"}:
        sys.exit(f"no source profiles under {work / 'source'}; run without --reuse")
    return found | {"builds": {size: cached_build("gemma4", size, "int8") for size in found}}  # type: ignore[return-value]


def make_bench(sources: dict[str, Path], runs: Path) -> int:
    """10 devices × 5 bundles of real profile folders (raw outputs included), identities rewritten."""
    shutil.rmtree(runs, ignore_errors=True)
    count = 0
    recipes = ("int8", "int4", "int8-ple4", "mixed", "float")
    for d in range(DEVICES):
        for b in range(BUNDLES):
            source = sources["ple-heavy" if b % 2 == 0 else "tiny"]
            sha = f"{b:02x}" * 32
            target = runs / f"127.0.0.1_{41000 + d}" / sha[:12]
            shutil.copytree(source, target)
            data = json.loads((target / "profile.json").read_text())
            data["device"].update(serial=f"127.0.0.1:{41000 + d}", model=f"Bench Phone {d}")
            data["bundle"].update(sha256=sha, recipe=recipes[b])
            (target / "profile.json").write_text(json.dumps(data, indent=2) + "\n")
            count += 1
    return count


def timed(args: list[str], repeats: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds (user + system of the command and its workers) of each repeat."""
    walls, cpus = [], []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "edgeship", *args], capture_output=True, text=True)
        walls.append(time.perf_counter() - began)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if result.returncode not in (0, 1, 3):
            sys.exit(f"edgeship {' '.join(args)} failed: {result.stderr}")
    return walls, cpus


def main() -> None:
    from tests.profiles.test_light_imports import imported_after

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgeship-report-bench")
    parser.add_argument("--reuse", action="store_true", help="reuse the source profiles already under --work")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    sources = reuse_sources(args.work) if args.reuse else profile_sources(args.work, args.iterations)
    runs = args.work / "bench-runs"
    count = make_bench(sources, runs)
    out = args.work / "out"
    report_args = [
        "report",
        str(runs),
        "-o",
        str(out / "r.html"),
        "--md",
        str(out / "r.md"),
        "--json",
        str(out / "r.json"),
    ]
    gate_args = ["gate", "--baseline", str(runs), "--current", str(runs), "--json"]
    plan_args = ["plan", str(sources["builds"]["ple-heavy"]), "--ram", "4GB", "--ram", "8GB", "--json"]  # type: ignore[index]
    rows = {}
    for name, command in (("report", report_args), ("gate", gate_args), ("plan", plan_args)):
        walls, cpus = timed(command, args.repeats)
        rows[name] = {
            "wall_median_s": round(statistics.median(walls), 3),
            "cpu_median_s": round(statistics.median(cpus), 3),
            "walls_s": [round(w, 3) for w in walls],
            "load_1min": round(os.getloadavg()[0], 1),
            "heavy_imports": imported_after(command),
        }
    summary = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_1min": round(os.getloadavg()[0], 1),
        "profiles": count,
        "iterations_per_profile": args.iterations,
        "html_bytes": (out / "r.html").stat().st_size,
        "results": rows,
    }
    sys.stdout.write(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
