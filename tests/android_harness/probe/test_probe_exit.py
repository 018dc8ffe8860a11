"""Exit code, signal, timeout and exec-failure recording; partial output; crafted /proc files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from edgeship.android_harness.probe import probe_command, read_probe_output
from edgeship.android_harness.probe.results import FAULT_FIELDS, TIMELINE_FIELDS


def run_probe(probe: Path, out: Path, runner: list[str], **options) -> subprocess.CompletedProcess:
    return subprocess.run(
        probe_command(str(probe), str(out), runner, **options), capture_output=True, timeout=60
    )


def test_exit_code_passes_through(probe_x86: Path, tmp_path: Path) -> None:
    completed = run_probe(probe_x86, tmp_path / "o", ["sh", "-c", "echo out; echo err >&2; exit 3"])
    run = read_probe_output(tmp_path / "o")
    assert completed.returncode == 3
    assert (run.exit_code, run.signal, run.timed_out) == (3, None, False)
    assert run.stdout() == "out\n" and run.stderr() == "err\n"
    assert run.argv == ["sh", "-c", "echo out; echo err >&2; exit 3"]


def test_signal_is_recorded_as_128_plus(probe_x86: Path, tmp_path: Path) -> None:
    completed = run_probe(probe_x86, tmp_path / "o", ["sh", "-c", "kill -SEGV $$"])
    run = read_probe_output(tmp_path / "o")
    assert completed.returncode == 128 + signal.SIGSEGV
    assert run.exit_code is None and run.signal == signal.SIGSEGV and not run.timed_out
    assert not run.likely_oom_killed


def test_sigkill_not_from_timeout_reads_as_likely_oom(probe_x86: Path, tmp_path: Path) -> None:
    run_probe(probe_x86, tmp_path / "o", ["sh", "-c", "kill -KILL $$"])
    assert read_probe_output(tmp_path / "o").likely_oom_killed


def wait_for(condition, timeout: float = 30, what: str = "condition") -> None:
    """Poll ``condition()`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        time.sleep(0.02)


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers signal 0 until its parent (init here: the runner's group is gone) reaps it.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_timeout_kills_the_whole_group(probe_x86: Path, tmp_path: Path) -> None:
    marker = tmp_path / "grandchild-alive"
    pid_file = tmp_path / "grandchild.pid"
    # The runner starts a grandchild in its group; the timeout must take both down.
    script = f"(sleep 30; touch {marker}) & echo $! > {pid_file}; sleep 30"
    started = time.monotonic()
    completed = run_probe(probe_x86, tmp_path / "o", ["sh", "-c", script], timeout_s=0.5)
    elapsed = time.monotonic() - started
    run = read_probe_output(tmp_path / "o")
    assert run.timed_out and run.signal == signal.SIGKILL and not run.likely_oom_killed
    assert completed.returncode == 128 + signal.SIGKILL
    assert elapsed < 30  # the runner's own 30 s sleep never ran out
    grandchild = int(pid_file.read_text())
    wait_for(lambda: process_gone(grandchild), what=f"the grandchild {grandchild} ending")
    assert not marker.exists()


def test_missing_runner_is_exit_127_with_error(probe_x86: Path, tmp_path: Path) -> None:
    completed = run_probe(probe_x86, tmp_path / "o", [str(tmp_path / "no-such-runner")])
    run = read_probe_output(tmp_path / "o")
    assert completed.returncode == 127
    assert run.exit_code == 127 and "No such file" in (run.error or "")
    assert b"cannot start" in completed.stderr


def test_usage_errors_exit_2(probe_x86: Path, tmp_path: Path) -> None:
    for argv in (
        [str(probe_x86)],
        [str(probe_x86), "--out", str(tmp_path)],
        [str(probe_x86), "--bogus", "1"],
    ):
        completed = subprocess.run(argv, capture_output=True, timeout=10)
        assert completed.returncode == 2 and completed.stderr.startswith(b"probe: ")


def test_missing_fields_are_empty_not_zero(probe_x86: Path, tmp_path: Path) -> None:
    """A kernel without RssShmem/VmSwap in status, without smaps_rollup (Android 9) and here without a
    readable stat: reported missing."""
    fake = tmp_path / "proc"
    fake.mkdir()
    (fake / "status").write_text(
        "Name:\tfake\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\n"
        "RssAnon:\t     512 kB\nRssFile:\t     512 kB\n"
    )
    run_probe(probe_x86, tmp_path / "o", ["sleep", "0.3"], interval_ms=20, proc_dir=fake)
    run = read_probe_output(tmp_path / "o")
    expected_missing = ["vm_swap", "rss_shmem", *TIMELINE_FIELDS[6:], *FAULT_FIELDS]
    assert run.missing == expected_missing
    assert run.peaks["vm_rss"] == 1024 * 1024 and run.peaks["vm_swap"] is None
    assert run.samples and all(s.values["vm_swap"] is None for s in run.samples)
    rows = (tmp_path / "o" / "timeline.csv").read_text().splitlines()
    assert rows[1].split(",")[1:4] == [str(1024 * 1024), str(2048 * 1024), ""]
    figures = run.memory_figures()
    assert figures["peak_pss"] is None and figures["peak_swap"] is None and figures["peak_rss"] == 1024 * 1024


def test_rollup_fields_parsed_from_crafted_file(probe_x86: Path, tmp_path: Path) -> None:
    fake = tmp_path / "proc"
    fake.mkdir()
    (fake / "status").write_text("VmRSS:\t 100 kB\nVmHWM:\t 200 kB\nVmSwap:\t 0 kB\n")
    (fake / "smaps_rollup").write_text(
        "00400000-7fff [rollup]\nRss:  100 kB\nPss:   60 kB\nPss_Anon:  10 kB\nPss_File:  50 kB\n"
        "Private_Dirty:  7 kB\nSwapPss:  3 kB\n"
    )
    run_probe(probe_x86, tmp_path / "o", ["sleep", "0.2"], interval_ms=20, proc_dir=fake)
    run = read_probe_output(tmp_path / "o")
    assert run.peaks["pss"] == 60 * 1024 and run.peaks["swap_pss"] == 3 * 1024
    assert run.peaks["private_dirty"] == 7 * 1024
    assert set(run.missing) == {"rss_anon", "rss_file", "rss_shmem", *FAULT_FIELDS}


def test_partial_output_without_result_json(tmp_path: Path) -> None:
    """The probe killed with the runner: what it flushed is still read; a torn last row is dropped."""
    header = "t_ms," + ",".join(TIMELINE_FIELDS)
    full = ",".join(["100"] * len(TIMELINE_FIELDS))
    (tmp_path / "timeline.csv").write_text(f"{header}\n0,{full}\n50,{full.replace('100', '300', 1)}\n100,30")
    (tmp_path / "maps.csv").write_text("t_ms,path,offset,size,rss,pss\n50,/b,16384,8192,4096,4096\n50,/b,1")
    run = read_probe_output(tmp_path)
    assert not run.complete and run.exit_code is None
    assert len(run.samples) == 2 and run.peaks["vm_rss"] == 300 and run.missing == []
    assert run.wall_s == 0.05
    residency = run.section_residency([("x", 16384, 32768), ("y", 32768, 65536)])
    assert residency == {
        "x": {"bytes": 16384, "resident_peak": 4096, "mapped_samples": 1, "resident_at_exit": None},
        "y": {"bytes": 32768, "resident_peak": 0, "mapped_samples": 0, "resident_at_exit": None},
    }
    assert run.exit_sample is None and "did not finish" in (run.exit_sample_note or "")


def test_no_output_at_all_is_an_input_error(tmp_path: Path) -> None:
    from edgeship.errors import InputError

    with pytest.raises(InputError, match="no probe output"):
        read_probe_output(tmp_path)


def test_result_json_is_valid_with_odd_argv(probe_x86: Path, tmp_path: Path) -> None:
    odd = 'quote " backslash \\ tab \t newline \n comma, done'
    run_probe(probe_x86, tmp_path / "o", ["echo", odd])
    raw = json.loads((tmp_path / "o" / "result.json").read_text())
    assert raw["argv"] == ["echo", odd]


def test_rollup_rate_fixed_and_adaptive(probe_x86: Path, tmp_path: Path) -> None:
    """status every tick; smaps_rollup every tick when asked, else on its budget — never an empty cell."""
    run_probe(probe_x86, tmp_path / "fixed", ["sleep", "0.4"], interval_ms=20, rollup_interval_ms=20)
    fixed = read_probe_output(tmp_path / "fixed")
    assert fixed.rollup_samples >= fixed.smaps_samples  # no --maps: no smaps reads at all
    assert fixed.smaps_samples == 0 and fixed.rollup_samples >= len(fixed.samples) - 1
    assert fixed.raw["rollup_interval_ms"] == 20 and fixed.rollup_cost_us_mean is not None
    run_probe(probe_x86, tmp_path / "adaptive", ["sleep", "0.4"], interval_ms=20)
    adaptive = read_probe_output(tmp_path / "adaptive")
    assert adaptive.raw["rollup_interval_ms"] == "adaptive"
    assert 1 <= adaptive.rollup_samples <= len(adaptive.samples)
    assert adaptive.missing == []
    assert all(s.values["pss"] is not None for s in adaptive.samples)


@pytest.mark.parametrize(
    ("script", "expected_signal", "max_s"),
    [("sleep 30", signal.SIGTERM, 2.5), ("trap '' TERM; sleep 30 & wait; sleep 30", signal.SIGKILL, 6.0)],
)
def test_sigterm_to_the_probe_stops_the_runner(
    probe_x86: Path, tmp_path: Path, script: str, expected_signal: int, max_s: float
) -> None:
    """edgeship or adb stopping the probe stops the runner (SIGKILL after a grace when it ignores TERM)."""
    out = tmp_path / "o"
    ready = tmp_path / "ready"
    # The runner says when its trap (if any) is set: a TERM sent earlier would find a runner without it.
    runner = f"{script.replace('sleep 30', f'touch {ready}; sleep 30', 1)}"
    process = subprocess.Popen(probe_command(str(probe_x86), str(out), ["sh", "-c", runner]))
    wait_for(ready.exists, what="the runner starting")
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=15)
    run = read_probe_output(out)
    assert time.monotonic() - started < max_s
    assert run.complete and run.raw["probe_signal"] == signal.SIGTERM
    assert run.signal == expected_signal and code == 128 + expected_signal
