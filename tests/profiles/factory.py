"""Constructed profile.json files for gate and report unit tests (the e2e tests use real profiles)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgeship.profiles.schema import (
    STATUS_OK,
    ExitStatus,
    Iteration,
    Latency,
    Memory,
    Profile,
    SectionResidency,
    write_profile,
)
from edgeship.profiles.summary import PLE_SECTION_KIND, summarize_iterations

MIB = 1024 * 1024
PLE_BYTES = 130 * MIB


def make_profile(
    decode: Sequence[float],
    *,
    prefill: Sequence[float] | None = None,
    ttft: Sequence[float] | None = None,
    init: Sequence[float] | None = None,
    pss: Sequence[int] | None = None,
    ple: Sequence[int] | None = None,
    serial: str = "127.0.0.1:40001",
    model: str = "Virtual Flagship 12G",
    recipe: str = "int8",
    sha: str = "ab" * 32,
    runner_version: str = "host-litert-lm-api-0.18.1",
    config: dict[str, Any] | None = None,
    statuses: Sequence[str] | None = None,
) -> Profile:
    n = len(decode)
    iterations = []
    for i in range(n):
        status = statuses[i] if statuses else STATUS_OK
        ok = status == STATUS_OK
        iterations.append(
            Iteration(
                index=i + 1,
                warmup=False,
                latency=Latency(
                    init_s=(init[i] if init else 0.3) if ok else None,
                    ttft_s=(ttft[i] if ttft else 0.02) if ok else None,
                    ttft_definition="computed by LiteRT-LM",
                    prefill_tok_s=(prefill[i] if prefill else 1800.0) if ok else None,
                    decode_tok_s=decode[i] if ok else None,
                    prefill_tokens=32,
                    decode_tokens=128,
                ),
                memory=Memory(
                    peak_rss=(pss[i] if pss else 100 * MIB) + 30 * MIB,
                    peak_pss=pss[i] if pss else 100 * MIB,
                    peak_anon=40 * MIB,
                    peak_file=60 * MIB,
                    peak_swap=0,
                    hwm=130 * MIB,
                    sections={PLE_SECTION_KIND: SectionResidency(PLE_BYTES, ple[i] if ple else 4 * MIB, 5)},
                ),
                exit=ExitStatus(
                    0 if ok else None, None if ok else 9, False, status, None if ok else "killed"
                ),
                timeline=None,
                wall_s=1.0,
            )
        )
    profile = Profile(
        device={
            "serial": serial, "model": model, "manufacturer": "Edgeship", "soc": "VSoC-8", "abi": "x86_64",
            "sdk": 35, "release": "15", "ram_total": 12 * 1024 * MIB, "adb_server": "127.0.0.1:5037",
        },
        bundle={
            "sha256": sha, "manifest_sha256": "cd" * 32, "file": "model.litertlm",
            "bytes": PLE_BYTES + 20 * MIB,
            "build_dir": None, "arch": "gemma4", "recipe": recipe,
            "ple": {"vocab": 65536, "layers": 8, "dim": 256, "bits": 8, "row_bytes": 2048, "table_bytes": 0},
            "sections": [{"kind": PLE_SECTION_KIND, "offset": 0, "end": PLE_BYTES, "bytes": PLE_BYTES}],
        },
        runner={
            "name": "litert_lm_main", "version": runner_version, "sha256": "ef" * 32, "ttft_definition": "d",
        },
        probe={"sha256": "12" * 32, "version": "1"},
        config={
            "backend": "cpu", "threads": None, "prefill": 32, "decode": 128, "iterations": n, "warmup": 0,
            "interval_ms": 50, "max_tokens": 160, "timeout_s": 600.0, **(config or {}),
        },
        iterations=iterations,
        state={"before": None, "after": None},
    )  # fmt: skip
    profile.summary = summarize_iterations(profile.iterations)
    return profile


def write(profile: Profile, root: Path, name: str = "") -> Path:
    """RUNS_DIR layout: root/<serial>/<sha12>/profile.json."""
    serial = str(profile.device["serial"]).replace(":", "_")
    path = root / name / serial / str(profile.bundle["sha256"])[:12] / "profile.json"
    write_profile(profile, path)
    return path
