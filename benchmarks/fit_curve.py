"""The fit curve of a bundle on a virtual device: available memory → decode tok/s, major faults, PLE resident;
the knee, the kill point, the planner's minimum beside the knee, and the launch claim in numbers (how far
below the bundle's size the device can go while decode stays within the threshold).

One adb server and one virtual device of ``--ram`` (its own memory cgroup) are started for the run and
stopped at the end; ``edgeship fit`` runs once per ``--build`` and ``--method`` through the real CLI.

    .venv/bin/python benchmarks/fit_curve.py --build ple-heavy=BUILD_DIR [--build tiny=BUILD_DIR]
        [--ram 512M] [--method cgroup] [--prefill 32] [--decode 256] [--iterations 3] [--max-steps 8]
        [--work DIR] [--json-out FILE] [--calibrate [--fit FIT_JSON ...]]

Prints a Markdown table per fit (for BENCHMARKS.md) and the figures as JSON. ``--calibrate`` fits the
planner's minimum on the measured knees — knee − predicted peak = beyond_peak + bundle_read_share × the bundle
bytes read at init and not kept mapped, least squares over the bundles (two or more, of different sizes), each
at the median knee of its fits: those of this run and the fit.json files given with ``--fit`` (a knee moves by
~10% from one sweep to the next) — and writes it into the runner's entry of
edgeship/profiles/planner/calibration.yaml (``minimum``). Check it on a build it was not fitted on: a later
run without --calibrate reports the planner's error against that build's knee.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from ple_residency import edgeship  # noqa: E402
from probe_overhead import emit, machine  # noqa: E402
from vdevice_session import virtual_device  # noqa: E402

MIB = 1 << 20


def mib(value: float | None) -> str:
    return "—" if value is None else f"{value / MIB:.1f}"


def fit_table(fit: dict[str, Any]) -> str:
    lines = [
        "| available MiB | outcome | decode tok/s | vs reference | major faults | PLE resident MiB "
        "| peak PSS MiB |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    steps = [fit["baseline"], *fit["steps"]]
    for step in sorted(steps, key=lambda s: -(s["available"] or s["target_available"] or 0)):
        figures = step["figures"]
        decode = figures["decode_tok_s"]
        ratio = step["decode_ratio"]
        label = "unconstrained" if step["index"] == 0 else step["outcome"].replace("_", " ")
        lines.append(
            f"| {mib(step['available'] or step['target_available'])} | {label} | "
            f"{'—' if decode is None else f'{decode:.0f}'} | {'—' if ratio is None else f'{ratio:.0%}'} | "
            f"{'—' if figures['major_faults'] is None else figures['major_faults']} | "
            f"{mib(figures['ple_resident'])} | {mib(figures['peak_pss'])} |"
        )
    return "\n".join(lines)


def summary(name: str, fit: dict[str, Any], seconds: float | None) -> dict[str, Any]:
    knee, kill, planner = fit["knee"] or {}, fit["kill"] or {}, fit["planner"] or {}
    size = fit["bundle"]["bytes"]
    knee_bytes = knee.get("available") if knee.get("step") else None
    return {
        "build": name,
        "bundle_sha256": fit["bundle"]["sha256"][:12],
        "method": fit["method"],
        "settings": {k: fit["config"].get(k) for k in ("prefill", "decode", "iterations", "max_steps")},
        "state": fit["state"],
        "steps": len(fit["steps"]),
        "wall_s": None if seconds is None else round(seconds, 1),
        "bundle_bytes": size,
        "knee": knee_bytes,
        "knee_bracket": [knee.get("above"), knee.get("available")],
        "kill_bracket": [kill.get("not_running_at"), kill.get("runs_at")],
        "kill_outcome": kill.get("outcome"),
        "planner_minimum": planner.get("minimum"),
        "planner_peak": planner.get("peak"),
        "planner_unmapped_read": planner.get("unmapped_read"),
        "planner_runner": planner.get("runner"),
        "planner_how": planner.get("how"),
        "planner_error_vs_knee": planner.get("error_vs_knee"),
        "knee_below_bundle": None if knee_bytes is None else (size - knee_bytes) / size,
        "verdict": fit["verdict"],
        "restored": fit["restored"],
    }


def by_bundle(fits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per bundle with a knee: its knees and their median, the planner's peak and unmapped read."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for fit in fits:
        if fit["knee"]:
            groups.setdefault(fit["bundle_sha256"], []).append(fit)
    return [
        {
            "build": group[0]["build"],
            "bundle_sha256": sha,
            "settings": group[0]["settings"],
            "methods": sorted({f["method"] for f in group}),
            "knees": [f["knee"] for f in group],
            "median_knee": int(statistics.median(f["knee"] for f in group)),
            "planner_peak": group[0]["planner_peak"],
            "planner_unmapped_read": group[0]["planner_unmapped_read"],
        }
        for sha, group in groups.items()
    ]


def fit_minimum(bundles: list[dict[str, Any]]) -> tuple[int, float]:
    """(beyond_peak, bundle_read_share) by least squares over the bundles' (unmapped read, median knee −
    peak), the share held within [0, 1] and beyond_peak ≥ 0."""
    points = [(b["planner_unmapped_read"], b["median_knee"] - b["planner_peak"]) for b in bundles]
    if len({x for x, _ in points}) < 2:
        sys.exit("--calibrate needs knees of two builds or more whose bundles differ in size")
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sum((x - mean_x) ** 2 for x, _ in points)
    share = min(1.0, max(0.0, slope))
    beyond = mean_y - share * mean_x
    if beyond < 0:  # through the origin instead
        beyond = 0.0
        share = min(1.0, max(0.0, sum(x * y for x, y in points) / sum(x * x for x, _ in points)))
    return int(beyond), round(share, 4)


def calibrate(results: list[dict[str, Any]], figures: dict[str, Any]) -> dict[str, Any]:
    import yaml

    from edgeship.profiles.planner.calibration import CALIBRATION_FILE, write_calibration_file

    [runner] = {r["planner_runner"] for r in results}
    bundles = by_bundle(results)
    beyond, share = fit_minimum(bundles)
    entry = {
        "beyond_peak": beyond,
        "bundle_read_share": share,
        "source": {
            "command": figures["command"],
            "date": figures["date"],
            "machine": f"{figures['machine']['cpus']} cores, load {figures['machine']['load_avg_1m']:.1f}",
            "bundles": bundles,
        },
    }  # fmt: skip
    existing = yaml.safe_load(CALIBRATION_FILE.read_text()) or {}
    runners = dict(existing.get("runners") or {})
    if runner not in runners:
        sys.exit(f"{CALIBRATION_FILE} has no entry for {runner}: run benchmarks/calibrate_planner.py first")
    runners[runner] = {**runners[runner], "minimum": entry}
    write_calibration_file(runners)
    return {"runner": runner, "beyond_peak": beyond, "bundle_read_share": share}


def run_fits(args: argparse.Namespace, work: Path, profile: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """``edgeship fit`` of each --build by each --method on one virtual device: summaries, Markdown tables."""
    results, tables = [], []
    with virtual_device(work, "fitphone", str(profile)) as (serial, env):
        for spec in args.build:
            name, _, build = spec.partition("=")
            for method in args.method or ["cgroup"]:
                runs = work / f"runs-{name}-{method}"
                began = time.monotonic()
                result = edgeship(
                    "fit", build, "--device", serial, "--method", method, "--prefill", str(args.prefill),
                    "--decode", str(args.decode), "--iterations", str(args.iterations), "--warmup", "1",
                    "--max-steps", str(args.max_steps), "-o", str(runs), "--json", env=env,
                )  # fmt: skip
                seconds = time.monotonic() - began
                entries = json.loads(result.stdout) if result.stdout.strip() else []
                if not entries or not entries[0]["result"]:
                    sys.exit(f"fit of {name} ({method}) failed: {result.stderr.strip()[-2000:]}")
                fit = entries[0]["result"]
                results.append({**summary(name, fit, seconds), "fit_json": entries[0]["fit"]})
                tables.append(f"### {name}, {method}\n\n{fit_table(fit)}\n\n{fit['verdict']}\n")
    return results, tables


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--build", action="append", default=[], help="NAME=BUILD_DIR (repeatable)")
    parser.add_argument("--ram", default="512M", help="the virtual device's RAM (its profile)")
    parser.add_argument("--method", action="append", help="cgroup and/or balloon (default cgroup)")
    parser.add_argument("--prefill", type=int, default=32)
    parser.add_argument("--decode", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--max-steps", type=int, default=8)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--json-out", type=Path, default=None)
    parser.add_argument("--calibrate", action="store_true", help="fit the planner's minimum on the knees")
    parser.add_argument(
        "--fit",
        action="append",
        type=Path,
        default=[],
        help="an earlier fit.json to calibrate on too (repeatable)",
    )
    args = parser.parse_args()
    if not args.build and not (args.calibrate and args.fit):
        parser.error("give --build, or --calibrate with --fit")
    from edgeship.vdevice.memory import parse_size

    work = args.work or Path(tempfile.mkdtemp(prefix="edgeship-fit-curve-"))
    work.mkdir(parents=True, exist_ok=True)
    profile = work / "fitphone.yaml"
    profile.write_text(f"model: Fit Phone\ndevice: fitphone\nram_bytes: {parse_size(args.ram)}\n")
    results, tables = [], []
    began_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if args.build:
        results, tables = run_fits(args, work, profile)
    for path in args.fit:
        fit = json.loads(path.read_text())
        results.append({**summary(fit["bundle"]["build_dir"].rstrip("/").rsplit("/", 1)[-1], fit, None),
                        "fit_json": str(path)})  # fmt: skip
    figures = {
        "command": " ".join(["python", "benchmarks/fit_curve.py", *sys.argv[1:]]),
        "date": began_at,
        "machine": machine(),
        "settings": {
            "ram": args.ram, "prefill": args.prefill, "decode": args.decode, "iterations": args.iterations,
            "max_steps": args.max_steps,
        },
        "fits": results,
    }  # fmt: skip
    if args.calibrate:
        figures["calibrated"] = calibrate(results, figures)
    print("\n".join(tables))
    emit(figures, args.json_out)


if __name__ == "__main__":
    main()
