"""Push and pull throughput to a virtual device through a real adb server.

Goal (issue 3): `adb push` of a 150 MB file at >= 150 MB/s on a 2-core machine over loopback.

    .venv/bin/python benchmarks/vdevice_push_bench.py [--size-mb 150] [--runs 3] [--adb PATH]

Starts a private adb server (default: the adb inside the adbutils wheel), a virtual device in this process,
`adb connect`s it, then times `adb push` and `adb pull` of a random file (wall time of the adb command,
so process start-up is included) and checks the pulled copy is identical. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import adbutils

from edgeship.vdevice import VirtualDevice

BUNDLED_ADB = str(Path(adbutils.__file__).parent / "binaries" / "adb")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--size-mb", type=int, default=150, help="file size in MiB (rates are in MB/s, 1e6 B)"
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--adb", default=BUNDLED_ADB, help="adb binary for the private server and CLI")
    args = parser.parse_args()
    port = free_port()
    env = {**os.environ, "ANDROID_ADB_SERVER_PORT": str(port)}
    env.pop("ADB_SERVER_SOCKET", None)

    def adb(*command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([args.adb, "-P", str(port), *command], capture_output=True, text=True, env=env)

    version = adb("version").stdout.splitlines()[1:2]
    adb("start-server")
    try:
        with tempfile.TemporaryDirectory(prefix="vdevice-bench-") as folder:
            work = Path(folder)
            source = work / "random.bin"
            with open(source, "wb") as handle:
                for _ in range(args.size_mb):
                    handle.write(os.urandom(1024 * 1024))
            size = source.stat().st_size
            with VirtualDevice(name="bench", root=work / "device") as device:
                confined = device.confined
                if "connected" not in adb("connect", device.serial).stdout:
                    print("adb connect failed", file=sys.stderr)
                    return 1
                push_rates, pull_rates, adb_push_rates = [], [], []
                for run in range(args.runs):
                    target = f"/data/local/tmp/bench{run}.bin"
                    started = time.perf_counter()
                    pushed = adb("-s", device.serial, "push", str(source), target)
                    push_rates.append(size / (time.perf_counter() - started) / 1e6)
                    if pushed.returncode != 0:
                        print(pushed.stderr, file=sys.stderr)
                        return 1
                    reported = re.search(r"([\d.]+) MB/s", pushed.stdout + pushed.stderr)
                    if reported:
                        adb_push_rates.append(float(reported.group(1)))
                    back = work / f"back{run}.bin"
                    started = time.perf_counter()
                    pulled = adb("-s", device.serial, "pull", target, str(back))
                    pull_rates.append(size / (time.perf_counter() - started) / 1e6)
                    if pulled.returncode != 0 or sha256(back) != sha256(source):
                        print("pull failed or differs", pulled.stderr, file=sys.stderr)
                        return 1
                    back.unlink()
                    (device.sandbox_root / f"bench{run}.bin").unlink()
                # Latency of one short command through adbutils (what device-fact queries pay).
                handle = adbutils.AdbClient(host="127.0.0.1", port=port).device(device.serial)
                shell_ms = []
                for _ in range(20):
                    started = time.perf_counter()
                    handle.shell("true")
                    shell_ms.append((time.perf_counter() - started) * 1000)
                adb("disconnect", device.serial)
    finally:
        adb("kill-server")
    result = {
        "benchmark": "vdevice_push",
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, {platform.platform()}",
        "adb": args.adb,
        "adb_version": version[0] if version else "?",
        "file_bytes": size,
        "runs": args.runs,
        "push_mb_s_median": round(statistics.median(push_rates), 1),
        "push_mb_s_all": [round(rate, 1) for rate in push_rates],
        "push_mb_s_adb_reported": adb_push_rates,
        "pull_mb_s_median": round(statistics.median(pull_rates), 1),
        "pull_mb_s_all": [round(rate, 1) for rate in pull_rates],
        "goal_push_mb_s": 150,
        "shell_true_ms_median": round(statistics.median(shell_ms), 1),
        "confined": confined,
    }
    print(json.dumps(result, indent=2))
    return 0 if result["push_mb_s_median"] >= 150 else 2


if __name__ == "__main__":
    sys.exit(main())
