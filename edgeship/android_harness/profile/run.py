"""One run on a device: cool-down, the probe's shell line, run it, pull its raw files, read its Iteration.

Each run is its own probe run (its own memory timeline) in its own device run dir; the raw files come back to
``<out_dir>/{warmup,iter}-<k>/`` and the device copy is removed.
"""

from __future__ import annotations

import shlex
import shutil
import signal
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from edgeship.android_harness.adb import Device
from edgeship.android_harness.probe import probe_command
from edgeship.android_harness.profile.cooldown import wait_for_cooldown
from edgeship.android_harness.profile.oom import KillRecord, kill_log_lines, read_oom_kills
from edgeship.android_harness.profile.options import WEIGHT_CACHE_COLD, WEIGHT_CACHE_OFF
from edgeship.android_harness.profile.outcome import iteration_from_outputs, last_line
from edgeship.android_harness.profile.session import (
    ProfileSession,
    plain_device_state,
    sanitize_serial,
    save_profile,
)
from edgeship.android_harness.runners import RunConfig
from edgeship.errors import DeviceError
from edgeship.profiles.schema import STATUS_PROBE_ERROR, ExitStatus, Iteration

# Extra time the adb shell call gets beyond the probe's own --timeout-s: start-up, the final smaps read, exit.
SHELL_GRACE_S = 120.0


def probe_shell_command(
    *,
    probe: str,
    out_dir: str,
    interval_ms: int,
    timeout_s: float,
    maps: Sequence[str],
    runner_argv: Sequence[str],
    env: dict[str, str] | None = None,
    smaps_interval_ms: int | None = None,
    oom_score_adj: int | None = None,
) -> str:
    """The one device shell line of a run: make the run dir, go there, exec the probe (every word quoted).

    ``oom_score_adj`` (a fit's balloon steps) is set on the shell first, so the probe and the runner inherit
    it: raising one's own score needs no privilege, and it makes the runner, not the balloon, the process the
    OOM killer and lmkd take first when the runner does not fit.
    """
    probe_argv = probe_command(
        probe,
        out_dir,
        runner_argv,
        interval_ms=interval_ms,
        timeout_s=timeout_s,
        smaps_interval_ms=smaps_interval_ms,
        maps=maps,
    )
    env_words = [f"{name}={value}" for name, value in sorted((env or {}).items())]
    exec_words = (["env", *env_words] if env_words else []) + probe_argv
    quote = shlex.quote
    score = (
        ""
        if oom_score_adj is None
        else f"{{ echo {int(oom_score_adj)} > /proc/self/oom_score_adj; }} 2>/dev/null; "
    )
    return f"{score}mkdir -p {quote(out_dir)} && cd {quote(out_dir)} && exec " + " ".join(
        quote(w) for w in exec_words
    )


