"""`edgeship plan`: a bundle's resident memory predicted term by term, and whether it fits a device.

``plan_build(build_dir, runner=…, distinct_tokens=…, budgets=…)`` reads the build's manifest and the
runner's calibration; ``plan_for_profile`` plans the bundle of a profile (for the report's predicted vs
measured). See model.py for the terms and calibration.py for where the constants come from.
"""

from __future__ import annotations

from pathlib import Path

from edgeship.profiles.planner.budget import RULE, USABLE_SHARE, Budget, budget_for
from edgeship.profiles.planner.calibration import (
    CALIBRATION_FILE,
    Calibration,
    calibration_for,
    load_calibrations,
    runner_key,
)
from edgeship.profiles.planner.kv import (
    KvLayout,
    architecture_bytes,
    full_attention_bytes,
    kv_layout,
    layout_bytes_at,
)
from edgeship.profiles.planner.model import (
    BuildFacts,
    Minimum,
    Plan,
    Term,
    fit_verdict,
    minimum_memory,
    plan_memory,
    ple_resident,
)


def read_build_facts(build_dir: str | Path) -> BuildFacts:
    """The planner's view of BUILD_DIR through the one build-dir reader (InputError when it is not one)."""
    from edgeship.exporter.manifest import read_build

    return BuildFacts.from_build(read_build(build_dir))


def plan_build(
    build: BuildFacts,
    *,
    runner: str | None,
    distinct_tokens: int | None = None,
    budgets: tuple[Budget, ...] = (),
) -> Plan:
    """Plan ``build`` under ``runner`` ("name version"); distinct tokens default to the cache length."""
    calibration, note = calibration_for(runner)
    tokens = build.cache_length if distinct_tokens is None else distinct_tokens
    notes = (note,) if note else ()
    return plan_memory(build, calibration, distinct_tokens=tokens, budgets=budgets, notes=notes)


__all__ = [
    "CALIBRATION_FILE",
    "RULE",
    "USABLE_SHARE",
    "Budget",
    "BuildFacts",
    "Calibration",
    "KvLayout",
    "Minimum",
    "Plan",
    "Term",
    "architecture_bytes",
    "budget_for",
    "calibration_for",
    "fit_verdict",
    "full_attention_bytes",
    "kv_layout",
    "layout_bytes_at",
    "load_calibrations",
    "minimum_memory",
    "plan_build",
    "plan_memory",
    "ple_resident",
    "read_build_facts",
    "runner_key",
]
