"""A sweep's pure parts: what a step's runs say (outcome, figures), the verdict, fit.json's contract, the
balloon's ready line — and the step logic itself (a balloon killed mid-step is repeated once, then reported)
with the device side stood in for."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import pytest

from edgeship.android_harness.fit import sweep as sweep_module
from edgeship.android_harness.fit.balloon import parse_ready
from edgeship.android_harness.fit.bisect import Bisection
from edgeship.android_harness.fit.limits import Applied
from edgeship.android_harness.fit.options import FitOptions
from edgeship.android_harness.fit.sweep import Reference, step_figures, step_outcome, summarize
from edgeship.android_harness.profile.options import ProfileOptions
from edgeship.errors import InputError, UsageError
from edgeship.profiles.fitcurve import (
    BALLOON_KILLED,
    FAST,
    KILLED,
    NO_START,
    RUNS,
    SLOW,
    STALLED,
    FitResult,
    FitStep,
    StepFigures,
    curve_rows,
    load_fit,
    validate_fit,
    write_fit,
)
from edgeship.profiles.schema import (
    STATUS_OK,
    STATUS_OOM_KILLED,
    STATUS_PROBE_ERROR,
    STATUS_TIMEOUT,
    ExitStatus,
    Iteration,
    Latency,
    Memory,
    SectionResidency,
)

MIB = 1 << 20


def run(
    decode: float | None, status: str = STATUS_OK, warmup: bool = False, index: int = 1, **memory
) -> Iteration:
    signal_number = signal.SIGKILL if status in (STATUS_OOM_KILLED, STATUS_TIMEOUT) else None
    sections = {
        "tf_lite_per_layer_embedder": SectionResidency(130 * MIB, memory.pop("ple", 10 * MIB)),
        "tf_lite_prefill_decode": SectionResidency(12 * MIB, 3 * MIB),
        "tf_lite_prefill_decode#2": SectionResidency(1 * MIB, 1 * MIB),
    }
    return Iteration(
        index=index,
        warmup=warmup,
        latency=Latency(decode_tok_s=decode, prefill_tok_s=decode and decode * 4, ttft_s=0.02),
        memory=Memory(peak_rss=memory.get("rss", 120 * MIB), peak_pss=118 * MIB, sections=sections,
                      faults={"minor": 10, "major": memory.get("major", 3)}),
        exit=ExitStatus(0 if status == STATUS_OK else None, signal_number, status == STATUS_TIMEOUT, status,
                        None if status == STATUS_OK else f"{status} note"),
        timeline=None,
        wall_s=1.0,
    )  # fmt: skip


def test_a_step_is_fast_or_slow_against_its_reference() -> None:
    runs = [run(300.0, warmup=True), run(280.0, major=90), run(290.0, index=2), run(250.0, index=3, major=60)]
    assert step_outcome(runs, Reference(300.0, 2), 0.9) == (FAST, None, pytest.approx(280 / 300, abs=1e-4))
    outcome, note, ratio = step_outcome(runs, Reference(400.0, 2), 0.9)
    assert (outcome, note) == (SLOW, None) and ratio == pytest.approx(0.7)


def test_a_slower_decode_without_major_faults_is_the_machines_drift_not_memory() -> None:
    runs = [run(280.0, major=3), run(270.0, index=2, major=2)]
    outcome, note, ratio = step_outcome(runs, Reference(400.0, 2), 0.9)
    assert outcome == FAST and ratio == pytest.approx(275 / 400, abs=1e-4)
    assert note == (
        "decode 69% of its reference but no more major faults than unconstrained (2 ≤ 10): "
        "the machine's drift, not memory"
    )
    # without fault counts there is only the decode rate to go by
    assert step_outcome(runs, Reference(400.0, None), 0.9)[0] == SLOW


def test_the_first_run_that_did_not_end_ok_decides() -> None:
    reference = Reference(300.0, 0)
    assert step_outcome([run(None, STATUS_OOM_KILLED)], reference, 0.9)[:2] == (KILLED, "oom_killed note")
    assert step_outcome([run(300.0), run(None, STATUS_TIMEOUT, index=2)], reference, 0.9)[0] == STALLED
    assert step_outcome([run(None, STATUS_PROBE_ERROR, warmup=True)], reference, 0.9)[0] == NO_START


def test_figures_are_medians_of_the_ok_runs_else_the_failed_runs_peaks() -> None:
    figures = step_figures(
        [run(300.0, warmup=True, major=900), run(200.0, major=5), run(240.0, index=2, major=7)]
    )
    assert figures.decode_tok_s == 220.0 and figures.major_faults == 6  # the warm-up is not counted
    assert figures.ple_resident == 10 * MIB and figures.transformer_resident == 4 * MIB  # roles summed
    killed = step_figures([run(None, STATUS_OOM_KILLED, rss=40 * MIB, ple=None)])
    assert killed.decode_tok_s is None and killed.peak_rss == 40 * MIB and killed.ple_resident is None


def step(
    index: int, available: int, outcome: str, decode: float | None = None, note: str | None = None
) -> FitStep:
    ratio = None if decode is None else decode / 300.0
    figures = StepFigures(decode_tok_s=decode)
    return FitStep(index, available, available, outcome, figures, "step.json", decode_ratio=ratio, note=note)


def fit_result(steps: list[FitStep]) -> FitResult:
    baseline = FitStep(0, None, 1024 * MIB, FAST, StepFigures(decode_tok_s=300.0), "profile.json", 1.0)
    return FitResult(
        device={"serial": "127.0.0.1:5555"}, bundle={"sha256": "ab" * 32, "bytes": 153 * MIB},
        runner={"name": "litert_lm_main"}, method="cgroup",
        config={"threshold": 0.9, "step_timeout_s": 15.0}, baseline=baseline, steps=steps,
        planner={"minimum": 140 * MIB, "how": "test"},
    )  # fmt: skip


def summarized(steps: list[FitStep]) -> FitResult:
    result = fit_result(steps)
    search = Bisection(full=1024 * MIB, first_guess=200 * MIB, resolution=4 * MIB)
    for s in steps:
        fast = None if s.outcome == BALLOON_KILLED else s.outcome == FAST
        search.add(s.available, fast, RUNS.get(s.outcome))
    summarize(result, search)
    return result


def test_the_verdict_says_the_knee_against_the_bundle_and_where_it_does_not_start() -> None:
    note = "killed by the kernel's OOM killer (memory cgroup oom_kill 0 → 1)"
    result = summarized([
        step(1, 200 * MIB, FAST, 290.0), step(2, 100 * MIB, SLOW, 100.0), step(3, 130 * MIB, FAST, 280.0),
        step(4, 50 * MIB, STALLED), step(5, 25 * MIB, KILLED, note=note), step(6, 115 * MIB, SLOW, 200.0),
    ])  # fmt: skip
    assert result.knee["available"] == 130 * MIB and result.knee["above"] == 115 * MIB
    # the kill point: runs complete down to 100 MiB; at 50 MiB the runner thrashed past the time limit
    assert result.kill["killed_at"] == 50 * MIB and result.kill["runs_at"] == 100 * MIB
    assert result.kill["outcome"] == STALLED
    assert result.planner["error_vs_knee"] == pytest.approx(10 / 130, abs=1e-4)
    assert result.verdict == (
        "decode stays ≥ 90% of the unconstrained run down to 130.0 MiB available (slower at 115.0 MiB); "
        "23.0 MiB (15%) below the bundle's 153.0 MiB; completes, slower, down to 100.0 MiB; "
        "does not run below 100.0 MiB: still running after 15 s (thrashing) at 50.0 MiB available; "
        f"{note} at 25.0 MiB"
    )


def test_a_curve_without_kills_says_so() -> None:
    result = summarized([step(1, 200 * MIB, FAST, 290.0), step(2, 12 * MIB, NO_START, note="below 16 MiB")])
    assert result.kill["killed_at"] is None and result.kill["not_running_at"] == 12 * MIB
    assert "every run completed (down to 200.0 MiB available)" in result.verdict
    assert result.verdict.endswith("12.0 MiB could not be set: below 16 MiB")


def test_fit_json_round_trips_and_is_validated(tmp_path: Path) -> None:
    result = summarized([step(1, 200 * MIB, FAST, 290.0), step(2, 100 * MIB, SLOW, 100.0)])
    path = tmp_path / "fit.json"
    write_fit(result, path)
    assert validate_fit(json.loads(path.read_text())) == []
    loaded = load_fit(tmp_path)
    assert loaded.to_dict() == result.to_dict()
    assert [row[0] for row in curve_rows(loaded)] == ["unconstrained", "1", "2"]  # most memory first
    data = json.loads(path.read_text())
    data["steps"][0]["outcome"] = "meh"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match="outcome is 'meh'"):
        load_fit(path)


def test_the_balloons_ready_line() -> None:
    line = (
        "ready pid=4242 held=1048576 locked=0 available=209715200 swap_free=0 swap_total=0 "
        "vm_rss=1100000 vm_swap=4096 rounds=3"
    )
    state = parse_ready(line)
    assert state is not None and state.pid == 4242 and state.available == 200 * MIB and state.swapped == 4096
    assert parse_ready("error cannot map more memory") is None
    assert parse_ready("ready pid=1") is None  # a line missing figures is not a ready line


def test_bad_fit_options_are_named() -> None:
    profile = ProfileOptions(prefill=32, decode=64)
    for options, words in (
        (FitOptions(method="squeeze"), "--method"),
        (FitOptions(max_steps=0), "--max-steps"),
        (FitOptions(threshold=1.5), "--threshold"),
        (FitOptions(context=50), "shorter than --prefill"),
        (FitOptions(reference_runs=-1), "--reference-runs"),
    ):
        with pytest.raises(UsageError, match=words):
            options.validate(profile)
    with pytest.raises(UsageError, match="give one"):
        FitOptions(context=512).validate(ProfileOptions(prefill=32, decode=64, max_tokens=256))


class FakeLimiter:
    """Stands in for the device side of a step: its balloon is killed in the first ``kills`` attempts."""

    method = "balloon"

    def __init__(self, kills: int) -> None:
        self.kills = kills
        self.applied = 0
        self.released = 0

    def apply(self, target: int) -> Applied:
        self.applied += 1
        return Applied(target, target)

    def broken(self) -> str | None:
        return (
            "the balloon was killed during the run (SIGKILL: lmkd or the OOM killer)"
            if self.applied <= self.kills
            else None
        )

    def release(self) -> None:
        self.released += 1

    def reset(self) -> None:
        pass


@pytest.mark.parametrize(
    ("kills", "outcome", "repeated"), [(0, FAST, False), (1, FAST, True), (2, BALLOON_KILLED, True)]
)
def test_a_step_whose_balloon_is_killed_runs_once_more_then_is_reported(
    kills: int, outcome: str, repeated: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sweep_module, "run_plan", lambda *args, **kwargs: [run(295.0)])
    monkeypatch.setattr(sweep_module, "read_oom_kills", lambda device: 0)
    sweep = sweep_module.Sweep.__new__(sweep_module.Sweep)
    sweep.limiter = FakeLimiter(kills)
    sweep.options = FitOptions(reference_runs=0)
    sweep.baseline = Reference(300.0, 3)
    sweep.steps_dir = tmp_path / "fit"
    sweep.device = type("D", (), {"serial": "127.0.0.1:5555"})()
    sweep.reporter = type("R", (), {"note": lambda self, text: None})()
    sweep.cancel = threading.Event()
    session = type("S", (), {"options": ProfileOptions(iterations=1)})()
    monkeypatch.setattr(sweep_module.Sweep, "_step_session", lambda self, *args: session)
    result = sweep._step(1, 150 * MIB, "knee", 30.0)
    assert (result.outcome, result.repeated) == (outcome, repeated)
    assert sweep.limiter.applied == min(kills, 1) + 1 and sweep.limiter.released == sweep.limiter.applied
    if outcome == BALLOON_KILLED:
        assert result.note.endswith("; again when repeated")
