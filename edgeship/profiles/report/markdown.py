"""The report as GitHub-flavoured Markdown: compact pipe tables for a CI step summary or a PR comment."""

from __future__ import annotations

from edgeship.profiles.fitcurve import CURVE_HEADERS, CURVE_NUMERIC, curve_rows
from edgeship.profiles.markdown import pipe_table
from edgeship.profiles.report.model import Report
from edgeship.profiles.report.rows import (
    STAT_HEADERS,
    check_summary,
    fit_summary,
    latency_rows,
    matrix_rows,
    memory_rows,
    section_rows,
)


def report_markdown(report: Report) -> str:
    lines = ["## edgeship report", ""]
    lines += [
        f"{len(report.entries)} profile(s): {len(report.devices)} device(s) × "
        f"{len(report.bundles)} bundle(s).",
        "",
    ]
    lines += [pipe_table(["device", *report.bundles], matrix_rows(report)), ""]
    lines += [f"_{note}_" for note in report.notes]
    for entry in report.entries:
        # Headline visible, tables folded: a bench of 50 profiles stays readable in a step summary.
        lines += [
            "",
            f"### {entry.device} — {entry.bundle}",
            "",
            f"Runs: {entry.runs}. Fit: **{entry.check.verdict}**.",
            "",
            *([f"Fit curve: {entry.fit.verdict}.", ""] if entry.fit is not None else []),
            "<details><summary>latency, memory, sections, planner, launch claims</summary>",
            "",
        ]
        lines += [pipe_table(STAT_HEADERS, latency_rows(entry) + memory_rows(entry), right=(1, 2, 3)), ""]
        lines += [
            pipe_table(
                ["section", "resident (median peak)", "size", "share"], section_rows(entry), right=(1, 2, 3)
            ),
            "",
        ]
        lines += [pipe_table(["planner", ""], check_summary(entry)), ""]
        if entry.fit is not None:
            lines += [pipe_table(["fit curve", ""], fit_summary(entry)), ""]
            lines += [pipe_table(list(CURVE_HEADERS), curve_rows(entry.fit), right=CURVE_NUMERIC), ""]
        for claim in entry.claims:
            lines.append(f"- {claim.claim}: {claim.measured} _({claim.configuration})_")
        lines += ["", "</details>"]
    return "\n".join(lines).rstrip() + "\n"
