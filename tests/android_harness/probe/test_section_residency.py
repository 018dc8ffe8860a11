"""Per-section residency from per-mapping smaps rows (a formula: maps.csv written by hand)."""

from __future__ import annotations

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
    assert residency["a"] == {"bytes": 10 * PAGE, "resident_peak": 5 * PAGE, "mapped_samples": 1}
    assert residency["b"] == {"bytes": 30 * PAGE, "resident_peak": 15 * PAGE, "mapped_samples": 1}


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
