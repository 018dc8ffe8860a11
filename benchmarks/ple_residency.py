"""PLE side-table residency: bytes of the per-layer-embedder section vs bytes resident after N tokens.

The point of exporting the PLE table as its own memory-mapped section is that the runtime touches only the
rows of the tokens it sees: (prompt + generated tokens) × row_bytes, rounded up to pages, plus the kernel's
read-ahead — not the whole table. This script profiles the ple-heavy bundle (vocab 65 536 × 8 layers × 256)
on a virtual device through a private adb server, with `edgeship profile` exactly as a user runs it, for
several decode lengths, and reports section bytes vs the median resident peak.

    .venv/bin/python benchmarks/ple_residency.py [--build BUILD_DIR] [--decode 16,64,256] [--iterations 3]

Without --build it generates the ple-heavy checkpoint and exports it as int8 under --work (about a minute).
Everything it starts (adb server, virtual device) is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PLE_KIND = "tf_lite_per_layer_embedder"


def edgeship(*args: str, env: dict[str, str], timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgeship", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def check(result: subprocess.CompletedProcess[str], what: str) -> subprocess.CompletedProcess[str]:
    if result.returncode != 0:
        sys.exit(f"{what} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def adb_binary() -> str:
    import adbutils

    bundled = Path(adbutils.__file__).parent / "binaries" / "adb"
    return str(bundled) if bundled.is_file() else "adb"


def make_build(work: Path, env: dict[str, str]) -> Path:
    checkpoint, build = work / "ckpt-ple-heavy", work / "build-ple-heavy-int8"
    if not (build / "manifest.json").is_file():
        check(
            edgeship(
                "testing",
                "make-checkpoint",
                "--arch",
                "gemma4",
                "--size",
                "ple-heavy",
                "-o",
                str(checkpoint),
                "--force",
                env=env,
            ),
            "make-checkpoint",
        )
        check(
            edgeship(
                "export", str(checkpoint), "-o", str(build), "--recipe", "int8", "--force", "--quiet", env=env
            ),
            "export",
        )
    return build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", type=Path, help="an exported ple-heavy BUILD_DIR (default: export one)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgeship-ple-bench")
    parser.add_argument("--prefill", type=int, default=32)
    parser.add_argument("--decode", default="16,64,256", help="comma-separated decode lengths")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--profile", default="vflagship", help="virtual device profile")
    parser.add_argument("--json-out", type=Path, help="also write the figures here")
    args = parser.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**os.environ, "ANDROID_ADB_SERVER_PORT": str(port), "EDGESHIP_HOME": str(args.work / "home")}
    env.pop("ADB_SERVER_SOCKET", None)
    env.pop("ANDROID_SERIAL", None)
    build = args.build or make_build(args.work, env)
    manifest = json.loads((build / "manifest.json").read_text())
    ple = (manifest.get("model") or {}).get("ple") or {}
    name = f"ple-bench-{os.getpid()}"
    adb = adb_binary()
    check(subprocess.run([adb, "-P", str(port), "start-server"], capture_output=True, text=True), "adb start")
    rows: list[dict[str, Any]] = []
    try:
        started = check(
            edgeship(
                "vdevice",
                "start",
                "--name",
                name,
                "--profile",
                args.profile,
                "--root",
                str(args.work / name),
                "--json",
                env=env,
            ),
            "vdevice start",
        )
        serial = json.loads(started.stdout)["serial"]
        for decode in [int(text) for text in args.decode.split(",")]:
            runs = args.work / f"runs-decode{decode}"
            began = time.monotonic()
            result = check(
                edgeship(
                    "profile",
                    str(build),
                    "--device",
                    serial,
                    "--prefill",
                    str(args.prefill),
                    "--decode",
                    str(decode),
                    "--iterations",
                    str(args.iterations),
                    "--warmup",
                    "1",
                    "--smaps-interval-ms",
                    "50",
                    "--max-tokens",
                    str(args.prefill + decode),
                    "-o",
                    str(runs),
                    "--json",
                    env=env,
                ),
                f"profile decode={decode}",
            )
            [entry] = json.loads(result.stdout)
            profile = json.loads(Path(entry["profile"]).read_text())
            section = profile["summary"]["sections"][PLE_KIND]
            resident = section["resident_peak"]
            measured = [it for it in profile["iterations"] if not it["warmup"]]
            rows.append(
                {
                    "prefill": args.prefill,
                    "decode": decode,
                    "ple_bytes": section["bytes"],
                    "resident_median": resident["median"],
                    "resident_min": resident["min"],
                    "resident_max": resident["max"],
                    "resident_share": resident["median"] / section["bytes"],
                    # the rows a run can touch at most: every prompt and generated token a distinct one
                    "rows_upper_bound_bytes": (args.prefill + decode) * ple["row_bytes"]
                    if ple.get("row_bytes")
                    else None,
                    "per_iteration": [it["memory"]["sections"][PLE_KIND]["resident_peak"] for it in measured],
                    "peak_rss_median": profile["summary"]["memory"]["peak_rss"]["median"],
                    "decode_tok_s_median": profile["summary"]["latency"]["decode_tok_s"]["median"],
                    "profile_seconds": round(time.monotonic() - began, 1),
                }
            )
    finally:
        edgeship("vdevice", "stop", name, env=env, timeout=120)
        subprocess.run([adb, "-P", str(port), "kill-server"], capture_output=True)

    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "bundle": {"sha256": manifest["bundle"]["sha256"], "bytes": manifest["bundle"]["bytes"], "ple": ple},
        "rows": rows,
    }
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2) + "\n")
    mib = 1024 * 1024
    sys.stdout.write(json.dumps(report, indent=2) + "\n\n")
    # Expect about one fault-around window (16 pages = 64 KiB on Linux) per distinct token row: the bundle is
    # in the page cache after the push, so each row lookup maps its neighbours too. rows x row_bytes is the
    # floor a page-granular reader can never go below.
    sys.stdout.write(
        "prefill decode | PLE section | resident (median) | share | rows x row_bytes | resident per token\n"
    )
    for row in rows:
        bound = row["rows_upper_bound_bytes"]
        tokens = row["prefill"] + row["decode"]
        sys.stdout.write(
            f"{row['prefill']:>7} {row['decode']:>6} | {row['ple_bytes'] / mib:7.1f} MiB | "
            f"{row['resident_median'] / mib:13.2f} MiB | {100 * row['resident_share']:4.1f}% | "
            f"{(bound / mib) if bound else float('nan'):11.2f} MiB | "
            f"{row['resident_median'] / tokens / 1024:10.1f} KiB\n"
        )


if __name__ == "__main__":
    main()
