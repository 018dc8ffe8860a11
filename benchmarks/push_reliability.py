"""Push reliability: interrupt pushes at random moments, push again, check no final path is ever corrupt.

Each trial starts a real `edgeship push` process against a virtual-device daemon behind a private adb server,
waits until a random fraction of what the push sends has reached the device (watched on the host side of its
sandbox, in staging/<sha>/pieces/), then interrupts it one of three ways:

- kill-push:   SIGKILL the push process (the device script is left waiting; the device kills it on close);
- kill-server: `adb kill-server` mid-transfer, then a new server and `adb connect`;
- stop-device: stop the virtual device daemon (its sandbox kept), then start it again on the same port.

Each cut is recorded: it "landed mid-transfer" when bytes had arrived, the push was still running, and
after the interruption the bundle is not installed (for a first push: fewer than all its bytes arrived).
After the interruption every bundles/<sha>/ folder on the device must hold a model.litertlm whose sha256 is
<sha> (checked on the host side of the sandbox). Then the same push runs again and must succeed and verify;
the bytes it sent are compared with a full push: pieces that arrived whole before the interruption are
reused. Half of the trials push a transformer-only rebuild over an older bundle (the reuse path).

    .venv/bin/python benchmarks/push_reliability.py [--trials 100] [--mb 96] [--seed 1] [--link-mb-per-s 40]

Prints a JSON summary; exit status 1 when any final path held a wrong file or a re-push failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from push_bench import Lab

KINDS = ("kill-push", "kill-server", "stop-device")


def make_builds(work: Path, megabytes: int, transformer_share: float = 1 / 16) -> tuple[Path, Path]:
    """A PLE-heavy-shaped synthetic pair: same PLE and embedder sections, a different transformer of
    ``transformer_share`` × ``megabytes`` MiB (what a rebuild sends)."""
    from tests.android_harness.synthetic import write_build

    rng = random.Random(megabytes)
    ple = rng.randbytes(megabytes * 1024 * 1024 * 7 // 8)
    embedder = rng.randbytes(megabytes * 1024 * 1024 // 16)
    transformer_bytes = int(megabytes * 1024 * 1024 * transformer_share)
    v1 = write_build(
        work / "v1",
        [
            ("tf_lite_per_layer_embedder", ple),
            ("tf_lite_embedder", embedder),
            ("tf_lite_prefill_decode", rng.randbytes(transformer_bytes)),
        ],
    )
    v2 = write_build(
        work / "v2",
        [
            ("tf_lite_per_layer_embedder", ple),
            ("tf_lite_embedder", embedder),
            ("tf_lite_prefill_decode", rng.randbytes(transformer_bytes + 4096)),
        ],
    )
    return v1, v2


def bundle_sha(build: Path) -> str:
    return json.loads((build / "manifest.json").read_text())["bundle"]["sha256"]


def corrupt_final_paths(device: dict[str, Any]) -> list[str]:
    """Final folders whose model.litertlm is missing or is not the bundle the folder is named after."""
    bad = []
    bundles = device["sandbox"] / "edgeship" / "bundles"
    if not bundles.is_dir():
        return bad
    for folder in bundles.iterdir():
        model = folder / "model.litertlm"
        if not model.is_file():
            bad.append(f"{folder.name}: no model.litertlm")
            continue
        digest = hashlib.sha256()
        with model.open("rb") as handle:
            while chunk := handle.read(4 * 1024 * 1024):
                digest.update(chunk)
        if digest.hexdigest() != folder.name:
            bad.append(f"{folder.name}: holds {digest.hexdigest()[:12]}")
    return bad


def staged_bytes(device: dict[str, Any], sha: str) -> int:
    """Bytes the link has delivered into staging/<sha>/pieces/ (contracts.md: `partial.<attempt>` links a
    first push's file as it arrives, `<offset>-<length>` are a rebuild's pieces); a hard link counts once."""
    sizes: dict[tuple[int, int], int] = {}
    try:
        entries = list((device["sandbox"] / "edgeship" / "staging" / sha / "pieces").iterdir())
    except FileNotFoundError:
        return 0
    for entry in entries:
        try:
            stat = entry.stat()
        except FileNotFoundError:
            continue
        sizes[(stat.st_dev, stat.st_ino)] = stat.st_size
    return sum(sizes.values())


def wait_for_bytes(
    device: dict[str, Any], sha: str, target: int, process: subprocess.Popen[str], timeout: float = 120
) -> int:
    """Poll until ``target`` bytes of the push reached the device, the push ended, or the deadline passed."""
    deadline = time.monotonic() + timeout
    received = 0
    while time.monotonic() < deadline and process.poll() is None:
        received = staged_bytes(device, sha)
        if received >= target:
            break
        time.sleep(0.005)
    return received


def wait_for_attempts_to_end(device: dict[str, Any], sha: str, timeout: float = 60) -> float:
    """Wait until no attempt folder of the interrupted push is left in staging/<sha>/; returns the wait.

    A killed push's device script ends when the device sees the host's CLSE, and on a paced link that CLSE
    queues behind the data the adb server had already taken from the push (seconds of it). Until the script
    ends (its EXIT trap removes its attempt folder) the push is alive on the device and nobody may take its
    partial prefix: a re-push at once would rightly send everything again.
    """
    started = time.monotonic()
    staging = device["sandbox"] / "edgeship" / "staging" / sha
    while time.monotonic() - started < timeout:
        try:
            if not any(entry.name.startswith("attempt-") for entry in staging.iterdir()):
                break
        except FileNotFoundError:
            break
        time.sleep(0.05)
    return time.monotonic() - started


def push(lab: Lab, build: Path, serial: str) -> tuple[int, list[dict[str, Any]], str]:
    result = lab.edgeship("push", str(build), "--device", serial, "--json", "--quiet", timeout=600)
    rows = json.loads(result.stdout) if result.stdout.strip().startswith("[") else []
    return result.returncode, rows, result.stderr.strip()


def recover(lab: Lab, kind: str, device: dict[str, Any]) -> None:
    if kind == "kill-server":
        lab.start_server()
        if not lab.connect(device["serial"]):
            raise RuntimeError(f"{device['serial']} did not come back after the server restart")
    elif kind == "stop-device":
        record = lab.start_device(device["name"], device["sandbox"].parent, port=device["port"])
        if not lab.connect(record["serial"]):
            raise RuntimeError(f"{record['serial']} did not come back after restarting the device")


def interrupt(lab: Lab, kind: str, process: subprocess.Popen[str], device: dict[str, Any]) -> None:
    if kind == "kill-push":
        process.send_signal(signal.SIGKILL)
    elif kind == "kill-server":
        lab.kill_server()
    elif kind == "stop-device":
        lab.stop_device(device["name"])
    try:
        process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_trials(
    trials: int,
    megabytes: int = 96,
    seed: int = 1,
    work: Path | None = None,
    link_mb_per_s: float | None = None,
    cut_range: tuple[float, float] = (0.05, 0.95),
    transformer_share: float = 1 / 16,
) -> dict[str, Any]:
    """``cut_range``: the fractions of a push's bytes after which it is interrupted (a paced link and an
    upper bound below 1 leave the slower interruptions time to act before the transfer ends)."""
    own_work = work is None
    work = work or Path(tempfile.mkdtemp(prefix="push-reliability-"))
    rng = random.Random(seed)
    v1, v2 = make_builds(work / "builds", megabytes, transformer_share)
    lab = Lab(work / "lab", devices=1, link_mb_per_s=link_mb_per_s)
    device = lab.devices[0]
    serial = device["serial"]
    summary: dict[str, Any] = {
        "trials": trials,
        "bundle_bytes": (v1 / "model.litertlm").stat().st_size,
        "by_kind": {},
        "corrupt_final_paths": 0,
        "repush_failures": 0,
        "interrupted_mid_transfer": 0,
        "cuts": [],
        "interrupted_before_done": 0,
        "resumed_less_than_full": 0,
        "resumed_sent_bytes": [],
        "failures": [],
    }
    try:
        # Calibrate: how long a full push and a rebuild push take on this machine.
        lab.wipe(device)
        started = time.monotonic()
        code, rows, err = push(lab, v1, serial)
        full_seconds = time.monotonic() - started
        if code != 0:
            raise RuntimeError(f"calibration push failed: {err}")
        full_bytes = rows[0]["bytes_sent"]
        code, rows, err = push(lab, v2, serial)  # over v1: what a rebuild sends
        if code != 0:
            raise RuntimeError(f"calibration rebuild push failed: {err}")
        # What reaches staging/<sha>/pieces/ once a push's data has all arrived: the whole bundle for a first
        # push (pieces/partial.<attempt>), the pieces around the sections the device copies for a rebuild.
        arriving = {
            v1: summary["bundle_bytes"],
            v2: (v2 / "model.litertlm").stat().st_size - rows[0]["bytes_reused"],
        }
        summary["full_push_seconds"] = round(full_seconds, 3)
        summary["full_push_bytes"] = full_bytes
        summary["rebuild_piece_bytes"] = arriving[v2]
        for trial in range(trials):
            kind = KINDS[trial % len(KINDS)]
            rebuild = trial % 2 == 1
            lab.wipe(device)
            if rebuild:  # the older bundle is present: the push copies its sections on the device
                code, _, err = push(lab, v1, serial)
                if code != 0:
                    raise RuntimeError(f"trial {trial}: setup push failed: {err}")
            build = v2 if rebuild else v1
            sha = bundle_sha(build)
            target = max(1, int(rng.uniform(*cut_range) * arriving[build]))
            process = lab.edgeship_popen("push", str(build), "--device", serial, "--json", "--quiet")
            received_at_cut = wait_for_bytes(device, sha, target, process)
            finished_first = process.poll() is not None
            interrupt(lab, kind, process, device)
            received_after = staged_bytes(device, sha)
            installed_after = (device["sandbox"] / "edgeship" / "bundles" / sha).exists()
            # Mid-transfer: bytes had arrived, the push was still going, and once the interruption acted
            # the bundle was not installed and not all of its data had arrived (adbd drops a file it was
            # receiving, so what stays is the partial link's prefix or whole pieces).
            mid_transfer = (
                received_at_cut > 0
                and not finished_first
                and not installed_after
                and received_after < arriving[build]
            )
            summary["interrupted_mid_transfer"] += mid_transfer
            summary["cuts"].append(
                {
                    "trial": trial,
                    "kind": kind,
                    "rebuild": rebuild,
                    "target": target,
                    "received_at_cut": received_at_cut,
                    "received_after": received_after,
                    "finished_first": finished_first,
                    "installed_after": installed_after,
                    "mid_transfer": mid_transfer,
                }
            )
            recover(lab, kind, device)
            waited = wait_for_attempts_to_end(device, sha)
            summary["cuts"][-1]["attempt_ended_after_s"] = round(waited, 2)
            bad = corrupt_final_paths(device)
            if bad:
                summary["corrupt_final_paths"] += len(bad)
                summary["failures"].append({"trial": trial, "kind": kind, "corrupt": bad})
            code, rows, err = push(lab, build, serial)
            row = rows[0] if rows else {}
            stats = summary["by_kind"].setdefault(kind, {"trials": 0, "repush_ok": 0})
            stats["trials"] += 1
            if code != 0 or not row.get("ok"):
                summary["repush_failures"] += 1
                summary["failures"].append(
                    {"trial": trial, "kind": kind, "repush_error": err or row.get("error")}
                )
                continue
            stats["repush_ok"] += 1
            bad = corrupt_final_paths(device)
            if bad or bundle_sha(build) not in {
                p.name for p in (device["sandbox"] / "edgeship/bundles").iterdir()
            }:
                summary["corrupt_final_paths"] += len(bad) or 1
                summary["failures"].append({"trial": trial, "kind": kind, "after_repush": bad})
            if not finished_first and row["status"] == "pushed" and not rebuild:
                summary["interrupted_before_done"] += 1
                summary["resumed_sent_bytes"].append(row["bytes_sent"])
                if row["bytes_sent"] < full_bytes:
                    summary["resumed_less_than_full"] += 1
    finally:
        lab.close()
        if own_work:
            shutil.rmtree(work, ignore_errors=True)
    sent = summary.pop("resumed_sent_bytes")
    summary["resumed_mean_sent_fraction"] = round(sum(sent) / len(sent) / full_bytes, 3) if sent else None
    summary["ok"] = summary["corrupt_final_paths"] == 0 and summary["repush_failures"] == 0
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--mb", type=int, default=96, help="bundle size in MiB")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--link-mb-per-s", type=float, default=None, help="pace the device to a cable")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    summary = run_trials(args.trials, args.mb, args.seed, link_mb_per_s=args.link_mb_per_s)
    print(json.dumps(summary, indent=2))
    sys.exit(0 if summary["ok"] else 1)


if __name__ == "__main__":
    main()
