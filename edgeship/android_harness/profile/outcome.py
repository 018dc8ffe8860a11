"""One run's outcome from the files pulled off the device: why it ended, memory, latency, as an Iteration.

Pure functions over a local run dir (probe output, runner stdout/stderr/log sink); none talks to a device.
"""

from __future__ import annotations

import signal as signals
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgeship.android_harness.probe import ProbeRun, read_probe_output
from edgeship.android_harness.profile.oom import KillRecord, attribute_kill
from edgeship.android_harness.runners import RunnerAdapter, RunnerMetrics
from edgeship.errors import EdgeshipError
from edgeship.exporter.manifest import Section
from edgeship.profiles.schema import (
    STATUS_CRASH,
    STATUS_NO_METRICS,
    STATUS_OK,
    STATUS_PROBE_ERROR,
    STATUS_SIGNAL,
    STATUS_TIMEOUT,
    ExitStatus,
    Iteration,
    Latency,
    Memory,
    SectionResidency,
)

# Signals that mean the program itself failed (a crash), as opposed to being killed from outside.
CRASH_SIGNALS = {signals.SIGSEGV, signals.SIGABRT, signals.SIGBUS, signals.SIGILL, signals.SIGFPE}


def signal_name(number: int) -> str:
    try:
        return signals.Signals(number).name
    except ValueError:
        return f"signal {number}"


def classify_exit(
    code: int | None, signal: int | None, timed_out: bool, has_metrics: bool, timeout_s: float | None = None
) -> ExitStatus:
    """Why a run ended, in the words a reader needs ('SIGKILL: likely the OOM killer')."""
    if timed_out:
        limit = f" {timeout_s:g} s" if timeout_s is not None else ""
        return ExitStatus(code, signal, True, STATUS_TIMEOUT, f"timed out (past --timeout{limit}); killed")
    if signal:
        name = signal_name(signal)
        if signal == signals.SIGKILL:
            return ExitStatus(code, signal, False, STATUS_SIGNAL, "killed by SIGKILL (likely the OOM killer)")
        if signal in CRASH_SIGNALS:
            return ExitStatus(code, signal, False, STATUS_CRASH, f"crashed with {name}")
        return ExitStatus(code, signal, False, STATUS_SIGNAL, f"killed by {name}")
    if code is None:
        return ExitStatus(None, None, False, STATUS_PROBE_ERROR, "no exit status recorded (probe failed?)")
    if code != 0:
        return ExitStatus(code, None, False, STATUS_CRASH, f"runner exited with code {code}")
    if not has_metrics:
        return ExitStatus(
            0, None, False, STATUS_NO_METRICS, "runner exited 0 but printed no benchmark figures"
        )
    return ExitStatus(0, None, False, STATUS_OK, None)


def memory_record(
    figures: dict[str, int | None], sections: dict[str, dict[str, Any]], rusage_maxrss: int | None
) -> Memory:
    """profile.json ``memory`` from the probe's peak figures (``ProbeRun.memory_figures()``) and residency;
    ``exit_memory`` adds the exit sample's figures and the faults."""
    return Memory(
        peak_rss=figures.get("peak_rss"),
        peak_pss=figures.get("peak_pss"),
        peak_anon=figures.get("peak_anon"),
        peak_file=figures.get("peak_file"),
        peak_swap=figures.get("peak_swap"),
        hwm=figures.get("hwm"),
        rusage_maxrss=int(rusage_maxrss) if rusage_maxrss else None,
        sections={
            kind: SectionResidency(
                bytes=int(value["bytes"]),
                resident_peak=value.get("resident_peak"),
                mapped_samples=value.get("mapped_samples"),
                resident_at_exit=value.get("resident_at_exit"),
            )
            for kind, value in sections.items()
        },
    )


# profile.json memory.at_exit key -> the probe's field.
AT_EXIT_FIELDS = {
    "rss": "vm_rss",
    "pss": "pss",
    "anon": "rss_anon",
    "file": "rss_file",
    "swap": "vm_swap",
    "minflt": "minflt",
    "majflt": "majflt",
}


def add_exit_memory(memory: Memory, run: ProbeRun) -> None:
    """The exit sample's figures (or why there are none) and the run's page faults."""
    memory.faults = run.fault_counts()
    if run.exit_sample is None:
        memory.at_exit, memory.at_exit_note = None, f"no exit sample: {run.exit_sample_note}"
        return
    values = run.exit_sample.values
    memory.at_exit = {key: values.get(field) for key, field in AT_EXIT_FIELDS.items()}


