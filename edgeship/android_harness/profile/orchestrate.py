"""`edgeship profile`: run a bundle through the probe on each device and write profile.json.

Per device (devices in parallel, one run at a time on each): facts → runner and probe for its ABI → push what
is missing → state before → warm-up runs → measured runs (each its own probe run, so each has its own memory
timeline) → state after. After every run the raw outputs are pulled into
``RUNS_DIR/<serial>/<bundle-sha12>/{warmup,iter}-<k>/`` and profile.json is rewritten atomically, so a crash
of edgeship, the device or the runner keeps every run measured so far. A runner that is killed, crashes or
overstays ``--timeout`` is recorded with its partial timeline and the next run goes on.

The pieces: profile_options (what was asked), profile_session (set-up, save),
profile_run (one run on the device), run_outcome (one run's pulled files → Iteration). This module runs the
plan per device and the devices in parallel.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from edgeship.android_harness.adb import Device
from edgeship.android_harness.profile.options import ProfileOptions
from edgeship.android_harness.profile.run import run_once
from edgeship.android_harness.profile.session import (
    ProfileSession,
    plain_device_state,
    save_profile,
    set_up_session,
)
from edgeship.config import Config
from edgeship.console import Reporter
from edgeship.errors import DeviceError, EdgeshipError, RunError
from edgeship.exporter.manifest import Build, read_build
from edgeship.profiles.schema import PROFILE_FILE_NAME, Iteration, Profile
from edgeship.units import format_rate

T = TypeVar("T")

# -- one device ------------------------------------------------------------------------------------------


@dataclass
class DeviceOutcome:
    """What happened on one device: where its profile is, and whether it or any run failed."""

    serial: str
    profile_path: Path | None = None
    profile: Profile | None = None
    error: str | None = None  # the device failed (setup, push, lost mid-way)
    failed_runs: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None and self.failed_runs == 0


def run_plan(
    session: ProfileSession,
    warmup: int,
    iterations: int,
    cancel: threading.Event | None = None,
    stop_on_failure: bool = False,
    label: str = "",
) -> list[Iteration]:
    """Warm-up runs then measured runs, each saved to the session's profile as it ends and numbered after
    the profile's runs of its kind; with ``stop_on_failure`` the first run that does not end ok is the last (a
    fit's step: a killed runner will be killed again). DeviceError when ``cancel`` is set between runs or the
    device is lost."""
    device = session.device
    warmups_so_far = sum(1 for it in session.profile.iterations if it.warmup)
    measured_so_far = len(session.profile.iterations) - warmups_so_far
    plan = [(warmups_so_far + k, True) for k in range(1, warmup + 1)]
    plan += [(measured_so_far + k, False) for k in range(1, iterations + 1)]
    done: list[Iteration] = []
    for index, is_warmup in plan:
        if cancel is not None and cancel.is_set():
            raise DeviceError(
                f"{device.serial}: interrupted before {'warm-up' if is_warmup else 'run'} {index}"
            )
        iteration = run_once(session, index, is_warmup)
        session.profile.iterations.append(iteration)
        save_profile(session)
        done.append(iteration)
        kind = "warm-up" if is_warmup else "iteration"
        session.reporter.note(f"{device.serial}: {label}{kind} {index}: {_describe(iteration)}")
        if stop_on_failure and not iteration.exit.ok:
            break
    return done


def device_failure(serial: str, exc: BaseException) -> str:
    """The one line a device's failure is reported with (a bug says it is one)."""
    if isinstance(exc, EdgeshipError):
        return exc.message if exc.message.startswith(serial) else f"{serial}: {exc.message}"
    if isinstance(exc, OSError):  # the local disk (runs dir) or the adb socket
        return f"{serial}: {exc}"
    return f"{serial}: unexpected {type(exc).__name__}: {exc} (please report)"


