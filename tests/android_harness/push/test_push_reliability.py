"""The short form of benchmarks/push_reliability.py: 5 interrupted pushes (kill the push, kill the adb
server, stop the device), each followed by a push that must succeed; no final path may hold a wrong file.

Each interruption waits until part of the push has reached the device (not a fixed delay) and must land
mid-transfer: on a 4 MB/s link the first push of the 19 MiB bundle lasts ~5 s and the rebuild (a 4 MiB
transformer) ~1 s, and the cut comes within the first half, so even `vdevice stop` (a CLI start-up) and
`adb kill-server` on a loaded box act before the transfer ends."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[3] / "benchmarks"


def _load(name: str) -> object:
    sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.e2e
def test_interrupted_pushes_never_leave_a_corrupt_bundle(tmp_path: Path) -> None:
    reliability = _load("push_reliability")
    summary = reliability.run_trials(  # type: ignore[attr-defined]
        5,
        megabytes=16,
        transformer_share=1 / 4,
        seed=3,
        work=tmp_path,
        link_mb_per_s=4,
        cut_range=(0.05, 0.5),
    )
    assert summary["corrupt_final_paths"] == 0, summary["failures"]
    assert summary["repush_failures"] == 0, summary["failures"]
    assert sum(kind["trials"] for kind in summary["by_kind"].values()) == 5
    assert summary["interrupted_mid_transfer"] == 5, summary["cuts"]
    # The three first pushes (trials 0, 2, 4) were cut after >= 5% of the bundle arrived: each re-push
    # resumed from what the device kept and sent less than a full push.
    assert summary["interrupted_before_done"] == 3, summary["cuts"]
    assert summary["resumed_less_than_full"] == 3, summary
