"""The planner's measured constants per runner, as data with their source (calibration.yaml beside this file).

Each entry says what one runner does with a bundle, fitted by ``benchmarks/calibrate_planner.py`` from real
profiles of the tiny and ple-heavy builds on a virtual device: the runtime's own memory (interpreter, libs,
arenas: peak PSS minus every bundle term), how many anonymous bytes the transformer section costs per section
byte (the runtime repacks its weights), which share of each dense section stays resident from the file, and
the fault-around window that decides PLE residency. Recalibrate with one command after a runner changes:
``python benchmarks/calibrate_planner.py`` (it profiles, refits and rewrites the file). An entry's ``minimum``
(what a run needs beyond its peak to decode at full speed: model.minimum_memory) is fitted on measured fit
curves by ``python benchmarks/fit_curve.py --calibrate``, and kept by calibrate_planner.py.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edgeship.errors import InputError

CALIBRATION_FILE = Path(__file__).with_name("calibration.yaml")
CALIBRATION_SCHEMA = "edgeship.planner-calibration/1"
ROLES = ("transformer", "embedder", "ple", "other")


@dataclass(frozen=True)
class MinimumCalibration:
    """What a run needs beyond its peak PSS to decode at full speed (model.minimum_memory), fitted on the
    knees of measured fit curves by benchmarks/fit_curve.py --calibrate."""

    beyond_peak: int  # bytes charged to the device beside the runner's PSS (probe, shell, kernel memory)
    bundle_read_share: float  # of the bundle bytes read at init and not kept mapped, what must stay cached
    source: dict[str, Any] = field(default_factory=dict)  # command, date, machine, the fits


@dataclass(frozen=True)
class Calibration:
    runner: str  # "<runner name> <runner version>", as profile.json records it
    overhead_pss: int  # the runtime itself at peak (bytes)
    transformer_anon_per_byte: float  # anonymous bytes per byte of the transformer section (repacked weights)
    file_resident_share: dict[str, float]  # role → share of the section resident from the file
    fault_around_bytes: int  # pages mapped per fault in a file mapping (Linux fault_around_bytes)
    source: dict[str, Any] = field(default_factory=dict)  # command, date, machine, builds, measurements
    minimum: MinimumCalibration | None = None  # None: no fit curve measured for this runner

    def describe_source(self) -> str:
        src = self.source
        return f"{src.get('command', '?')} ({src.get('date', '?')}, {src.get('machine', '?')})"


def runner_key(name: str | None, version: str | None) -> str:
    return f"{name} {version}"


@functools.cache
def load_calibrations(path: Path = CALIBRATION_FILE) -> dict[str, Calibration]:
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InputError(
            f"{path} is missing; run `python benchmarks/calibrate_planner.py` to measure the runners"
        ) from None
    if not isinstance(raw, dict) or raw.get("schema") != CALIBRATION_SCHEMA:
        raise InputError(f"{path} is not an {CALIBRATION_SCHEMA} file; recalibrate")
    calibrations = {}
    for key, entry in (raw.get("runners") or {}).items():
        calibrations[str(key)] = Calibration(
            runner=str(key),
            overhead_pss=int(entry["overhead_pss"]),
            transformer_anon_per_byte=float(entry["transformer_anon_per_byte"]),
            file_resident_share={role: float(entry["file_resident_share"][role]) for role in ROLES},
            fault_around_bytes=int(entry["fault_around_bytes"]),
            source=dict(entry.get("source") or {}),
            minimum=_minimum(entry.get("minimum")),
        )
    if not calibrations:
        raise InputError(f"{path} holds no runner; recalibrate")
    return calibrations


def _minimum(entry: dict[str, Any] | None) -> MinimumCalibration | None:
    if not entry:
        return None
    return MinimumCalibration(
        int(entry["beyond_peak"]), float(entry["bundle_read_share"]), dict(entry.get("source") or {})
    )


def write_calibration_file(runners: dict[str, Any], path: Path = CALIBRATION_FILE) -> None:
    """calibration.yaml with ``runners`` (name → entry as in the file)."""
    header = (
        "# Written by benchmarks/calibrate_planner.py; each runner's `minimum` by benchmarks/fit_curve.py "
        "--calibrate\n# (see edgeship/profiles/planner/calibration.py).\n"
    )
    body = yaml.safe_dump({"schema": CALIBRATION_SCHEMA, "runners": runners}, sort_keys=False, width=110)
    path.write_text(header + body)
    load_calibrations.cache_clear()


def calibration_for(runner: str | None) -> tuple[Calibration, str | None]:
    """The entry for ``runner`` ("name version"); the first entry when None, or with a note saying it is
    borrowed when that runner was never calibrated."""
    calibrations = load_calibrations()
    fallback = next(iter(calibrations.values()))
    if runner is None:
        return fallback, None
    if runner in calibrations:
        return calibrations[runner], None
    return fallback, f"no calibration for {runner}; using {fallback.runner}'s (recalibrate on that runner)"