def run_once(session: ProfileSession, index: int, warmup: bool) -> Iteration:
    """Run the bundle once under the probe; DeviceError (after saving what it left) if the device is lost."""
    options = session.options
    device = session.device
    name = f"{'warmup' if warmup else 'iter'}-{index}"
    local_dir = session.out_dir / name
    if local_dir.exists():
        shutil.rmtree(local_dir)
    local_dir.mkdir(parents=True)

    cooldown = None
    if options.cooldown_c is not None:
        result = wait_for_cooldown(
            lambda: (plain_device_state(device) or {}).get("thermal"),
            options.cooldown_c,
            max_wait_s=options.cooldown_max_wait_s,
            on_wait=lambda zone, c: session.reporter.note(
                f"{device.serial}: waiting for {zone} {c:.1f} °C < {options.cooldown_c:g} °C"
            ),
        )
        cooldown = result.to_dict()

    run_id = f"{session.build.sha12}-{session.started}-{sanitize_serial(device.serial)}-{name}"
    remote_dir = session.store.run_dir(run_id)
    log_sink = f"{remote_dir}/log_sink.txt"
    run_config = RunConfig(
        backend=options.backend,
        threads=options.threads,
        prefill=options.prefill,
        decode=options.decode,
        iterations=1,  # one engine run per probe run: each iteration gets its own memory timeline
        max_tokens=options.effective_max_tokens,
        disable_weight_cache=options.weight_cache == WEIGHT_CACHE_OFF,
        log_sink_path=log_sink,
    )
    if options.weight_cache == WEIGHT_CACHE_COLD:
        remove_weight_caches(device, session.remote_bundle)
    runner_argv = session.adapter.build_command(
        session.remote_bundle, run_config, runner_path=session.runner_path
    )
    command = probe_shell_command(
        probe=session.remote_probe,
        out_dir=remote_dir,
        interval_ms=options.interval_ms,
        timeout_s=options.timeout_s,
        maps=[session.remote_bundle],
        runner_argv=runner_argv,
        env=session.runner_env,
        smaps_interval_ms=options.smaps_interval_ms,
        oom_score_adj=options.oom_score_adj,
    )
    oom_before = read_oom_kills(device)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    started = time.monotonic()
    shell_problem: str | None = None
    shell_exit: int | None = None
    try:
        shell = device.shell(command, timeout=options.timeout_s + SHELL_GRACE_S)
        shell_exit = shell.exit_code
        if shell.exit_code == 127 or (shell.exit_code != 0 and not shell.stdout and shell.stderr):
            shell_problem = last_line(shell.stderr) or f"shell exited {shell.exit_code}"
    except DeviceError as exc:
        shell_problem = exc.message
    shell_wall = time.monotonic() - started

    try:
        _pull_run_dir(device, remote_dir, local_dir)
        device.shell(["rm", "-rf", remote_dir])  # the raw files are on the host now; keep the phone clean
    except DeviceError as exc:
        # The device is gone: keep what this run left locally, then let the device be reported as failed.
        lost = _read_outputs(session, index, warmup, local_dir, exc.message, shell_wall)
        lost.exit = ExitStatus(None, None, False, STATUS_PROBE_ERROR, f"device lost: {exc.message}")
        session.profile.iterations.append(lost)
        save_profile(session)
        raise
    # The probe exits 128 + the runner's signal (and the shell so when the probe itself was killed): only a
    # SIGKILL sends us to the device's logs for lmkd's or the kernel's word on it.
    killed = shell_exit == 128 + signal.SIGKILL
    kills = KillRecord(oom_before, read_oom_kills(device), kill_log_lines(device) if killed else ())
    iteration = _read_outputs(
        session, index, warmup, local_dir, shell_problem, shell_wall, shell_exit, kill_record=kills
    )
    iteration.cooldown = cooldown
    iteration.started_at = started_at
    return iteration


def remove_weight_caches(device: Device, remote_bundle: str) -> None:
    """Delete the weight caches LiteRT-LM wrote beside the bundle (``<bundle>_<mtime>_<size>.xnnpack_cache``,
    and the GPU's ``…_weight_cache.bin``): the next run starts as a first launch does."""
    result = device.shell(f"rm -f -- {shlex.quote(remote_bundle)}_*")
    if result.exit_code != 0:
        problem = last_line(result.stderr)
        raise DeviceError(f"cannot remove the weight cache beside {remote_bundle}: {problem}")


def _pull_run_dir(device: Device, remote_dir: str, local_dir: Path) -> None:
    listing = device.shell(["ls", "-1", remote_dir])
    if listing.exit_code != 0:
        return  # the probe never made it; the iteration says why
    for name in listing.stdout.decode(errors="replace").split("\n"):
        name = name.strip()
        if name and "/" not in name and name not in (".", ".."):
            device.pull_file(f"{remote_dir}/{name}", local_dir / name)


def _read_outputs(
    session: ProfileSession,
    index: int,
    warmup: bool,
    local_dir: Path,
    shell_problem: str | None,
    shell_wall: float,
    shell_exit: int | None = None,
    kill_record: KillRecord | None = None,
) -> Iteration:
    """The run's Iteration from its pulled files; the probe's version goes into the profile's probe record."""
    iteration, probe_version = iteration_from_outputs(
        local_dir,
        index=index,
        warmup=warmup,
        sections=session.sections,
        adapter=session.adapter,
        timeout_s=session.options.timeout_s,
        shell_problem=shell_problem,
        shell_wall=shell_wall,
        shell_exit=shell_exit,
        kill_record=kill_record,
    )
    if probe_version:
        session.profile.probe["version"] = probe_version
    return iteration
