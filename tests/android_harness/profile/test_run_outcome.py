"""A run's outcome from what the real probe left: the OOM-killer path and a probe that left nothing.

The probe (x86-64 build) runs a stand-in runner here; run_outcome turns its files into the Iteration that
profile.json records, exactly as it does for files pulled off a device.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from edgeship.android_harness.probe import probe_command
from edgeship.android_harness.profile.outcome import iteration_from_outputs
from edgeship.android_harness.runners import get_adapter
from edgeship.exporter.manifest import Section
from edgeship.profiles.schema import STATUS_PROBE_ERROR, STATUS_SIGNAL


def _outcome(local_dir: Path, shell_exit: int | None, shell_problem: str | None = None):  # type: ignore[no-untyped-def]
    return iteration_from_outputs(
        local_dir,
        index=1,
        warmup=False,
        sections=[Section("tf_lite_prefill_decode", 0, 4096)],
        adapter=get_adapter("litert_lm_main"),
        timeout_s=60.0,
        shell_problem=shell_problem,
        shell_wall=1.5,
        shell_exit=shell_exit,
    )


def test_a_runner_killed_by_sigkill_is_recorded_with_what_was_measured(
    probe_x86: Path, tmp_path: Path
) -> None:
    out = tmp_path / "iter-1"
    # The runner grows its memory a little, prints a partial line, then dies the way the OOM killer kills.
    runner = [
        "sh",
        "-c",
        "x=$(head -c 2000000 /dev/zero | tr '\\0' a); echo 'loading...'; sleep 0.3; kill -KILL $$",
    ]
    completed = subprocess.run(
        probe_command(str(probe_x86), str(out), runner, interval_ms=20), capture_output=True, timeout=60
    )
    iteration, version = _outcome(out, completed.returncode)
    assert iteration.exit.status == STATUS_SIGNAL and iteration.exit.signal == signal.SIGKILL
    assert "OOM" in (iteration.exit.note or "")
    # What was measured before the kill is kept: the samples and the peak memory of the run.
    assert iteration.samples > 0
    assert iteration.memory.peak_rss is not None and iteration.memory.peak_rss > 2_000_000
    assert iteration.latency.decode_tok_s is None  # never printed: missing, not zero
    # No exit sample for a killed runner: absent (not zero), and the iteration says why.
    assert iteration.memory.at_exit is None
    assert "killed by signal 9" in (iteration.memory.at_exit_note or "")
    assert all(entry.resident_at_exit is None for entry in iteration.memory.sections.values())
    assert iteration.memory.faults and iteration.memory.faults["minor"] > 0
    assert version


def test_a_probe_that_left_nothing_is_a_probe_error_with_the_shells_reason(tmp_path: Path) -> None:
    empty = tmp_path / "iter-2"
    empty.mkdir()
    iteration, version = _outcome(empty, None, shell_problem="adb shell timed out after 90 s")
    assert iteration.exit.status == STATUS_PROBE_ERROR
    assert "adb shell timed out" in (iteration.exit.note or "")
    assert iteration.wall_s == 1.5 and version is None
