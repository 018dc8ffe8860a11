"""Who killed the runner: the kernel's record (memory cgroup OOM count, lmkd and kernel log lines) read into
exit.status. Parsers on captured text; the classification on real probe output of a SIGKILLed runner."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from edgeship.android_harness.probe import probe_command
from edgeship.android_harness.profile.oom import KillRecord, attribute_kill, naming_pid, parse_oom_kills
from edgeship.android_harness.profile.outcome import iteration_from_outputs
from edgeship.android_harness.runners import get_adapter
from edgeship.exporter.manifest import Section
from edgeship.profiles.schema import STATUS_OK, STATUS_OOM_KILLED, STATUS_SIGNAL, ExitStatus

V1_OOM_CONTROL = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"
V2_EVENTS = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n"
# As phones print them (lmkd's killinfo event and its main-log line; the kernel's OOM report).
LOGCAT_EVENTS = "12-01 22:49:00.123  612  612 I killinfo: [4321,2000,1000,0,180224,8,0,0,0,0,0,0,0]"
LOGCAT_MAIN = (
    "12-01 22:49:00.120  612  612 I lowmemorykiller: Kill 'litert_lm_main' (4321), uid 2000, "
    "oom_score_adj 1000 to free 180224kB rss, 0kB swap; reason: low watermark is breached"
)
DMESG = (
    "[ 8123.456789] Out of memory: Killed process 4321 (litert_lm_main) total-vm:912344kB, anon-rss:1802kB"
)
SIGKILLED = ExitStatus(137, signal.SIGKILL, False, STATUS_SIGNAL, "killed by SIGKILL (likely the OOM killer)")


def killed() -> ExitStatus:
    return ExitStatus(**vars(SIGKILLED))


def test_the_oom_count_is_read_from_either_cgroup_version() -> None:
    assert parse_oom_kills(V1_OOM_CONTROL) == 3
    assert parse_oom_kills(V2_EVENTS) == 1
    assert parse_oom_kills("") is None  # no /dev/memcg, or a kernel before 4.13
    assert parse_oom_kills("oom_kill_disable 0\nunder_oom 0\n") is None


def test_a_count_that_rose_makes_a_sigkill_an_oom_kill() -> None:
    status = attribute_kill(killed(), KillRecord(3, 4), pid=4321)
    assert status.status == STATUS_OOM_KILLED and status.signal == signal.SIGKILL
    assert status.note == "killed by the kernel's OOM killer (memory cgroup oom_kill 3 → 4)"


def test_a_count_that_did_not_rise_says_so() -> None:
    status = attribute_kill(killed(), KillRecord(3, 3), pid=4321)
    assert status.status == STATUS_SIGNAL
    assert (
        status.note
        == "killed by SIGKILL (the memory cgroup recorded no OOM kill: memory cgroup oom_kill 3 → 3)"
    )


def test_no_readable_record_keeps_the_guess() -> None:
    status = attribute_kill(killed(), KillRecord(None, None), pid=4321)
    assert status.status == STATUS_SIGNAL and status.note == "killed by SIGKILL (likely the OOM killer)"


def test_lmkd_and_kernel_lines_naming_the_pid_count_and_others_do_not() -> None:
    lines = (LOGCAT_EVENTS, LOGCAT_MAIN, DMESG)
    assert naming_pid(lines, 4321) == list(lines)
    assert naming_pid(lines, 432) == [] and naming_pid(lines, None) == []
    lmkd = attribute_kill(killed(), KillRecord(None, None, lines), pid=4321)
    assert lmkd.status == STATUS_OOM_KILLED
    assert lmkd.note.startswith("killed by lmkd, Android's low-memory killer: ") and "4321" in lmkd.note
    kernel = attribute_kill(killed(), KillRecord(0, 0, (DMESG,)), pid=4321)
    assert kernel.status == STATUS_OOM_KILLED and kernel.note.startswith(
        "killed by the kernel's OOM killer: "
    )
    # another process's kill is not the runner's
    other = attribute_kill(killed(), KillRecord(None, None, (LOGCAT_MAIN.replace("4321", "999"),)), pid=4321)
    assert other.status == STATUS_SIGNAL


def test_other_endings_keep_their_status_and_note_a_kill_of_another_process() -> None:
    ok = attribute_kill(ExitStatus(0, None, False, STATUS_OK, None), KillRecord(0, 1), pid=1)
    assert ok.status == STATUS_OK and "another process" in (ok.note or "")
    timed_out = ExitStatus(None, signal.SIGKILL, True, "timeout", "timed out (past --timeout 5 s); killed")
    assert attribute_kill(timed_out, KillRecord(0, 0), pid=1).status == "timeout"


def test_a_probe_output_of_a_sigkilled_runner_with_the_cgroups_record(
    probe_x86: Path, tmp_path: Path
) -> None:
    out = tmp_path / "iter-1"
    runner = ["sh", "-c", "echo 'loading...'; sleep 0.2; kill -KILL $$"]
    completed = subprocess.run(
        probe_command(str(probe_x86), str(out), runner, interval_ms=20), capture_output=True, timeout=60
    )
    assert completed.returncode == 128 + signal.SIGKILL
    iteration, _ = iteration_from_outputs(
        out,
        index=1,
        warmup=False,
        sections=[Section("tf_lite_prefill_decode", 0, 4096)],
        adapter=get_adapter("litert_lm_main"),
        timeout_s=60.0,
        shell_problem=None,
        shell_wall=1.0,
        shell_exit=completed.returncode,
        kill_record=KillRecord(0, 1),
    )
    assert iteration.exit.status == STATUS_OOM_KILLED
    assert iteration.exit.note == "killed by the kernel's OOM killer (memory cgroup oom_kill 0 → 1)"
    assert iteration.samples > 0 and iteration.timeline == "iter-1/timeline.csv"  # the partial timeline
