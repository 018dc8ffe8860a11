"""Short runs on many virtual devices at once: does every run measure every section the engine mapped?

The case of issue 9: the ple-heavy bundle profiled on N virtual devices in parallel (spread over S adb
servers), with the probe's default (adaptive) smaps cadence, as a CI smoke profile would run it. Before the
probe took a sample at the runner's exit, half of such runs had no PLE figure at all (``resident_peak``
null) and the others depended on when the last periodic sample fell. Reported per runner: runs, runs with a
null PLE ``resident_peak`` / ``resident_at_exit``, any section the runner mapped without a figure, and the
spread of the PLE figures over identical devices.

    .venv/bin/python benchmarks/short_runs.py --build BUILD_DIR [--devices 16] [--servers 2]
        [--prefill 32] [--decode 256] [--iterations 2] [--runners native,host-python] [--json-out F]

Everything it starts (adb servers, virtual devices) is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from ple_residency import PLE_KIND, adb_binary, check, edgeship, free_port  # noqa: E402
from probe_overhead import emit, machine  # noqa: E402


def start_devices(
    args: argparse.Namespace, env: dict[str, str], ports: list[int]
) -> tuple[list[str], list[str]]:
    """N virtual devices, dealt round-robin over the adb servers; returns (names, serials)."""
    names, serials = [], []
    for index in range(args.devices):
        name = f"short-{os.getpid()}-{index}"
        port = ports[index % len(ports)]
        started = check(
            edgeship(
                "vdevice", "start", "--name", name, "--profile", args.profile,
                "--root", str(args.work / name), "--adb-server", f"127.0.0.1:{port}", "--json", env=env,
            ),
            f"vdevice start {name}",
        )  # fmt: skip
        names.append(name)
        serials.append(json.loads(started.stdout)["serial"])
    return names, serials


def profile_all(
    args: argparse.Namespace, env: dict[str, str], ports: list[int], runner: str
) -> dict[str, Any]:
    runs = args.work / f"runs-{runner}"
    servers = [word for port in ports for word in ("--adb", f"127.0.0.1:{port}")]
    began = time.monotonic()
    result = edgeship(
        "profile", str(args.build), "--all", *servers, "--prefill", str(args.prefill),
        "--decode", str(args.decode), "--iterations", str(args.iterations), "--warmup", "0",
        "--runner", runner, "-o", str(runs), "--json", env=env,
    )  # fmt: skip
    seconds = time.monotonic() - began
    entries = json.loads(result.stdout) if result.stdout.strip() else []
    if not entries:
        sys.exit(f"profile with {runner} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    iterations = []
    for entry in entries:
        if entry["profile"]:
            iterations += json.loads(Path(entry["profile"]).read_text())["iterations"]
    ok = [it for it in iterations if it["exit"]["status"] == "ok"]
    ple_peak = [it["memory"]["sections"][PLE_KIND]["resident_peak"] for it in ok]
    ple_exit = [it["memory"]["sections"][PLE_KIND]["resident_at_exit"] for it in ok]
    # A section the runner had mapped (seen at exit or in a sample) without a peak figure: the failure of old.
    unmeasured = sum(
        1
        for it in ok
        for section in it["memory"]["sections"].values()
        if section["resident_peak"] is None and (section["resident_at_exit"] or section["mapped_samples"])
    )
    present_peak = [value for value in ple_peak if value is not None]
    present_exit = [value for value in ple_exit if value is not None]
    return {
        "runner": runner,
        "devices_ok": sum(1 for entry in entries if entry["ok"]),
        "runs": len(iterations),
        "runs_ok": len(ok),
        "ple_resident_peak_null": sum(1 for value in ple_peak if value is None),
        "ple_resident_at_exit_null": sum(1 for value in ple_exit if value is None),
        "mapped_sections_without_figure": unmeasured,
        "ple_resident_peak_min_max": [min(present_peak), max(present_peak)] if present_peak else None,
        "ple_resident_at_exit_min_max": [min(present_exit), max(present_exit)] if present_exit else None,
        "wall_s_min_max": [min(it["wall_s"] for it in ok), max(it["wall_s"] for it in ok)] if ok else None,
        "smaps_samples_min_max": [
            min(it["smaps_samples"] for it in ok),
            max(it["smaps_samples"] for it in ok),
        ]
        if ok
        else None,
        "profile_seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", type=Path, required=True, help="an exported BUILD_DIR (ple-heavy int8)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgeship-short-runs")
    parser.add_argument("--devices", type=int, default=16)
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--prefill", type=int, default=32)
    parser.add_argument("--decode", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--runners", default="native,host-python")
    parser.add_argument("--profile", default="vflagship", help="virtual device profile")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    ports = [free_port() for _ in range(args.servers)]
    env = {**os.environ, "EDGESHIP_HOME": str(args.work / "home")}
    for name in ("ADB_SERVER_SOCKET", "ANDROID_SERIAL", "ANDROID_ADB_SERVER_PORT"):
        env.pop(name, None)
    adb = adb_binary()
    for port in ports:
        check(subprocess.run([adb, "-P", str(port), "start-server"], capture_output=True, text=True), "adb")
    names: list[str] = []
    try:
        names, _ = start_devices(args, env, ports)
        results = [profile_all(args, env, ports, runner) for runner in args.runners.split(",")]
    finally:
        for name in names:
            edgeship("vdevice", "stop", name, env=env, timeout=120)
        for port in ports:
            subprocess.run([adb, "-P", str(port), "kill-server"], capture_output=True)
    emit({"machine": machine(), "config": {k: str(v) for k, v in vars(args).items()}, "results": results},
         args.json_out)  # fmt: skip


if __name__ == "__main__":
    main()
