"""The probe's cross-build: cache by source hash, concurrency-safe, arm64 under qemu, the CLI."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from edgeship.android_harness.probe import build
from edgeship.android_harness.probe.build import build_probe, cached_probe_path, probe_source_sha256
from edgeship.errors import UsageError
from edgeship.hashing import sha256_file
from tests.cli import EdgeshipCli

QEMU_AARCH64 = shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")
QEMU_ARM = shutil.which("qemu-arm-static") or shutil.which("qemu-arm")


def elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF"
    return int.from_bytes(header[18:20], "little")


def test_cache_path_is_keyed_by_source_hash(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EDGESHIP_CACHE", str(tmp_path))
    assert cached_probe_path("x86_64") == tmp_path / "probe" / probe_source_sha256() / "x86_64" / "probe"
    with pytest.raises(UsageError, match="no probe build for ABI"):
        build_probe("mips")


def test_concurrent_builds_leave_one_complete_binary(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EDGESHIP_CACHE", str(tmp_path / "cache"))
    results: list[Path] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(build_probe("x86_64"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(set(results)) == 1
    binary = results[0]
    assert elf_machine(binary) == 62  # EM_X86_64
    assert [p.name for p in binary.parent.iterdir()] == ["probe"]  # no temp files left behind
    completed = subprocess.run([str(binary)], capture_output=True)
    assert completed.returncode == 2 and b"usage" in completed.stderr
    copy = build_probe("x86_64", tmp_path / "out" / "probe-x86_64")  # a file path (its folder is made)
    assert copy == tmp_path / "out" / "probe-x86_64" and sha256_file(copy) == sha256_file(binary)


def test_compile_error_is_a_one_line_build_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    broken = tmp_path / "probe.c"
    broken.write_text("int main(void) { return missing_symbol; }\n")
    monkeypatch.setattr(build, "PROBE", dataclasses.replace(build.PROBE, source=broken))
    monkeypatch.setenv("EDGESHIP_CACHE", str(tmp_path / "cache"))
    with pytest.raises(build.ProbeBuildError, match="zig cc -target x86_64-linux-musl failed") as info:
        build_probe("x86_64")
    assert "\n" not in str(info.value)
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]  # no binary, no temp file


def run_emulated(
    qemu: str, binary: Path, out: Path, script: str
) -> tuple[subprocess.CompletedProcess[bytes], dict[str, Any]]:
    """Run a cross-built probe under qemu-user over a native `sh -c SCRIPT`; its result.json too."""
    completed = subprocess.run(
        [qemu, str(binary), "--interval-ms", "20", "--out", str(out), "--", "sh", "-c", script],
        capture_output=True,
        timeout=60,
    )
    return completed, json.loads((out / "result.json").read_text())


def assert_sample_count_bounds(result: dict[str, Any], runner_s: float) -> None:
    """Bounds that hold on a loaded 2-core box (an emulated probe gets little CPU there): the run lasted
    ``runner_s`` (``wall_s``), so the probe sampled at its start and at least once more, and never more
    often than one sample per interval (its fixed schedule skips late ticks, never doubles them)."""
    interval_s = result["interval_ms"] / 1000
    assert result["wall_s"] >= runner_s
    assert 2 <= result["samples"] <= result["wall_s"] / interval_s + 1, result


@pytest.mark.skipif(
    QEMU_AARCH64 is None, reason="qemu-aarch64-static not installed (Debian qemu-user-static)"
)
def test_arm64_build_runs_under_qemu(tmp_path: Path) -> None:
    binary = build_probe("arm64-v8a")
    assert elf_machine(binary) == 183  # EM_AARCH64
    # The arm64 probe (emulated) runs a native runner: fork/exec, sampling and exit recording all work.
    completed, result = run_emulated(QEMU_AARCH64, binary, tmp_path / "o", "sleep 0.3; exit 5")
    assert completed.returncode == 5, completed.stderr
    assert result["exit"] == {"code": 5, "signal": None, "timed_out": False}
    assert_sample_count_bounds(result, runner_s=0.3)
    assert result["peaks"]["vm_rss"] > 0
    # The exit sample where the emulator lets the probe trace (on a phone it does); qemu-user implements no
    # ptrace, and then the probe runs untraced and says so.
    if result["trace"]["enabled"]:
        assert result["exit_sample"]["taken"] and result["exit_sample"]["values"]["vm_rss"] > 0
    else:
        assert result["trace"]["error"].startswith("ptrace refused: ")
        assert result["exit_sample"] == {
            "taken": False,
            "reason": f"the runner was not traced ({result['trace']['error']})",
        }


@pytest.mark.slow
@pytest.mark.skipif(QEMU_ARM is None, reason="qemu-arm-static not installed (Debian qemu-user-static)")
def test_armeabi_v7a_build_runs_under_qemu(tmp_path: Path) -> None:
    binary = build_probe("armeabi-v7a")  # the first arm build on a machine also builds musl for arm
    assert elf_machine(binary) == 40  # EM_ARM
    completed, result = run_emulated(QEMU_ARM, binary, tmp_path / "o", "sleep 0.2; exit 4")
    assert completed.returncode == 4, completed.stderr
    assert_sample_count_bounds(result, runner_s=0.2)
    assert result["missing"] == []


def test_cli_probe_build_json(cli: EdgeshipCli, tmp_path: Path) -> None:
    result = cli("probe", "build", "--abi", "x86_64", "-o", tmp_path, "--json", timeout=900)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert Path(data["path"]) == tmp_path / "probe"
    assert data["sha256"] == sha256_file(tmp_path / "probe")
    assert data["source_sha256"] == probe_source_sha256()
