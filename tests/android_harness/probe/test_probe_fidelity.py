"""The probe's figures against a program whose memory is known in advance (x86_64 build, run natively)."""

from __future__ import annotations

import itertools
import os
import subprocess
from pathlib import Path

import pytest

from edgeship.android_harness.probe import probe_command, read_probe_output

MIB = 1024 * 1024
TOLERANCE = 0.02

ANON_MIB = 64
FILE_MIB = 32
TOUCH_MIB = 8  # of the mapping at file offset 0
OFFSET_MIB = 16  # second mapping starts here in the file
OFFSET_TOUCH_MIB = 2
SPIKE_MIB = 128
SPIKE_MS = 100
HOLD_MS = 300
EXIT_CODE = 7
COLD_MIB = 8  # of a second file, dropped from the page cache, then read through a mapping (the last phase)
FAULT_AROUND_BYTES = 64 * 1024  # the kernel's default: one file fault maps at most this much


def within(measured: int | None, expected: int, tolerance: float = TOLERANCE) -> bool:
    return measured is not None and abs(measured - expected) <= tolerance * expected


@pytest.fixture(scope="module")
def fidelity_run(probe_x86: Path, fidelity_x86: Path, tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("fidelity-run")
    data = work / "data.bin"
    data.write_bytes(os.urandom(FILE_MIB * MIB))
    cold = work / "cold.bin"
    with cold.open("wb") as handle:
        handle.write(os.urandom(COLD_MIB * MIB))
        handle.flush()
        os.fsync(handle.fileno())  # clean pages: the program's POSIX_FADV_DONTNEED may drop them
    out = work / "out"
    argv = probe_command(
        str(probe_x86),
        str(out),
        [str(fidelity_x86), str(ANON_MIB), str(data), str(TOUCH_MIB), str(OFFSET_MIB), str(OFFSET_TOUCH_MIB),
         str(SPIKE_MIB), str(SPIKE_MS), str(HOLD_MS), str(EXIT_CODE), str(cold), str(COLD_MIB)],
        interval_ms=50,
        maps=[str(data)],
    )  # fmt: skip
    completed = subprocess.run(argv, capture_output=True, timeout=60)
    return completed, read_probe_output(out), str(data)


def test_exit_code_and_outputs(fidelity_run) -> None:
    completed, run, _ = fidelity_run
    assert completed.returncode == EXIT_CODE
    assert completed.stdout == b""  # the probe keeps adb shell's stdout clean; the runner's goes to a file
    assert run.complete and run.exit_code == EXIT_CODE and run.signal is None and not run.timed_out
    words = run.stdout().split()
    assert words[:4] == ["steady", "spike", "after", "cold-cached"] and words[-1] == "cold"
    assert run.missing == []  # this kernel has every field


def test_anonymous_memory_and_spike_seen_at_50ms(fidelity_run) -> None:
    _, run, _ = fidelity_run
    anon = [s.values["rss_anon"] for s in run.samples]
    expected_peak = (ANON_MIB + SPIKE_MIB) * MIB
    assert within(max(anon), expected_peak), (max(anon) / MIB, anon)
    assert within(run.peaks["rss_anon"], expected_peak)
    # The spike is seen as a rise and a fall in instantaneous samples (not only in VmHWM).
    peak_index = anon.index(max(anon))
    assert any(within(value, ANON_MIB * MIB) for value in anon[:peak_index])
    assert any(within(value, ANON_MIB * MIB) for value in anon[peak_index + 1 :])
    assert within(run.peaks["vm_hwm"], run.peaks["vm_rss"])
    assert run.rusage["maxrss"] >= expected_peak * (1 - TOLERANCE)


def test_file_mapping_residency_with_offsets(fidelity_run) -> None:
    _, run, data = fidelity_run
    by_offset = {m.offset: m for m in run.mappings if m.path == data}
    assert set(by_offset) == {0, OFFSET_MIB * MIB}
    assert by_offset[0].size == OFFSET_MIB * MIB
    assert by_offset[OFFSET_MIB * MIB].size == (FILE_MIB - OFFSET_MIB) * MIB
    assert within(by_offset[0].rss_peak, TOUCH_MIB * MIB)
    assert within(by_offset[OFFSET_MIB * MIB].rss_peak, OFFSET_TOUCH_MIB * MIB)
    # Through sections, as profile.json gets them: a mapping belongs to the section holding its offset.
    sections = [("head", 0, OFFSET_MIB * MIB), ("tail", OFFSET_MIB * MIB, FILE_MIB * MIB)]
    residency = run.section_residency(sections)
    assert residency["head"]["bytes"] == OFFSET_MIB * MIB
    assert within(residency["head"]["resident_peak"], TOUCH_MIB * MIB)
    assert residency["head"]["mapped_samples"] >= 1
    assert within(residency["tail"]["resident_peak"], OFFSET_TOUCH_MIB * MIB)
    assert run.smaps_samples >= 2 and run.smaps_cost_us_mean is not None


def test_timeline_is_a_monotonic_50ms_series(fidelity_run) -> None:
    _, run, _ = fidelity_run
    times = [s.t_ms for s in run.samples]
    assert all(a < b for a, b in itertools.pairwise(times))
    # Fixed schedule on the monotonic clock, ticks at start + k × 50 ms, a late tick skipped rather than
    # made up: the i-th sample is never earlier than i intervals after the start (t_ms counts from the
    # runner's fork, before the first tick; 1 ms of rounding). This holds however loaded the box is; a
    # probe that samples more often than its interval breaks it.
    assert all(t >= i * 50 - 1 for i, t in enumerate(times)), times
    expected_wall = (3 * HOLD_MS + SPIKE_MS) / 1000
    assert run.wall_s is not None and run.wall_s >= expected_wall
    assert 2 <= len(times) <= run.wall_s * 1000 / 50 + 1


def test_faults_rise_when_a_cold_file_mapping_is_touched(fidelity_run) -> None:
    """minflt/majflt in every row; reading COLD_MIB of a mapping faults at least once per fault-around window,
    and from storage (major faults) where the page cache drop worked."""
    _, run, _ = fidelity_run
    assert all(s.values["minflt"] is not None and s.values["majflt"] is not None for s in run.samples)
    counts = [s.values["minflt"] + s.values["majflt"] for s in run.samples]
    assert counts == sorted(counts)  # counters only grow
    # The cold phase is the last rise of RssFile by COLD_MIB: rows before it and rows after it.
    file_rss = [s.values["rss_file"] for s in run.samples]
    before = max(i for i, value in enumerate(file_rss) if value <= file_rss[-1] - COLD_MIB * MIB * 0.9)
    after = next(i for i in range(before + 1, len(file_rss)) if file_rss[i] >= file_rss[-1] - 64 * 1024)
    rise = counts[after] - counts[before]
    assert rise >= COLD_MIB * MIB // FAULT_AROUND_BYTES, (rise, counts[before : after + 1])
    cached_pages = int(run.stdout().split()[4])
    if cached_pages == 0:  # the drop worked: the pages came from storage
        majors = run.samples[after].values["majflt"] - run.samples[before].values["majflt"]
        assert majors >= 1
    # At exit: the same counters, at least as far as the last row.
    assert run.exit_sample is not None
    assert run.exit_sample.values["minflt"] >= run.samples[-1].values["minflt"]
    assert run.fault_counts()["minor"] >= run.exit_sample.values["minflt"]  # wait4 counts the whole runner


def test_exit_sample_measures_the_mappings_still_there(fidelity_run) -> None:
    _, run, data = fidelity_run
    assert run.traced and run.exit_sample is not None and run.exit_sample.smaps_read
    at_exit = {m.offset: m.rss for m in run.exit_sample.mappings if m.path == data}
    assert within(at_exit[0], TOUCH_MIB * MIB) and within(at_exit[OFFSET_MIB * MIB], OFFSET_TOUCH_MIB * MIB)
    assert within(run.exit_sample.values["rss_anon"], ANON_MIB * MIB)  # the spike is gone by then
