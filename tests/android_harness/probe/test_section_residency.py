"""Per-section residency from per-mapping smaps rows (a formula: maps.csv written by hand)."""

from __future__ import annotations

import json
from pathlib import Path

from edgeship.android_harness.probe import read_probe_output

PAGE = 4096


def _run_with_maps(tmp_path: Path, rows: list[tuple[int, int, int, int]]):
    """A finished probe run whose smaps samples are ``rows`` of (t_ms, offset, size, rss) for one file."""
    (tmp_path / "timeline.csv").write_text("t_ms,vm_rss\n0,1\n")
    lines = ["t_ms,path,offset,size,rss,pss"] + [
        f"{t},/b,{offset},{size},{rss},{rss}" for t, offset, size, rss in rows
    ]
    (tmp_path / "maps.csv").write_text("\n".join(lines) + "\n")
    return read_probe_output(tmp_path)


def test_a_fully_resident_mapping_gives_a_small_section_its_own_size_not_its_pages(tmp_path: Path) -> None:
    # The engine maps a 786-byte section: one whole page, all resident. Its page also holds padding.
    sections = [("meta", 8 * PAGE, 8 * PAGE + 786), ("ple", 9 * PAGE, 9 * PAGE + 38 * PAGE + 1536)]
    run = _run_with_maps(tmp_path, [(0, 8 * PAGE, PAGE, PAGE), (0, 9 * PAGE, 39 * PAGE, 39 * PAGE)])
    residency = run.section_residency(sections)
    assert residency["meta"]["resident_peak"] == 786
    assert residency["ple"]["resident_peak"] == 38 * PAGE + 1536


def test_one_mapping_over_several_sections_is_split_by_overlap(tmp_path: Path) -> None:
    # The whole file mapped once (another runtime might), half resident: the Rss is shared in proportion
    # to the overlap, never counted twice, and every overlapped section counts as mapped.
    sections = [("a", 0, 10 * PAGE), ("b", 10 * PAGE, 40 * PAGE)]
    run = _run_with_maps(tmp_path, [(0, 0, 40 * PAGE, 20 * PAGE)])
    residency = run.section_residency(sections)
    assert residency["a"]["resident_peak"] == 5 * PAGE and residency["a"]["mapped_samples"] == 1
    assert residency["b"]["resident_peak"] == 15 * PAGE and residency["b"]["mapped_samples"] == 1
    assert residency["a"]["bytes"] == 10 * PAGE and residency["b"]["bytes"] == 30 * PAGE


def test_the_peak_is_the_largest_sample_and_other_files_do_not_count(tmp_path: Path) -> None:
    sections = [("ple", 0, 16 * PAGE)]
    run = _run_with_maps(
        tmp_path, [(0, 0, 16 * PAGE, 3 * PAGE), (50, 0, 16 * PAGE, 7 * PAGE), (100, 0, 16 * PAGE, 5 * PAGE)]
    )
    assert run.section_residency(sections)["ple"]["resident_peak"] == 7 * PAGE
    assert run.section_residency(sections, path="/other")["ple"]["resident_peak"] == 0


def test_mapped_samples_count_the_samples_that_saw_a_section_mapped(tmp_path: Path) -> None:
    sections = [("a", 0, 100 * PAGE), ("b", 100 * PAGE, 200 * PAGE), ("c", 200 * PAGE, 300 * PAGE)]
    rows = [(10, 0, PAGE, PAGE), (10, 150 * PAGE, PAGE, 0), (60, 0, PAGE, 0), (60, 50 * PAGE, PAGE, PAGE)]
    rows.append((60, 400 * PAGE, PAGE, PAGE))  # past every section: no section's
    residency = _run_with_maps(tmp_path, rows).section_residency(sections)
    assert {kind: entry["mapped_samples"] for kind, entry in residency.items()} == {"a": 2, "b": 1, "c": 0}


def _with_exit_sample(tmp_path: Path, exit_rows: list[tuple[int, int, int]], smaps_read: bool = True):
    """A finished run whose only smaps reading is the exit sample: ``exit_rows`` of (offset, size, rss)."""
    (tmp_path / "timeline.csv").write_text("t_ms,vm_rss\n0,1\n")
    (tmp_path / "maps.csv").write_text("t_ms,path,offset,size,rss,pss\n")
    mappings = [
        {"path": "/b", "offset": offset, "size": size, "rss": rss, "pss": rss}
        for offset, size, rss in exit_rows
    ]
    result = {
        "exit": {"code": 0, "signal": None, "timed_out": False},
        "smaps_samples": 0,
        "trace": {"enabled": True, "error": None},
        "exit_sample": {"taken": True, "t_ms": 120, "values": {"vm_rss": 8 * PAGE, "majflt": 3},
                        "smaps_read": smaps_read, "mappings": mappings},
    }  # fmt: skip
    (tmp_path / "result.json").write_text(json.dumps(result))
    return read_probe_output(tmp_path)


def test_a_run_too_short_for_any_periodic_smaps_read_is_measured_at_exit(tmp_path: Path) -> None:
    sections = [("meta", 0, PAGE), ("ple", PAGE, 101 * PAGE)]
    run = _with_exit_sample(tmp_path, [(PAGE, 100 * PAGE, 3 * PAGE)])
    residency = run.section_residency(sections)
    assert residency["ple"] == {
        "bytes": 100 * PAGE, "resident_peak": 3 * PAGE, "mapped_samples": 1, "resident_at_exit": 3 * PAGE
    }  # fmt: skip
    # Sampled at exit and not mapped then: 0 at exit (known), and never seen mapped (the caller says unknown).
    assert residency["meta"]["resident_at_exit"] == 0 and residency["meta"]["mapped_samples"] == 0
    assert run.exit_sample is not None and run.exit_sample.values["majflt"] == 3 and run.traced


def test_the_exit_sample_counts_toward_the_peak_only_when_larger(tmp_path: Path) -> None:
    sections = [("ple", 0, 16 * PAGE)]
    run = _with_exit_sample(tmp_path, [(0, 16 * PAGE, 2 * PAGE)])
    (tmp_path / "maps.csv").write_text(f"t_ms,path,offset,size,rss,pss\n50,/b,0,{16 * PAGE},{9 * PAGE},0\n")
    run = read_probe_output(tmp_path)
    entry = run.section_residency(sections)["ple"]
    assert (entry["resident_peak"], entry["resident_at_exit"], entry["mapped_samples"]) == (
        9 * PAGE,
        2 * PAGE,
        2,
    )


def test_an_exit_sample_without_smaps_gives_no_figure_at_exit(tmp_path: Path) -> None:
    run = _with_exit_sample(tmp_path, [], smaps_read=False)
    assert run.section_residency([("ple", 0, PAGE)])["ple"]["resident_at_exit"] is None
