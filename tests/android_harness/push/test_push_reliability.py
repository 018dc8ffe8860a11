"""The short form of benchmarks/push_reliability.py: 5 interrupted pushes (kill the push, kill the adb
server, stop the device), each followed by a push that must succeed; no final path may hold a wrong file."""

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
    summary = reliability.run_trials(5, megabytes=24, seed=3, work=tmp_path)  # type: ignore[attr-defined]
    assert summary["corrupt_final_paths"] == 0, summary["failures"]
    assert summary["repush_failures"] == 0, summary["failures"]
    assert sum(kind["trials"] for kind in summary["by_kind"].values()) == 5
