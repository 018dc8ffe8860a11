"""Push performance, side by side with plain `adb push`, on virtual devices behind one private adb server.

Goals (issue 4):
- first push: edgeship's wall time (process start-up, checks, sending, on-device sha256sum, rename) ≤ 1.1 ×
  plain `adb push` of the same file + 1.5 s — same server, same virtual device, alternating runs;
- rebuild with only the transformer changed: bytes sent ≤ that section + 1% of the bundle;
- fan-out: a push to 4 virtual devices ≤ 2.5 × the time of a push to one.

    .venv/bin/python benchmarks/push_bench.py [--build BUILD_DIR --rebuild BUILD_DIR] [--repeats 3]
        [--link-mb-per-s 40]   # devices paced to a USB cable: goal there is ≥ 0.9 × adb push throughput

Without --build it uses the ple-heavy Gemma-4 build (vocab 65 536 × 8 layers × 256 PLE, int8) exported by the
test fixtures' cache, and for --rebuild re-exports the same checkpoint with the transformer section
(tf_lite_prefill_decode) quantized int4 instead of int8 — PLE and embedder sections byte-identical.
The virtual devices are daemons (`edgeship vdevice start`), so device-side Python never shares a process
with the pusher. Everything started is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEVICE_ROOT = "/data/local/tmp/edgeship"
TRANSFORMER = "tf_lite_prefill_decode"

sys.path.insert(0, str(REPO))
from tests.cli import EdgeshipCli  # noqa: E402


def bundled_adb() -> str:
    import adbutils

    return str(Path(adbutils.__file__).parent / "binaries" / "adb")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Lab:
    """A private adb server and N virtual-device daemons, each with its own sandbox folder."""

    def __init__(
        self, work: Path, devices: int, adb: str | None = None, link_mb_per_s: float | None = None
    ) -> None:
        self.work = work
        self.link_mb_per_s = link_mb_per_s
        self.adb_path = adb or bundled_adb()
        self.port = free_port()
        # The tests' CLI helper: its own EDGESHIP_HOME and cwd, this server only, no inherited config.
        self.cli = EdgeshipCli(work, adb_port=self.port)
        self.env = self.cli.env
        self.devices: list[dict[str, Any]] = []
        self.start_server()
        try:
            for index in range(devices):
                self.devices.append(self.start_device(f"bench{index}", work / f"vd{index}"))
        except BaseException:
            self.close()
            raise

    # -- processes -------------------------------------------------------------------------------------------

    def adb(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.adb_path, "-P", str(self.port), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
        )

    def edgeship(self, *args: str, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
        return self.cli(*args, timeout=timeout)

    def edgeship_popen(self, *args: str) -> subprocess.Popen[str]:
        return self.cli.popen(*args)

    def start_server(self) -> None:
        result = self.adb("start-server", timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"adb start-server failed: {result.stderr.strip()}")

    def kill_server(self) -> None:
        self.adb("kill-server", timeout=60)

    def start_device(self, name: str, root: Path, port: int | None = None) -> dict[str, Any]:
        root.mkdir(parents=True, exist_ok=True)
        args = [
            "vdevice",
            "start",
            "--name",
            name,
            "--adb-server",
            f"127.0.0.1:{self.port}",
            "--root",
            str(root),
        ]
        if port:
            args += ["--port", str(port)]
        if self.link_mb_per_s:
            args += ["--link-mb-per-s", str(self.link_mb_per_s)]
        result = self.edgeship(*args, "--json", timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"vdevice start {name} failed: {result.stderr.strip()}")
        record = json.loads(result.stdout)
        record["sandbox"] = root / "data-local-tmp"
        return record

    def stop_device(self, name: str) -> None:
        self.edgeship("vdevice", "stop", name, "--keep-data", timeout=120)

    def connect(self, serial: str, timeout: float = 30) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.adb("connect", serial, timeout=30)
            if self.adb("-s", serial, "get-state", timeout=30).stdout.strip() == "device":
                return True
            time.sleep(0.2)
        return False

    def close(self) -> None:
        for device in self.devices:
            self.edgeship("vdevice", "stop", device["name"], timeout=120)
        self.kill_server()

    # -- helpers ---------------------------------------------------------------------------------------------

    def wipe(self, device: dict[str, Any]) -> None:
        """Forget everything pushed to a device (host side of its sandbox: instant, no device work)."""
        shutil.rmtree(device["sandbox"] / "edgeship", ignore_errors=True)
        (device["sandbox"] / "plain.litertlm").unlink(missing_ok=True)


def timed(run: Any) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.monotonic()
    result = run()
    return time.monotonic() - started, result


def push_json(lab: Lab, build: Path, *selection: str) -> tuple[float, list[dict[str, Any]]]:
    seconds, result = timed(lambda: lab.edgeship("push", str(build), *selection, "--json", "--quiet"))
    if result.returncode != 0:
        raise RuntimeError(f"edgeship push failed: {result.stderr.strip()}")
    return seconds, json.loads(result.stdout)


# -- builds --------------------------------------------------------------------------------------------------


def default_builds(work: Path) -> tuple[Path, Path]:
    """The ple-heavy int8 build and a rebuild whose transformer section alone is int4."""
    sys.path.insert(0, str(REPO))
    from edgeship.exporter.pipeline import ExportOptions, export_build
    from tests.fixtures.builds import cache_root, cached_build, cached_checkpoint, exporter_source_hash

    build = cached_build("gemma4", "ple-heavy", "int8")
    rebuild = cache_root() / exporter_source_hash() / "build-gemma4-ple-heavy-int8-transformer-int4"
    if not (rebuild / "manifest.json").is_file():
        recipe = work / "transformer-int4.yaml"
        recipe.write_text(f"name: transformer-int4\ndefault: int8\nsections:\n  {TRANSFORMER}: int4\n")
        export_build(
            cached_checkpoint("gemma4", "ple-heavy"), rebuild, ExportOptions(recipe=str(recipe), force=True)
        )
    return build, rebuild


def manifest(build: Path) -> dict[str, Any]:
    return json.loads((build / "manifest.json").read_text())


# -- measurements --------------------------------------------------------------------------------------------


def first_push(lab: Lab, build: Path, repeats: int) -> dict[str, Any]:
    """adb push, then edgeship push with the bundle's digest unknown (hashed before sending), then known.

    "known" is the normal flow: `edgeship export` records the digest of the file it wrote (and a check
    records it too), so a push of an unchanged build only stats it. "cold" forgets every recorded digest
    first, as for a build copied from elsewhere. Both include process start-up and on-device sha256.
    """
    device = lab.devices[0]
    serial = device["serial"]
    bundle = build / manifest(build)["bundle"]["file"]
    times: dict[str, list[float]] = {"adb": [], "cold": [], "known": []}
    for _ in range(repeats):
        lab.wipe(device)
        seconds, result = timed(
            lambda: lab.adb("-s", serial, "push", str(bundle), "/data/local/tmp/plain.litertlm")
        )
        if result.returncode != 0:
            raise RuntimeError(f"adb push failed: {result.stderr.strip()}")
        times["adb"].append(seconds)
        for kind in ("cold", "known"):
            lab.wipe(device)
            if kind == "cold":
                shutil.rmtree(lab.work / "home" / "known-sha256", ignore_errors=True)
            seconds, rows = push_json(lab, build, "--device", serial)
            assert rows[0]["ok"] and rows[0]["bytes_reused"] == 0, rows
            times[kind].append(seconds)
    plain = statistics.median(times["adb"])
    goal = 1.1 * plain + 1.5
    size = bundle.stat().st_size
    report: dict[str, Any] = {
        "bundle_bytes": size,
        "adb_push_s": [round(t, 3) for t in times["adb"]],
        "adb_push_median_s": round(plain, 3),
        "adb_push_MBps": round(size / plain / 1e6, 1),
        "goal_s": round(goal, 3),
    }
    for kind in ("cold", "known"):
        ours = statistics.median(times[kind])
        report[f"edgeship_{kind}_s"] = [round(t, 3) for t in times[kind]]
        report[f"edgeship_{kind}_median_s"] = round(ours, 3)
        report[f"edgeship_{kind}_MBps"] = round(size / ours / 1e6, 1)
        report[f"goal_met_{kind}"] = ours <= goal
        # Where the link is the limit (--link-mb-per-s): throughput against adb push's, goal ≥ 0.9.
        report[f"throughput_vs_adb_{kind}"] = round(plain / ours, 3)
    return report


def rebuild_push(lab: Lab, build: Path, rebuild: Path) -> dict[str, Any]:
    device = lab.devices[0]
    lab.wipe(device)
    push_json(lab, build, "--device", device["serial"])
    seconds, rows = push_json(lab, rebuild, "--device", device["serial"])
    row = rows[0]
    old = {s["sha256"] for s in manifest(build)["sections"]}
    new_manifest = manifest(rebuild)
    changed = [s for s in new_manifest["sections"] if s["sha256"] not in old]
    changed_bytes = sum(s["bytes"] for s in changed)
    bundle_bytes = new_manifest["bundle"]["bytes"]
    limit = changed_bytes + 0.01 * bundle_bytes
    return {
        "bundle_bytes": bundle_bytes,
        "changed_sections": [s["kind"] for s in changed],
        "changed_bytes": changed_bytes,
        "bytes_sent": row["bytes_sent"],
        "bytes_reused": row["bytes_reused"],
        "seconds_wall": round(seconds, 3),
        "seconds_in_push": row["seconds"],
        "limit_bytes": int(limit),
        "goal_met": row["bytes_sent"] <= limit,
    }


def fan_out(lab: Lab, build: Path, repeats: int) -> dict[str, Any]:
    one: list[float] = []
    many: list[float] = []
    for _ in range(repeats):
        for device in lab.devices:
            lab.wipe(device)
        seconds, rows = push_json(lab, build, "--device", lab.devices[0]["serial"])
        assert all(r["ok"] for r in rows)
        one.append(seconds)
        for device in lab.devices:
            lab.wipe(device)
        selection: list[str] = []
        for device in lab.devices:
            selection += ["--device", device["serial"]]
        seconds, rows = push_json(lab, build, *selection)
        assert len(rows) == len(lab.devices) and all(r["ok"] for r in rows), rows
        many.append(seconds)
    ratio = statistics.median(many) / statistics.median(one)
    return {
        "devices": len(lab.devices),
        "one_device_s": [round(t, 3) for t in one],
        "all_devices_s": [round(t, 3) for t in many],
        "ratio": round(ratio, 2),
        "goal_met": ratio <= 2.5,
    }


def machine() -> dict[str, Any]:
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "adb": subprocess.run([bundled_adb(), "version"], capture_output=True, text=True).stdout.splitlines()[
            1
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--build", type=Path, help="BUILD_DIR to push (default: ple-heavy int8)")
    parser.add_argument(
        "--rebuild", type=Path, help="BUILD_DIR differing from --build in the transformer only"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--devices", type=int, default=4, help="virtual devices for the fan-out")
    parser.add_argument("--skip", action="append", default=[], choices=["first", "rebuild", "fanout"])
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument(
        "--link-mb-per-s",
        type=float,
        default=None,
        help="pace the virtual devices to a cable's speed (MB/s each way): the link is the limit, as on USB",
    )
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="push-bench-"))
    if args.build is None:
        build, rebuild = default_builds(work)
    else:
        build, rebuild = args.build, args.rebuild
    report: dict[str, Any] = {
        "machine": machine(),
        "build": str(build),
        "rebuild": str(rebuild),
        "link_mb_per_s": args.link_mb_per_s,
    }
    lab = Lab(
        work,
        devices=max(1, args.devices if "fanout" not in args.skip else 1),
        link_mb_per_s=args.link_mb_per_s,
    )
    try:
        if "first" not in args.skip:
            report["first_push"] = first_push(lab, build, args.repeats)
            print(json.dumps({"first_push": report["first_push"]}), file=sys.stderr)
        if "rebuild" not in args.skip and rebuild is not None:
            report["rebuild"] = rebuild_push(lab, build, rebuild)
            print(json.dumps({"rebuild": report["rebuild"]}), file=sys.stderr)
        if "fanout" not in args.skip:
            report["fan_out"] = fan_out(lab, build, args.repeats)
    finally:
        lab.close()
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
