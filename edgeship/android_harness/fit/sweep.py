"""`edgeship fit`: a bundle's fit curve on each device — how little available memory it still decodes well in.

Per device (devices in parallel): the profile set-up (facts, runner, probe, push) → the way to take memory
(limits.py: the virtual device's cgroup, or a balloon) → the unconstrained run, a normal profile written as
profile.json → up to ``--max-steps`` steps at less available memory, chosen by bisection (bisect.py), each
a normal probed run (profile/run.py) whose runs go to ``fit/step-<k>/step.json`` → fit.json rewritten after
every step. The device gets its memory back however this ends: the limiter is closed in a ``finally``, Ctrl-C
closes every device's at once (orchestrate.on_each_device), and what holds the memory ends by itself when
edgeship's adb connection does (the cgroup lease, the balloon's shell).
"""

from __future__ import annotations

import shutil
import signal
import statistics
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edgeship.android_harness.adb import Device
from edgeship.android_harness.fit.bisect import Bisection
from edgeship.android_harness.fit.limits import (
    Applied,
    LimitRefused,
    MemoryLimiter,
    available_now,
    open_limiter,
)
from edgeship.android_harness.fit.options import MIN_STEP_TIMEOUT_S, STEP_TIMEOUT_FACTOR, FitOptions
from edgeship.android_harness.profile.oom import read_oom_kills
from edgeship.android_harness.profile.options import ProfileOptions
from edgeship.android_harness.profile.orchestrate import device_failure, on_each_device, run_plan
from edgeship.android_harness.profile.session import (
    ProfileSession,
    plain_device_state,
    save_profile,
    set_up_session,
)
from edgeship.config import Config
from edgeship.console import Reporter
from edgeship.errors import DeviceError, RunError
from edgeship.exporter.manifest import Build
from edgeship.profiles.fitcurve import (
    BALLOON_KILLED,
    FAILED,
    FAST,
    FIT_FILE_NAME,
    KILLED,
    NO_START,
    RUNS,
    SLOW,
    STALLED,
    STEP_FILE_NAME,
    FitResult,
    FitStep,
    StepFigures,
    write_fit,
)
from edgeship.profiles.planner.model import role_of
from edgeship.profiles.schema import PROFILE_FILE_NAME, STATUS_PROBE_ERROR, STATUS_TIMEOUT, Iteration, Profile
from edgeship.units import format_bytes, format_percent

MIB = 1 << 20
FIRST_GUESS_FACTOR = 1.5  # × the unconstrained run's peak RSS: above what it touched, so likely still fast
RESOLUTION_SHARE = 50  # brackets narrower than first guess ÷ this (2%) are not split further
BALLOON_GRACE_S = 300
# Major faults a step may have beyond its reference runs' and still be taken as unpressed by memory (a run
# reads a few pages again whatever its memory: its log, a page the kernel aged out).
FAULT_MARGIN = 8


@dataclass
class FitOutcome:
    serial: str
    fit_path: Path | None = None
    fit: FitResult | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class OpenLimiters:
    """Every device's open limiter, so a Ctrl-C in the main thread can give all of them back at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: list[MemoryLimiter] = []

    def add(self, limiter: MemoryLimiter) -> None:
        with self._lock:
            self._open.append(limiter)

    def close_all(self) -> None:
        with self._lock:
            limiters = list(self._open)
        for limiter in limiters:
            try:
                limiter.close()
            except Exception:  # one device's failure must not keep the others shrunk
                continue


def fit_devices(
    devices: Sequence[Device],
    build: Build,
    runs_dir: Path,
    profile_options: ProfileOptions,
    fit_options: FitOptions,
    config: Config,
    reporter: Reporter,
) -> list[FitOutcome]:
    runs_dir.mkdir(parents=True, exist_ok=True)
    limiters = OpenLimiters()
    return on_each_device(
        devices,
        lambda device, cancel: fit_device(
            device, build, runs_dir, profile_options, fit_options, config, reporter, cancel, limiters
        ),
        reporter,
        "interrupted: giving every device its memory back; fit.json keeps the steps measured",
        on_interrupt=limiters.close_all,
    )


def fit_device(
    device: Device,
    build: Build,
    runs_dir: Path,
    profile_options: ProfileOptions,
    fit_options: FitOptions,
    config: Config,
    reporter: Reporter,
    cancel: threading.Event,
    limiters: OpenLimiters,
) -> FitOutcome:
    """The fit curve of ``build`` on one device; never raises for a device's failure (the outcome says so)."""
    outcome = FitOutcome(device.serial)
    sweep: Sweep | None = None
    limiter: MemoryLimiter | None = None
    try:
        # How memory is taken is settled first: a device without a way fails before anything is pushed.
        limiter = open_limiter(device, fit_options.method)
        limiters.add(limiter)
        session = set_up_session(device, build, runs_dir, profile_options, config, reporter)
        limiter.prepare(session.store, str(session.profile.device.get("abi")))
        sweep = Sweep(session, limiter, fit_options, reporter, cancel)
        outcome.fit_path = sweep.fit_path
        sweep.run()
    except Exception as exc:  # a device's failure (or a bug) must not stop the others
        outcome.error = device_failure(device.serial, exc)
        if sweep is not None and sweep.result is not None:
            sweep.result.state = "interrupted" if cancel.is_set() else "device lost"
            sweep.result.notes.append(outcome.error)
    finally:
        if sweep is not None:
            sweep.finish()
            outcome.fit = sweep.result
        elif limiter is not None:
            limiter.close()
    return outcome