def last_line(data: bytes) -> str:
    """The last non-blank line of a program's output, for a one-line note."""
    lines = [line.strip() for line in data.decode(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def iteration_from_outputs(
    local_dir: Path,
    *,
    index: int,
    warmup: bool,
    sections: Sequence[Section],
    adapter: RunnerAdapter,
    timeout_s: float,
    shell_problem: str | None,
    shell_wall: float,
    shell_exit: int | None = None,
    kill_record: KillRecord | None = None,
) -> tuple[Iteration, str | None]:
    """The Iteration of one run from its pulled files, and the probe's version when its output names one.

    ``shell_problem``/``shell_wall``/``shell_exit`` are what the adb shell call saw: the note when the probe
    left nothing usable, the wall time when it recorded none, 128 + signal when the probe itself was killed.
    ``kill_record`` is what the device recorded of memory kills meanwhile (oom.py): a SIGKILL it confirms
    becomes ``oom_killed``.
    """
    relative_dir = local_dir.name
    timeline = local_dir / "timeline.csv"
    latency = Latency(ttft_definition=adapter.ttft_definition)
    memory = Memory()
    try:
        run = read_probe_output(local_dir)
    except (EdgeshipError, OSError, ValueError) as exc:
        note = shell_problem or (exc.message if isinstance(exc, EdgeshipError) else str(exc))
        unusable = Iteration(
            index=index,
            warmup=warmup,
            latency=latency,
            memory=memory,
            exit=ExitStatus(None, None, False, STATUS_PROBE_ERROR, f"probe left no usable output: {note}"),
            timeline=f"{relative_dir}/timeline.csv" if timeline.exists() else None,
            wall_s=shell_wall,
            raw_dir=relative_dir,
        )
        return unusable, None

    spans = [(span.kind, span.offset, span.end) for span in sections]
    residency = run.section_residency(spans)
    for entry in residency.values():
        if not entry["mapped_samples"]:
            entry["resident_peak"] = None  # never seen mapped: unknown, not "0 bytes resident"
    memory = memory_record(run.memory_figures(), residency, run.rusage.get("maxrss"))
    add_exit_memory(memory, run)
    metrics = _parse_runner(adapter, local_dir)
    if metrics is not None:
        latency = Latency(
            init_s=metrics.init_s,
            ttft_s=metrics.ttft_s,
            ttft_definition=adapter.ttft_definition,
            prefill_tok_s=metrics.prefill_tok_s,
            decode_tok_s=metrics.decode_tok_s,
            prefill_tokens=metrics.prefill_tokens,
            decode_tokens=metrics.decode_tokens,
        )
    has_metrics = metrics is not None and metrics.decode_tok_s is not None
    exit_code, signal = run.exit_code, run.signal
    probe_killed = not run.complete and exit_code is None and signal is None and (shell_exit or 0) > 128
    if probe_killed:
        # No result.json: the probe died with the runner (the OOM killer takes the whole process group);
        # the shell saw the probe's death as 128 + signal.
        signal = (shell_exit or 0) - 128
    status = classify_exit(exit_code, signal, run.timed_out, has_metrics, timeout_s)
    if probe_killed and status.note:
        status.note = f"probe and runner {status.note}"
    status = attribute_kill(status, kill_record, run.pid)
    if status.status == STATUS_PROBE_ERROR and shell_problem:
        status.note = shell_problem
    if status.status == STATUS_CRASH and status.signal is None:
        detail = (
            last_line((local_dir / "stderr.txt").read_bytes()) if (local_dir / "stderr.txt").exists() else ""
        )
        if detail:
            status.note = f"{status.note}: {detail[:160]}"
    iteration = Iteration(
        index=index,
        warmup=warmup,
        latency=latency,
        memory=memory,
        exit=status,
        timeline=f"{relative_dir}/timeline.csv" if timeline.exists() else None,
        wall_s=run.wall_s if run.wall_s is not None else shell_wall,
        raw_dir=relative_dir,
        samples=len(run.samples),
        smaps_samples=run.smaps_samples,
    )
    return iteration, run.probe_version or None


def _parse_runner(adapter: RunnerAdapter, local_dir: Path) -> RunnerMetrics | None:
    def read(name: str) -> str | None:
        path = local_dir / name
        return path.read_text(errors="replace") if path.exists() else None

    try:
        return adapter.parse(read("stdout.txt") or "", read("stderr.txt") or "", read("log_sink.txt"))
    except (EdgeshipError, ValueError):
        return None  # no BenchmarkInfo block: classify_exit reports it
