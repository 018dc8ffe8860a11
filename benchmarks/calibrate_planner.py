"""Recalibrate the memory planner for a runner: profile the tiny and ple-heavy builds, refit, write.

The planner (edgeship/profiles/planner) predicts peak PSS term by term; the runner's own memory and how it
holds a bundle (weights repacked into anonymous memory, resident shares, the fault-around window) are measured
constants kept in edgeship/profiles/planner/calibration.yaml with this script's command line as their source.
Run it after the runner changes (a new litert-lm-api, the native x86-64 runner becoming the default, a
virtual device with a memory cgroup):

    .venv/bin/python benchmarks/calibrate_planner.py [--iterations 5] [--runner PATH] [--dry-run | --check]

Builds come from the test cache (tests/fixtures/builds.py: exported once per exporter source hash, ~1 min
each when missing). Everything it starts (adb server, virtual device) is stopped at the end.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ple_residency import check, edgeship  # noqa: E402
from vdevice_session import virtual_device  # noqa: E402

from edgeship.profiles.planner import CALIBRATION_FILE, read_build_facts  # noqa: E402
from edgeship.profiles.planner.calibration import write_calibration_file  # noqa: E402
from edgeship.profiles.planner.fit import Measurement, calibration_to_yaml_entry, fit_calibration  # noqa: E402
from edgeship.profiles.schema import load_profile  # noqa: E402

SIZES = ("tiny", "ple-heavy")


def check_current(measurements: list[Measurement]) -> None:
    """What the committed calibration predicts for fresh measurements: recalibrate when this drifts."""
    from edgeship.profiles.planner import plan_build, runner_key
    from edgeship.profiles.planner.fit import distinct_tokens_of, measured_pss

    sys.stdout.write("build | measured (median) | predicted | error\n")
    for m in measurements:
        runner = runner_key(m.profile.runner.get("name"), m.profile.runner.get("version"))
        plan = plan_build(m.build, runner=runner, distinct_tokens=distinct_tokens_of(m.profile))
        measured, what = measured_pss(m.profile)
        assert measured is not None
        error = (plan.total - measured) / measured
        sys.stdout.write(
            f"{m.name} | {what} {measured / 2**20:.1f} MiB | {plan.total / 2**20:.1f} MiB | {error:+.1%}"
            + (f" ({'; '.join(plan.notes)})\n" if plan.notes else "\n")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--prefill", type=int, default=32)
    # 512 decode steps: a run long enough for several of the probe's budgeted smaps_rollup (PSS) reads.
    parser.add_argument("--decode", type=int, default=512)
    parser.add_argument(
        "--runner", help="runner binary to calibrate (default: what profile picks for x86_64)"
    )
    parser.add_argument("--profile", default="vflagship", help="virtual device profile")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgeship-calibrate")
    parser.add_argument("--dry-run", action="store_true", help="print the fit, leave calibration.yaml alone")
    parser.add_argument(
        "--check", action="store_true", help="measure and compare with the calibration in use; no refit"
    )
    args = parser.parse_args()

    from tests.fixtures.builds import cached_build

    builds = {size: cached_build("gemma4", size, "int8") for size in SIZES}
    args.work.mkdir(parents=True, exist_ok=True)
    measurements = []
    with virtual_device(args.work, "calibrate", args.profile) as (serial, env):
        for size, build in builds.items():
            runs = args.work / f"runs-{size}"
            extra = ["--runner", args.runner] if args.runner else []
            result = check(
                edgeship("profile", str(build), "--device", serial, "--prefill", str(args.prefill),
                         "--decode", str(args.decode), "--iterations", str(args.iterations), "--warmup", "1",
                         "--smaps-interval-ms", "50", "-o", str(runs), "--json", *extra, env=env),
                f"profile {size}",
            )  # fmt: skip
            [entry] = json.loads(result.stdout)
            path = Path(entry["profile"])
            measurements.append(Measurement(size, read_build_facts(build), load_profile(path), str(path)))

    if args.check:
        check_current(measurements)
        return
    load = os.getloadavg()[0]
    source = {
        "command": " ".join(["python", "benchmarks/calibrate_planner.py", *sys.argv[1:]]),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load {load:.1f}, vdevice {args.profile}",
        "settings": f"prefill {args.prefill}, decode {args.decode}, {args.iterations} runs + 1 warm-up each",
    }
    calibration, rows = fit_calibration(measurements, source)
    sys.stdout.write(
        json.dumps({"runner": calibration.runner, **calibration_to_yaml_entry(calibration)}, indent=2)
    )
    sys.stdout.write("\n\nbuild | runner's own peak PSS (its RSS, median) | predicted | error\n")
    for row in rows:
        sys.stdout.write(
            f"{row['build']} | {row['own_peak_pss_median'] / 2**20:.1f} MiB ({row['runs']} runs) | "
            f"{row['predicted'] / 2**20:.1f} MiB | {row['error'] * 100:+.1f}%\n"
        )
    if args.dry_run:
        return
    existing = yaml.safe_load(CALIBRATION_FILE.read_text()) if CALIBRATION_FILE.is_file() else {}
    runners = dict((existing or {}).get("runners") or {})
    previous = runners.get(calibration.runner) or {}
    runners[calibration.runner] = calibration_to_yaml_entry(calibration)
    if previous.get("minimum"):  # fitted on fit curves by benchmarks/fit_curve.py --calibrate, not here
        runners[calibration.runner]["minimum"] = previous["minimum"]
    write_calibration_file(runners)
    sys.stdout.write(f"\nwrote {CALIBRATION_FILE}\n")


if __name__ == "__main__":
    main()