class Sweep:
    """One device's sweep: the unconstrained run, the steps, the document they fill."""

    def __init__(
        self,
        session: ProfileSession,
        limiter: MemoryLimiter,
        options: FitOptions,
        reporter: Reporter,
        cancel: threading.Event,
    ) -> None:
        self.session = session
        self.device = session.device
        self.limiter = limiter
        self.options = options
        self.reporter = reporter
        self.cancel = cancel
        self.fit_path = session.out_dir / FIT_FILE_NAME
        self.steps_dir = session.out_dir / "fit"
        self.result: FitResult | None = None
        self.bisection: Bisection | None = None
        self.baseline: Reference | None = None  # the first unconstrained runs

    # -- the sweep ---------------------------------------------------------------------------------------
    def run(self) -> None:
        shutil.rmtree(self.steps_dir, ignore_errors=True)  # a previous fit's steps into the same RUNS_DIR
        self.fit_path.unlink(missing_ok=True)
        profile = self.session.profile
        self.reporter.note(f"{self.device.serial}: memory taken by {self.limiter.method}")
        baseline = self._baseline()
        self.result = FitResult(
            device=dict(profile.device),
            bundle={k: profile.bundle.get(k) for k in ("sha256", "manifest_sha256", "bytes", "arch", "recipe",
                                                        "build_dir", "ple")},
            runner={k: profile.runner.get(k) for k in ("name", "version", "sha256", "builtin")},
            method=self.limiter.method,
            config={},
            baseline=baseline,
        )  # fmt: skip
        peak = baseline.figures.peak_rss or 0
        full = baseline.available or 0
        first_guess = int(peak * FIRST_GUESS_FACTOR) if peak else full // 2
        resolution = max(MIB, first_guess // RESOLUTION_SHARE)
        step_timeout = self._step_timeout()
        self.result.config = {
            **{k: profile.config.get(k) for k in ("prefill", "decode", "max_tokens", "iterations", "warmup",
                                                   "threads", "backend")},
            **self.options.to_config(step_timeout, resolution),
        }  # fmt: skip
        self.result.planner = planner_minimum(self.session)
        # Whatever holds the memory outlives no step by more than a grace period, even left alone.
        runs = self.options.step_warmup + int(profile.config.get("iterations") or 1)
        self.limiter.configure(max(MIB, resolution // 4), int(runs * (step_timeout + 120) + BALLOON_GRACE_S))
        profile.config["fit"] = (
            "the unconstrained runs of edgeship fit: the first --iterations, then --reference-runs before "
            "each step"
        )
        self.bisection = Bisection(full=full, first_guess=min(first_guess, full), resolution=resolution)
        self._save()
        while True:
            if len(self.result.steps) >= self.options.max_steps:
                self.result.state = "max steps"
                break
            chosen = self.bisection.next_target()
            if chosen is None:
                self.result.state = "complete"
                break
            if self.cancel.is_set():
                raise DeviceError(
                    f"{self.device.serial}: interrupted before step {len(self.result.steps) + 1}"
                )
            target, meant_for = chosen
            step = self._step(len(self.result.steps) + 1, target, meant_for, step_timeout)
            self.result.steps.append(step)
            runs = RUNS.get(step.outcome)
            fast = None if step.outcome == BALLOON_KILLED else step.outcome == FAST
            self.bisection.add(step.available or target, fast, runs, meant_for)
            self._summarize()
            self._save()

    def finish(self) -> None:
        """Give the device its memory back (whatever happened), then write the last fit.json."""
        try:
            restored: bool | None = self.limiter.close()
        except Exception:  # the device is gone; its end restores itself
            restored = False
        if self.result is None:
            return
        self.result.restored = restored
        if restored is False:
            self.result.notes.append(
                "could not confirm the device got its memory back (it restores itself when adb's "
                "connection ends)"
            )
        try:
            self.session.profile.state["after"] = plain_device_state(self.device)
            save_profile(self.session)
        except DeviceError:
            pass
        if self.result.state == "running":
            self.result.state = "interrupted"
        # The unconstrained figures over every unconstrained run: the first ones and the references.
        unconstrained = self.session.profile.iterations
        self.result.baseline.figures = step_figures(unconstrained)
        measured = [it for it in unconstrained if not it.warmup]
        self.result.baseline.runs = f"{sum(1 for it in measured if it.exit.ok)}/{len(measured)} ok"
        self._summarize()
        self._save()

    # -- the unconstrained run -----------------------------------------------------------------------------
    def _baseline(self) -> FitStep:
        session = self.session
        save_profile(session)
        run_plan(session, session.options.warmup, 0, self.cancel, label="unconstrained ")
        available = available_now(self.device)
        kills = read_oom_kills(self.device)
        iterations = run_plan(session, 0, session.options.iterations, self.cancel, label="unconstrained ")
        measured = [it for it in iterations if it.exit.ok]
        if not measured:
            first = iterations[0].exit.note if iterations else "no run"
            raise RunError(f"{self.device.serial}: the unconstrained run failed ({first}); a fit needs one")
        figures = step_figures(iterations)
        try:
            self.baseline = Reference.of(iterations)
        except ValueError:
            raise RunError(
                f"{self.device.serial}: the unconstrained run gave no decode tok/s to compare with"
            ) from None
        return FitStep(
            index=0,
            target_available=None,
            available=available,
            outcome=FAST,
            figures=figures,
            profile=PROFILE_FILE_NAME,
            decode_ratio=1.0,
            runs=f"{len(measured)}/{len(iterations)} ok",
            oom_kills=_difference(kills, read_oom_kills(self.device)),
        )

    def _step_timeout(self) -> float:
        if self.options.step_timeout_s is not None:
            return self.options.step_timeout_s
        walls = [it.wall_s for it in self.session.profile.measured() if it.exit.ok and it.wall_s]
        median_wall = statistics.median(walls) if walls else MIN_STEP_TIMEOUT_S
        return round(max(MIN_STEP_TIMEOUT_S, STEP_TIMEOUT_FACTOR * median_wall), 1)

    # -- one step --------------------------------------------------------------------------------------------
    def _step(self, index: int, target: int, meant_for: str, step_timeout: float) -> FitStep:
        """Take memory down to ``target`` available, run, give it back; a step whose balloon was killed
        runs once more, then is reported as such."""
        reference = self._reference()
        first_note = None
        for attempt in (1, 2):
            folder = self.steps_dir / f"step-{index}"
            shutil.rmtree(folder, ignore_errors=True)
            kills = read_oom_kills(self.device)
            try:
                applied = self.limiter.apply(target)
            except LimitRefused as exc:
                self.reporter.note(f"{self.device.serial}: step {index}: {format_bytes(target)}: {exc}")
                return FitStep(
                    index, target, None, NO_START, StepFigures(), f"fit/step-{index}/{STEP_FILE_NAME}",
                    runs="0 runs", meant_for=meant_for, note=str(exc),
                    reference_decode_tok_s=reference.decode_tok_s,
                )  # fmt: skip
            session = self._step_session(index, attempt, folder, applied, step_timeout)
            label = f"step {index} ({format_bytes(applied.available)} available): "
            try:
                iterations = run_plan(
                    session, self.options.step_warmup, session.options.iterations, self.cancel,
                    stop_on_failure=True, label=label,
                )  # fmt: skip
                broken = self.limiter.broken()
            finally:
                self.limiter.release()
            if self.cancel.is_set():  # the memory went back mid-step: what it measured is not this step's
                raise DeviceError(f"{self.device.serial}: interrupted during step {index} (not recorded)")
            if broken is not None and attempt == 1:
                first_note = broken
                self.reporter.note(f"{self.device.serial}: step {index}: {broken}; repeating it once")
                continue
            return self._record(index, applied, iterations, meant_for, kills, broken, first_note, reference)
        raise AssertionError("unreachable")

    def _reference(self) -> Reference:
        """What a step is held against: unconstrained runs right before it (the device's whole memory back
        for them), else the first unconstrained runs."""
        assert self.baseline is not None
        if not self.options.reference_runs:
            return self.baseline
        self.limiter.reset()
        runs = run_plan(
            self.session, 0, self.options.reference_runs, self.cancel, label="unconstrained reference "
        )
        self.session.profile.config["iterations"] = len(self.session.profile.measured())
        save_profile(self.session)
        return Reference.of(runs, fallback=self.baseline)

    def _step_session(
        self, index: int, attempt: int, folder: Path, applied: Applied, step_timeout: float
    ) -> ProfileSession:
        base = self.session
        options = replace(base.options, timeout_s=step_timeout)
        if self.limiter.method == "balloon":
            options.oom_score_adj = 1000  # the runner, not the balloon, is what the OOM killer takes
        config = {
            **options.to_config(),
            "warmup": self.options.step_warmup,
            "fit_step": {"index": index, "target_available": applied.target, "available": applied.available,
                         "limit": applied.limit, "method": self.limiter.method},
        }  # fmt: skip
        profile = Profile(
            device=base.profile.device,
            bundle=base.profile.bundle,
            runner=base.profile.runner,
            probe=dict(base.profile.probe),
            config=config,
        )
        return replace(
            base, out_dir=folder, profile=profile, options=options, profile_name=STEP_FILE_NAME,
            started=f"{base.started}-s{index}a{attempt}",
        )  # fmt: skip

    def _record(
        self,
        index: int,
        applied: Applied,
        iterations: list[Iteration],
        meant_for: str,
        kills_before: int | None,
        broken: str | None,
        first_note: str | None,
        reference: Reference,
    ) -> FitStep:
        outcome, note, ratio = step_outcome(iterations, reference, self.options.threshold)
        if broken is not None:
            outcome, note = BALLOON_KILLED, f"{first_note}; again when repeated"
        notes = [text for text in (note, applied.note) if text]
        figures = step_figures(iterations)
        measured = [it for it in iterations if not it.warmup]
        ok = sum(1 for it in measured if it.exit.ok)
        failed = next((it for it in iterations if not it.exit.ok), None)
        runs = f"{ok}/{len(measured)} ok"
        if failed is not None:
            kind = "warm-up" if failed.warmup else "iter"
            runs += f"; {kind} {failed.index}: {failed.exit.note or failed.exit.status}"
        return FitStep(
            index=index,
            target_available=applied.target,
            available=applied.available,
            outcome=outcome,
            figures=figures,
            profile=f"fit/step-{index}/{STEP_FILE_NAME}",
            decode_ratio=ratio,
            limit=applied.limit,
            balloon=applied.balloon_record(),
            runs=runs,
            oom_kills=_difference(kills_before, read_oom_kills(self.device)),
            meant_for=meant_for,
            repeated=first_note is not None,
            note="; ".join(notes) or None,
            reference_decode_tok_s=reference.decode_tok_s,
            reference_major_faults=reference.major_faults,
        )

    # -- the document ----------------------------------------------------------------------------------------
    def _summarize(self) -> None:
        if self.result is None or self.bisection is None:
            return
        summarize(self.result, self.bisection)

    def _save(self) -> None:
        if self.result is not None:
            write_fit(self.result, self.fit_path)


# -- pure parts ---------------------------------------------------------------------------------------------


def _median(values: Iterable[float | int | None]) -> float | None:
    present = [float(value) for value in values if value is not None]
    return statistics.median(present) if present else None


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def _difference(before: int | None, after: int | None) -> int | None:
    return None if before is None or after is None else max(0, after - before)


def residency_by_role(iteration: Iteration, role: str) -> int | None:
    """The resident peaks of the sections of one role (planner roles: ple, transformer, embedder), summed."""
    values = [
        entry.resident_peak
        for kind, entry in iteration.memory.sections.items()
        if role_of(kind) == role and entry.resident_peak is not None
    ]
    return sum(values) if values else None


def step_figures(iterations: Sequence[Iteration]) -> StepFigures:
    """Medians over the measured runs that ended ok; without any, the first run that did not (its peaks up to
    the kill or the time limit)."""
    ok = [it for it in iterations if not it.warmup and it.exit.ok]
    chosen = ok or [it for it in iterations if not it.exit.ok][:1]
    return StepFigures(
        decode_tok_s=_median(it.latency.decode_tok_s for it in ok),
        prefill_tok_s=_median(it.latency.prefill_tok_s for it in ok),
        ttft_s=_median(it.latency.ttft_s for it in ok),
        init_s=_median(it.latency.init_s for it in ok),
        peak_pss=_int(_median(it.memory.peak_pss for it in chosen)),
        peak_rss=_int(_median(it.memory.peak_rss for it in chosen)),
        major_faults=_int(_median((it.memory.faults or {}).get("major") for it in chosen)),
        ple_resident=_int(_median(residency_by_role(it, "ple") for it in chosen)),
        transformer_resident=_int(_median(residency_by_role(it, "transformer") for it in chosen)),
        embedder_resident=_int(_median(residency_by_role(it, "embedder") for it in chosen)),
    )


@dataclass(frozen=True)
class Reference:
    """What a step is held against: the unconstrained runs right before it (or the first ones)."""

    decode_tok_s: float
    major_faults: int | None  # the most any of them had (None: not counted)

    @classmethod
    def of(cls, runs: Sequence[Iteration], fallback: Reference | None = None) -> Reference:
        ok = [it for it in runs if not it.warmup and it.exit.ok]
        decode = _median(it.latency.decode_tok_s for it in ok)
        faults = [(it.memory.faults or {}).get("major") for it in ok]
        counted = [value for value in faults if value is not None]
        if decode is None:
            if fallback is None:
                raise ValueError("no unconstrained run gave a decode rate")
            return fallback
        return cls(decode, max(counted) if counted else None)


def step_outcome(
    iterations: Sequence[Iteration], reference: Reference, threshold: float
) -> tuple[str, str | None, float | None]:
    """(outcome, note, decode ÷ the reference's) of a step's runs; the first that did not end ok decides (a
    step stops at it).

    Below the threshold a step is slow only when it paid in major faults (more than any reference run, by a
    margin): memory slows decoding by taking pages the runner then reads again from storage. A slower decode
    without them is the machine's or phone's own drift — load, heat — and is noted, not called slow.
    """
    failed = next((it for it in iterations if not it.exit.ok), None)
    if failed is not None:
        status = failed.exit
        if status.status == STATUS_TIMEOUT:
            return STALLED, "still running at the step's time limit (thrashing)", None
        if status.signal == signal.SIGKILL:
            return KILLED, status.note, None
        if status.status == STATUS_PROBE_ERROR:
            return NO_START, status.note, None
        return FAILED, status.note, None
    measured = [it for it in iterations if not it.warmup]
    decode = _median(it.latency.decode_tok_s for it in measured)
    if decode is None:
        return FAILED, "no decode figure", None
    ratio = round(decode / reference.decode_tok_s, 4)
    if ratio >= threshold:
        return FAST, None, ratio
    faults = _median((it.memory.faults or {}).get("major") for it in measured)
    if faults is None or reference.major_faults is None:
        return SLOW, None, ratio
    allowance = reference.major_faults + max(FAULT_MARGIN, reference.major_faults // 10)
    if faults > allowance:
        return SLOW, None, ratio
    return (
        FAST,
        (
            f"decode {format_percent(ratio, digits=0)} of its reference but no more major faults than "
            f"unconstrained ({faults:.0f} ≤ {allowance}): the machine's drift, not memory"
        ),
        ratio,
    )


def summarize(result: FitResult, bisection: Bisection) -> None:
    """knee, kill and the verdict (with the launch claim against the bundle's size) from the steps so far."""
    steps = [result.baseline, *result.steps]

    def at(available: int) -> FitStep | None:
        return next((s for s in steps if (s.available or s.target_available) == available), None)

    knee = bisection.knee()
    knee_step = at(knee.high)
    result.knee = {
        "available": knee.high,
        "above": knee.low,  # the largest available memory measured below the knee that was not fast
        "step": knee_step.index if knee_step else None,
        "decode_tok_s": knee_step.figures.decode_tok_s if knee_step else None,
        "decode_ratio": knee_step.decode_ratio if knee_step else None,
        "resolved": knee.width <= bisection.resolution,
    }
    kill = bisection.kill()
    # The largest available memory at which runs stopped completing: the kernel (or lmkd) killed the runner,
    # it failed, or it thrashed past the step's time limit (and the probe killed it there).
    ended = [step for step in result.steps if step.outcome in (KILLED, FAILED, STALLED)]
    worst = max(ended, key=lambda step: step.available or step.target_available or 0) if ended else None
    result.kill = {
        "killed_at": (worst.available or worst.target_available) if worst else None,
        "step": worst.index if worst else None,
        "outcome": worst.outcome if worst else None,
        "how": (worst.note or worst.outcome) if worst else None,
        # the bracket: runs complete down to runs_at; they did not at not_running_at (killed, stalled, or the
        # memory could not be taken that low)
        "runs_at": kill.high,
        "not_running_at": kill.low or None,
        "resolved": kill.width <= bisection.resolution,
    }
    if result.planner is not None and result.planner.get("minimum") and knee_step is not None and knee.high:
        result.planner["error_vs_knee"] = round((result.planner["minimum"] - knee.high) / knee.high, 4)
    result.verdict = verdict_text(result)


def verdict_text(result: FitResult) -> str:
    """The curve in one line: the knee against the bundle's size (the launch claim), where runs only
    complete slowly, and where they stop completing (stalled past the time limit, killed, not started)."""
    threshold = float(result.config.get("threshold") or 0.9)
    knee, kill = result.knee or {}, result.kill or {}

    def available(step: FitStep) -> int:
        return step.available or step.target_available or 0

    below_knee = [s for s in result.steps if available(s) < (knee.get("available") or 0)]
    parts = []
    if knee.get("step"):
        slower = f" (slower at {format_bytes(knee['above'])})" if knee.get("above") else ""
        parts.append(
            f"decode stays ≥ {format_percent(threshold, digits=0)} of the unconstrained run down to "
            f"{format_bytes(knee['available'])} available{slower}"
        )
        size = result.bundle.get("bytes")
        if size:
            gap = size - knee["available"]
            side = "below" if gap >= 0 else "above"
            parts.append(
                f"{format_bytes(abs(gap))} ({format_percent(abs(gap) / size, digits=0)}) {side} the bundle's "
                f"{format_bytes(size)}"
            )
    elif result.steps:
        parts.append("no constrained step kept decode at the unconstrained rate")
    slow = [s for s in below_knee if s.outcome == SLOW]
    if slow:
        parts.append(f"completes, slower, down to {format_bytes(min(available(s) for s in slow))}")
    refused = [s for s in result.steps if s.outcome == NO_START]
    if kill.get("killed_at"):
        how = kill.get("how") or kill.get("outcome")
        if kill.get("outcome") == STALLED:
            limit = result.config.get("step_timeout_s")
            how = f"still running after {limit:g} s (thrashing)" if limit else "thrashing"
        parts.append(
            f"does not run below {format_bytes(kill.get('runs_at'))}: {how} at "
            f"{format_bytes(kill['killed_at'])} available"
        )
        oom = [s for s in result.steps if s.outcome == KILLED]
        if not oom:
            parts.append("no step was killed by the OOM killer")
        elif kill.get("outcome") != KILLED:
            largest = max(oom, key=available)
            parts.append(f"{largest.note or 'killed'} at {format_bytes(available(largest))}")
    elif result.steps:
        ran = [available(s) for s in result.steps if s.outcome != NO_START]
        down_to = f" (down to {format_bytes(min(ran))} available)" if ran else ""
        parts.append(f"every run completed{down_to}")
    if refused:
        parts.append(
            f"{format_bytes(max(available(s) for s in refused))} could not be set: {refused[0].note}"
        )
    return "; ".join(parts)


def planner_minimum(session: ProfileSession) -> dict[str, Any] | None:
    """The planner's prediction of the least memory the runs decode at full speed in, for the configuration
    profiled (planner.minimum_memory)."""
    from edgeship.profiles.planner import BuildFacts, minimum_memory, plan_build, runner_key

    profile = session.profile
    config = profile.config
    tokens = int(config.get("prefill") or 0) + int(config.get("decode") or 0)
    runner = runner_key(profile.runner.get("name"), profile.runner.get("version"))
    plan = plan_build(BuildFacts.from_build(session.build), runner=runner, distinct_tokens=tokens)
    minimum = minimum_memory(plan, session.build.bytes)
    return {
        "runner": plan.runner,
        **minimum.to_dict(),
        "distinct_tokens": tokens,
        "notes": list(plan.notes),
    }