def profile_device(
    device: Device,
    build: Build,
    runs_dir: Path,
    options: ProfileOptions,
    config: Config,
    reporter: Reporter,
    cancel: threading.Event | None = None,
) -> DeviceOutcome:
    """Profile ``build`` on one device; never raises for a device or run failure (the outcome says so)."""
    outcome = DeviceOutcome(serial=device.serial)
    session: ProfileSession | None = None
    try:
        session = set_up_session(device, build, runs_dir, options, config, reporter)
        outcome.profile_path = session.out_dir / PROFILE_FILE_NAME
        outcome.profile = session.profile
        save_profile(session)
        run_plan(session, options.warmup, options.iterations, cancel)
        session.profile.state["after"] = plain_device_state(device)
        save_profile(session)
    except Exception as exc:  # a device's failure (or a bug) must not stop the other devices' runs
        outcome.error = device_failure(device.serial, exc)
    if session is not None:
        outcome.failed_runs = len(session.profile.failed())
    return outcome


def _describe(iteration: Iteration) -> str:
    if not iteration.exit.ok:
        return iteration.exit.note or iteration.exit.status
    latency = iteration.latency
    decode = (
        f"{format_rate(latency.decode_tok_s)} decode"
        if latency.decode_tok_s is not None
        else "no decode figure"
    )
    # A run that ended well without an exit sample (ptrace refused on this device): its section figures come
    # from the periodic samples only, which a reader of the notes should know.
    missing_exit = f"; {iteration.memory.at_exit_note}" if iteration.memory.at_exit_note else ""
    return f"ok, {decode}{missing_exit}"


# -- many devices -----------------------------------------------------------------------------------------


def profile_devices(
    devices: Sequence[Device],
    build: Build | Path,
    runs_dir: Path,
    options: ProfileOptions,
    config: Config,
    reporter: Reporter | None = None,
) -> list[DeviceOutcome]:
    """Profile one build on every device in parallel (one thread per device); outcomes in device order.

    ``build`` is a checked Build, or a BUILD_DIR that is read and verified here (sha256, once for every
    device).
    """
    options.validate()
    if not isinstance(build, Build):
        build = read_build(build, verify=True)
    options.validate_for(build)
    reporter = reporter or Reporter()
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    return on_each_device(
        devices,
        lambda device, cancel: profile_device(device, build, runs_dir, options, config, reporter, cancel),
        reporter,
        "interrupted: stopping after the current runs; profile.json keeps the finished ones",
    )


def on_each_device(
    devices: Sequence[Device],
    work: Callable[[Device, threading.Event], T],
    reporter: Reporter,
    interrupted: str,
    on_interrupt: Callable[[], None] | None = None,
) -> list[T]:
    """``work(device, cancel)`` on every device at once (one thread each); results in device order.

    Ctrl-C: threads cannot be killed, so ``cancel`` asks each to stop after its current run (bounded by the
    run's timeout) and ``on_interrupt`` runs at once (a fit gives the devices their memory back before
    waiting); the KeyboardInterrupt is raised again once they stopped. A second Ctrl-C leaves at once.
    """
    if not devices:
        return []
    cancel = threading.Event()
    pool = ThreadPoolExecutor(max_workers=len(devices), thread_name_prefix="device")
    futures = [pool.submit(work, device, cancel) for device in devices]
    try:
        return [future.result() for future in futures]
    except KeyboardInterrupt:
        cancel.set()
        reporter.note(interrupted)
        if on_interrupt is not None:
            on_interrupt()
        for future in futures:
            future.result()
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def raise_for_outcomes(outcomes: Sequence[DeviceOutcome]) -> None:
    """The exit code says what failed: DeviceError when a device failed, RunError when only runs did."""
    failed_devices = [outcome for outcome in outcomes if outcome.error]
    if failed_devices:
        first = failed_devices[0]
        more = f" (and {len(failed_devices) - 1} more devices)" if len(failed_devices) > 1 else ""
        raise DeviceError(f"{first.error}{more}")
    failed_runs = [outcome for outcome in outcomes if outcome.failed_runs]
    if failed_runs:
        total = sum(outcome.failed_runs for outcome in failed_runs)
        where = ", ".join(f"{o.serial} ({o.failed_runs})" for o in failed_runs)
        raise RunError(f"{total} profiled run(s) failed on {where}; see exit in profile.json")
