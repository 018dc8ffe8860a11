"""fit.json (`edgeship.fit/1`): a bundle's fit curve on one device — the figures at each available memory a
sweep measured, the knee, the kill point and the planner's minimum. Written by `edgeship fit` beside the
unconstrained run's profile.json; read by `edgeship report` through ``load_fit``. docs/contracts.md has it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeship.files import read_json_document, refuse_invalid, write_text_atomic

FIT_SCHEMA = "edgeship.fit/1"
FIT_FILE_NAME = "fit.json"
STEP_FILE_NAME = "step.json"  # a step's runs, an edgeship.profile/1 document (not named profile.json)

# What a step found at its available memory.
FAST = "fast"  # ran, decode ≥ threshold × the unconstrained run
SLOW = "slow"  # ran to the end, decode below that
STALLED = "stalled"  # still running at the step's time limit (thrashing): the probe killed it there
KILLED = "killed"  # ended by SIGKILL (the kernel's OOM killer, lmkd)
FAILED = "failed"  # crashed or printed no figures under the pressure
NO_START = "no_start"  # the device could not be given that little memory, or the probe could not start
BALLOON_KILLED = "balloon_killed"  # the balloon was killed during the step, twice: says nothing of the runner
OUTCOMES = (FAST, SLOW, STALLED, KILLED, FAILED, NO_START, BALLOON_KILLED)
# Whether a run completed at that memory: the kill point is where it stops completing — killed by the kernel
# (or lmkd), or by the step's time limit when it thrashes, or the memory could not be taken that low.
RUNS = {FAST: True, SLOW: True, STALLED: False, KILLED: False, FAILED: False, NO_START: False}

TOP_LEVEL_KEYS = (
    "schema", "device", "bundle", "runner", "method", "config", "baseline", "steps", "knee", "kill",
    "planner", "verdict", "state", "restored", "notes",
)  # fmt: skip
STEP_KEYS = ("index", "target_available", "available", "outcome", "figures", "profile")
FIGURE_KEYS = (
    "decode_tok_s", "prefill_tok_s", "ttft_s", "init_s", "peak_pss", "peak_rss", "major_faults",
    "ple_resident", "transformer_resident", "embedder_resident",
)  # fmt: skip


@dataclass
class StepFigures:
    """Medians over a step's measured runs that ended ok (a killed or stalled step: its first run's peaks)."""

    decode_tok_s: float | None = None
    prefill_tok_s: float | None = None
    ttft_s: float | None = None
    init_s: float | None = None
    peak_pss: int | None = None
    peak_rss: int | None = None
    major_faults: int | None = None
    ple_resident: int | None = None  # resident peak of the PLE side table
    transformer_resident: int | None = None  # resident peak of the transformer section(s)
    embedder_resident: int | None = None


@dataclass
class FitStep:
    index: int  # 0: the unconstrained run
    target_available: int | None  # what was asked (None for the unconstrained run)
    available: int | None  # MemAvailable read once the memory was taken, before the runs
    outcome: str
    figures: StepFigures
    profile: str  # its runs: step.json (profile.json for the unconstrained run), relative to fit.json
    decode_ratio: float | None = None  # decode ÷ the unconstrained runs' just before the step
    reference_decode_tok_s: float | None = None  # … their median decode rate
    reference_major_faults: int | None = None  # … and the most major faults one of them had
    limit: int | None = None  # cgroup: the device's RAM during the step
    balloon: dict[str, Any] | None = None  # the balloon's ready line: held, locked, vm_swap, swap_free…
    runs: str = ""  # "3/3 ok", "0/3 ok; iter 1: killed by the kernel's OOM killer (…)"
    oom_kills: int | None = None  # OOM kills the device's memory cgroup counted during the step
    meant_for: str | None = None  # the bracket the step narrowed: "knee" | "kill"
    repeated: bool = False  # its balloon was killed the first time, so the step ran again
    note: str | None = None


@dataclass
class FitResult:
    device: dict[str, Any]
    bundle: dict[str, Any]
    runner: dict[str, Any]
    method: str  # "cgroup" | "balloon"
    config: dict[str, Any]
    baseline: FitStep
    steps: list[FitStep] = field(default_factory=list)
    knee: dict[str, Any] | None = None
    kill: dict[str, Any] | None = None
    planner: dict[str, Any] | None = None
    verdict: str = ""
    state: str = "running"  # running | complete | max steps | interrupted | device lost
    restored: bool | None = None  # the device was given its memory back (None: not yet)
    notes: list[str] = field(default_factory=list)
    schema: str = FIT_SCHEMA

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {key: data[key] for key in TOP_LEVEL_KEYS}

    def curve(self) -> list[FitStep]:
        """Every measured step, the unconstrained run included, by available memory (largest first)."""
        steps = [self.baseline, *self.steps]
        return sorted(steps, key=lambda step: -(step.available or 0))


def write_fit(result: FitResult, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(result.to_dict(), indent=2) + "\n")


def validate_fit(data: Any) -> list[str]:
    """Every way ``data`` departs from the contract (empty: valid)."""
    if not isinstance(data, dict):
        return ["fit.json is not a JSON object"]
    problems = []
    if data.get("schema") != FIT_SCHEMA:
        problems.append(f"schema is {data.get('schema')!r}, expected {FIT_SCHEMA!r}")
    problems += [f"missing key {key!r}" for key in TOP_LEVEL_KEYS if key not in data]
    steps = [data.get("baseline"), *(data.get("steps") or [])]
    for number, step in enumerate(steps):
        where = "baseline" if number == 0 else f"steps[{number - 1}]"
        if not isinstance(step, dict):
            problems.append(f"{where} is not an object")
            continue
        problems += [f"{where} has no {key!r}" for key in STEP_KEYS if key not in step]
        if step.get("outcome") not in OUTCOMES:
            problems.append(f"{where}.outcome is {step.get('outcome')!r}, not one of {OUTCOMES}")
        figures = step.get("figures")
        if isinstance(figures, dict):
            problems += [f"{where}.figures has no {key!r}" for key in FIGURE_KEYS if key not in figures]
    return problems


def _step(data: dict[str, Any]) -> FitStep:
    known = set(FitStep.__dataclass_fields__) - {"figures"}
    figures = StepFigures(**{k: v for k, v in data["figures"].items() if k in FIGURE_KEYS})
    return FitStep(figures=figures, **{k: v for k, v in data.items() if k in known})


def fit_from_dict(data: dict[str, Any]) -> FitResult:
    return FitResult(
        **{key: data[key] for key in TOP_LEVEL_KEYS if key not in ("baseline", "steps")},
        baseline=_step(data["baseline"]),
        steps=[_step(step) for step in data["steps"]],
    )


def load_fit(path: str | Path) -> FitResult:
    """Read and validate a fit.json (or the folder holding one); InputError names the first problem."""
    path, data = read_json_document(path, FIT_FILE_NAME, "run `edgeship fit` first")
    refuse_invalid(path, f"{FIT_SCHEMA} document", validate_fit(data))
    return fit_from_dict(data)


# -- the curve as display rows (the CLI's table, the report's HTML and Markdown) --------------------------

CURVE_HEADERS = (
    "step", "available", "outcome", "decode tok/s", "vs unconstrained", "prefill tok/s", "TTFT", "peak PSS",
    "major faults", "PLE resident", "transformer resident",
)  # fmt: skip
CURVE_NUMERIC = tuple(range(3, len(CURVE_HEADERS)))


def curve_rows(result: FitResult) -> list[list[str]]:
    """One row per measured step, most memory first; figures formatted by edgeship.units."""
    from edgeship.units import format_bytes, format_duration, format_number, format_percent

    rows = []
    for step in result.curve():
        figures = step.figures
        available = format_bytes(step.available if step.available is not None else step.target_available)
        rows.append(
            [
                "unconstrained" if step.index == 0 else str(step.index),
                available,
                step.outcome.replace("_", " "),
                format_number(figures.decode_tok_s, 1),
                format_percent(step.decode_ratio, digits=0),
                format_number(figures.prefill_tok_s, 1),
                format_duration(figures.ttft_s),
                format_bytes(figures.peak_pss),
                format_number(figures.major_faults, 0),
                format_bytes(figures.ple_resident),
                format_bytes(figures.transformer_resident),
            ]
        )
    return rows


def planner_line(result: FitResult) -> str | None:
    """'planner: minimum 140.2 MiB (the predicted peak PSS…) vs the measured knee 131.2 MiB: +6.8%'."""
    from edgeship.units import format_bytes, format_change

    planner, knee = result.planner, result.knee or {}
    if not planner or not planner.get("minimum"):
        return None
    line = f"planner: minimum {format_bytes(planner['minimum'])} ({planner.get('how')})"
    if knee.get("step"):
        line += (
            f" vs the measured knee {format_bytes(knee['available'])}: "
            f"{format_change(planner.get('error_vs_knee'))}"
        )
    return line
