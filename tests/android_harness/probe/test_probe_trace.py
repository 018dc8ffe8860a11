"""The exit sample: the probe traces its runner and reads everything once more as it exits; without ptrace
(refused by seccomp, or --no-trace) it runs the runner untraced and says why."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from edgeship.android_harness.probe import probe_command, read_probe_output

MIB = 1024 * 1024
FILE_MIB = 8
TOUCH_MIB = 4


def fidelity_argv(fidelity: Path, data: Path, hold_ms: int) -> list[str]:
    """fidelity: 4 MiB anonymous, ``data`` mapped at 0 (TOUCH_MIB read), a 1 MiB spike, ``hold_ms`` holds."""
    return [str(fidelity), "4", str(data), str(TOUCH_MIB), "4", "0", "1", "0", str(hold_ms), "0"]


def make_data(tmp_path: Path) -> Path:
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(FILE_MIB * MIB))
    return data


def test_a_mapping_no_periodic_read_saw_is_measured_at_exit(
    probe_x86: Path, fidelity_x86: Path, tmp_path: Path
) -> None:
    """A short run with smaps read only once, at its start: the exit sample alone sees the file's mapping.

    The runner is a shell that waits 50 ms, then execs the program (same pid, a new address space): the one
    periodic read sees the shell, the exit sample the program."""
    data = make_data(tmp_path)
    out = tmp_path / "o"
    runner = ["sh", "-c", 'sleep 0.05; exec "$@"', "sh", *fidelity_argv(fidelity_x86, data, 10)]
    argv = probe_command(str(probe_x86), str(out), runner, maps=[str(data)], smaps_interval_ms=100_000)
    completed = subprocess.run(argv, capture_output=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    run = read_probe_output(out)
    assert run.traced and run.trace_error is None
    assert run.exit_sample is not None and run.exit_sample.smaps_read
    assert not run.mapping_samples  # the one periodic read came before the mapping existed
    residency = run.section_residency([("head", 0, 4 * MIB), ("tail", 4 * MIB, FILE_MIB * MIB)])
    head = residency["head"]
    assert head["resident_at_exit"] == head["resident_peak"] == TOUCH_MIB * MIB
    assert head["mapped_samples"] == 1
    assert residency["tail"]["resident_at_exit"] == 0  # mapped? no: sampled at exit and not there
    values = run.exit_sample.values
    assert values["rss_anon"] is not None and values["rss_anon"] >= 4 * MIB
    assert values["minflt"] is not None and values["minflt"] > 0
    # The exit sample's figures count toward the peaks result.json reports.
    assert run.peaks["rss_anon"] >= values["rss_anon"]


def test_ptrace_refused_runs_untraced_and_says_why(
    probe_x86: Path, noptrace_x86: Path, fidelity_x86: Path, tmp_path: Path
) -> None:
    data = make_data(tmp_path)
    out = tmp_path / "o"
    argv = probe_command(str(probe_x86), str(out), fidelity_argv(fidelity_x86, data, 150), maps=[str(data)])
    completed = subprocess.run([str(noptrace_x86), *argv], capture_output=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    run = read_probe_output(out)
    assert not run.traced and run.trace_error == "ptrace refused: Operation not permitted"
    assert run.exit_sample is None
    assert run.exit_sample_note == "the runner was not traced (ptrace refused: Operation not permitted)"
    # Everything else as before: the exit code, the periodic samples, the mapping seen by smaps.
    assert run.ok and len(run.samples) >= 3 and run.smaps_samples >= 1
    assert any(row.path == str(data) for row in run.mapping_samples)


def test_no_trace_flag(probe_x86: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    subprocess.run([str(probe_x86), "--no-trace", "--out", str(out), "--", "true"], check=True, timeout=30)
    raw = json.loads((out / "result.json").read_text())
    assert raw["trace"] == {"enabled": False, "error": "disabled by --no-trace"}
    assert raw["exit_sample"] == {
        "taken": False,
        "reason": "the runner was not traced (disabled by --no-trace)",
    }


def test_a_traced_runner_still_gets_its_signals_and_stops(probe_x86: Path, tmp_path: Path) -> None:
    """Traced, the runner's own signals pass through unchanged, and a stopped runner stays stopped until
    SIGCONT (a group stop is listened to, not resumed)."""
    out = tmp_path / "o"
    script = "trap 'echo got-usr1' USR1; kill -USR1 $$; kill -STOP $$; echo resumed; exit 4"
    process = subprocess.Popen(probe_command(str(probe_x86), str(out), ["sh", "-c", script], interval_ms=20))
    time.sleep(0.6)
    assert process.poll() is None  # the runner is still stopped
    pid = int(
        subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()[0]
    )
    os.kill(pid, signal.SIGCONT)
    assert process.wait(timeout=15) == 4
    run = read_probe_output(out)
    assert run.stdout().split() == ["got-usr1", "resumed"]
    assert run.exit_code == 4 and run.exit_sample is not None  # an exit code of its own: sampled


def test_a_runner_killed_mid_run_keeps_its_samples_and_has_no_exit_sample(
    probe_x86: Path, tmp_path: Path
) -> None:
    out = tmp_path / "o"
    completed = subprocess.run(
        probe_command(str(probe_x86), str(out), ["sh", "-c", "sleep 0.3; kill -TERM $$"], interval_ms=20),
        capture_output=True,
        timeout=60,
    )
    assert completed.returncode == 128 + signal.SIGTERM
    run = read_probe_output(out)
    assert len(run.samples) >= 5  # taken until the end
    assert run.exit_sample is None
    assert run.exit_sample_note == "the runner was killed by signal 15 before it exited"
    assert run.raw["exit_sample"] == {"taken": False, "reason": run.exit_sample_note}
