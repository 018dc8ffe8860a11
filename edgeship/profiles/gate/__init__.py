"""`edgeship gate`: baseline vs current runs, per device kind × bundle line × figure, noise-aware.

``run_gate(baseline_inputs, current_inputs, thresholds)`` loads both sides (RUNS_DIRs or profile.json
files), pairs them and decides every figure; ``gate_markdown`` renders the table CI prints.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from edgeship.profiles.collect import load_profiles
from edgeship.profiles.gate.compare import (
    COMPARED,
    INCOMPARABLE,
    NO_BASELINE,
    GateResult,
    PairResult,
    compare_profiles,
)
from edgeship.profiles.gate.decide import (
    IMPROVEMENT,
    INCONCLUSIVE,
    REGRESSION,
    SAME,
    FigureVerdict,
    decide,
)
from edgeship.profiles.gate.render import gate_markdown
from edgeship.profiles.gate.thresholds import MemoryThreshold, Thresholds, load_thresholds


def run_gate(
    baseline: Iterable[str | Path], current: Iterable[str | Path], thresholds: Thresholds
) -> GateResult:
    return compare_profiles(load_profiles(baseline), load_profiles(current), thresholds)


__all__ = [
    "COMPARED",
    "IMPROVEMENT",
    "INCOMPARABLE",
    "INCONCLUSIVE",
    "NO_BASELINE",
    "REGRESSION",
    "SAME",
    "FigureVerdict",
    "GateResult",
    "MemoryThreshold",
    "PairResult",
    "Thresholds",
    "decide",
    "gate_markdown",
    "load_thresholds",
    "run_gate",
]
