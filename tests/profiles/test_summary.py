"""Summary statistics, residency formatting and the per-device table."""

from __future__ import annotations

import statistics

from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from edgeship.profiles.schema import (
    STATUS_OK,
    STATUS_SIGNAL,
    ExitStatus,
    Iteration,
    Latency,
    Memory,
    Profile,
    SectionResidency,
)
from edgeship.profiles.summary import (
    PLE_SECTION_KIND,
    SummaryRow,
    format_bytes,
    format_residency,
    residency_lines,
    summarize_iterations,
    summarize_values,
    summary_table,
)


def make_iteration(
    index: int,
    decode: float | None,
    rss: int | None,
    ple_resident: int | None,
    *,
    warmup: bool = False,
    status: str = STATUS_OK,
    signal: int | None = None,
    note: str | None = None,
) -> Iteration:
    return Iteration(
        index=index,
        warmup=warmup,
        latency=Latency(init_s=1.0 + index, ttft_s=0.1 * index, ttft_definition="d", decode_tok_s=decode),
        memory=Memory(peak_rss=rss, sections={PLE_SECTION_KIND: SectionResidency(1000, ple_resident)}),
        exit=ExitStatus(code=None if signal else 0, signal=signal, status=status, note=note),
        timeline=f"iter-{index}/timeline.csv",
        wall_s=2.0,
    )


def test_summarize_values_skips_missing_and_matches_statistics() -> None:
    values = [3.0, None, 1.0, 2.0, 10.0]
    present = [3.0, 1.0, 2.0, 10.0]
    summary = summarize_values(values)
    assert summary is not None
    assert summary.median == statistics.median(present)
    assert (summary.min, summary.max, summary.n) == (1.0, 10.0, 4)
    assert summary.stdev == statistics.stdev(present)
    assert summarize_values([None, None]) is None
    single = summarize_values([5])
    assert single is not None and single.stdev == 0.0 and single.n == 1


@given(st.lists(st.floats(min_value=-1e9, max_value=1e9), min_size=1, max_size=30))
def test_summary_bounds(values: list[float]) -> None:
    summary = summarize_values(values)
    assert summary is not None
    assert summary.min <= summary.median <= summary.max
    assert summary.n == len(values)
    assert summary.stdev >= 0


def test_summary_excludes_warmup_and_failed_iterations() -> None:
    iterations = [
        make_iteration(1, decode=1.0, rss=999_999, ple_resident=900, warmup=True),
        make_iteration(1, decode=10.0, rss=100, ple_resident=300),
        make_iteration(2, decode=None, rss=50, ple_resident=10, status=STATUS_SIGNAL, signal=9),
        make_iteration(3, decode=20.0, rss=300, ple_resident=500),
    ]
    summary = summarize_iterations(iterations)
    assert summary["latency"]["decode_tok_s"]["median"] == statistics.median([10.0, 20.0])
    assert summary["latency"]["decode_tok_s"]["n"] == 2
    assert summary["memory"]["peak_rss"]["max"] == 300
    assert summary["memory"]["peak_pss"] is None  # never measured: null, not 0
    assert summary["sections"][PLE_SECTION_KIND]["bytes"] == 1000
    assert summary["sections"][PLE_SECTION_KIND]["resident_peak"]["median"] == 400
    assert summary["counts"] == {
        "warmup": 1,
        "measured": 3,
        "ok": 2,
        "failed": 1,
        "by_status": {"ok": 2, "signal": 1},
    }


def test_format_residency_matches_issue_example() -> None:
    section = 135_796_608  # the ple-heavy export's PLE section
    resident = 9_936 * 1024  # its Rss after 32 + 128 tokens
    text = format_residency(PLE_SECTION_KIND, section, resident)
    assert text.startswith("per_layer_embedder: 9.7 MiB resident of 129.5 MiB")
    assert f"({100 * resident / section:.1f}%)" in text
    assert "not seen mapped" in format_residency(PLE_SECTION_KIND, section, None)
    assert format_bytes(None) == "—"
    assert format_bytes(512) == "512 B"
    assert format_bytes(3 * 1024**3) == "3.0 GiB"


def test_table_row_reports_failures_and_ple() -> None:
    iterations = [
        make_iteration(1, decode=10.0, rss=100 * 1024 * 1024, ple_resident=400),
        make_iteration(
            2,
            decode=None,
            rss=None,
            ple_resident=None,
            status=STATUS_SIGNAL,
            signal=9,
            note="killed by SIGKILL (likely the OOM killer)",
        ),
    ]
    profile = Profile(
        device={"serial": "127.0.0.1:5555", "model": "vflagship"},
        bundle={"sha256": "ab" * 32},
        runner={},
        probe={},
        config={"iterations": 2},
        iterations=iterations,
    )
    profile.summary = summarize_iterations(iterations)
    row = SummaryRow.from_profile(profile)
    assert not row.ok
    assert row.decode_tok_s == 10.0
    assert row.exit.startswith("1/2 ok; iter 2: killed by SIGKILL (likely the OOM killer)")
    assert row.ple == f"{format_bytes(400)} of {format_bytes(1000)}"
    lines = residency_lines(profile.summary)
    assert lines == [format_residency(PLE_SECTION_KIND, 1000, 400)]
    console = Console(width=250, record=True)
    console.print(summary_table([row]))
    text = console.export_text()
    assert "127.0.0.1:5555" in text and "OOM killer" in text and "100.0 MiB" in text
