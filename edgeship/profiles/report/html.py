"""The report as one self-contained HTML file: inline CSS and SVG, no script, no network, no external file."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from edgeship import __version__
from edgeship.profiles.fitcurve import CURVE_HEADERS, CURVE_NUMERIC, curve_rows
from edgeship.profiles.report.model import Entry, Report
from edgeship.profiles.report.plots import fit_legend, legend
from edgeship.profiles.report.rows import (
    check_summary,
    fit_summary,
    latency_rows,
    matrix_rows,
    memory_rows,
    plan_rows,
    section_rows,
)
from edgeship.profiles.report.timeline import Timeline

TEMPLATE = Path(__file__).with_name("report.html.j2")
# Below this many plots a worker pool costs more than it saves.
PARALLEL_FROM = 8


@dataclass
class EntryView:
    entry: Entry
    latency: list[list[str]]
    memory: list[list[str]]
    sections: list[tuple[list[str], float]]
    plan: list[list[str]]
    check: list[list[str]]
    svg: str | None
    legend: list[tuple[str, str, str]]
    fit: list[list[str]]  # the fit curve's findings (empty: no fit.json beside the profile)
    fit_rows: list[list[str]]
    fit_svg: str | None
    fit_legend: list[tuple[str, str, str]]


def _draw(job: tuple[Timeline, str]) -> str:
    from edgeship.profiles.report.plots import timeline_svg

    return timeline_svg(*job)


def draw_timelines(entries: list[Entry]) -> list[str | None]:
    """One SVG per entry with a timeline; on several cores the plots are drawn by forked workers."""
    import edgeship.profiles.report.plots  # noqa: F401  (import matplotlib once, before any fork)

    jobs = [(i, (e.timeline, f"edgeship-{i}")) for i, e in enumerate(entries) if e.timeline is not None]
    svgs: list[str | None] = [None] * len(entries)
    workers = min(os.cpu_count() or 1, 4)
    if len(jobs) >= PARALLEL_FROM and workers > 1:
        # The first figure loads fonts and caches (~1 s); drawn here, the forked workers inherit them warm.
        drawn = [_draw(jobs[0][1])]
        rest = [job for _, job in jobs[1:]]
        with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
            drawn += list(pool.map(_draw, rest, chunksize=max(1, len(rest) // (workers * 2))))
    else:
        drawn = [_draw(job) for _, job in jobs]
    for (index, _), svg in zip(jobs, drawn, strict=True):
        svgs[index] = svg
    return svgs


def draw_fit_curves(entries: list[Entry]) -> list[str | None]:
    """One SVG per entry with a fit curve (few per report: drawn here, not by workers)."""
    if not any(entry.fit is not None and entry.fit.steps for entry in entries):
        return [None] * len(entries)
    from edgeship.profiles.report.plots import fit_curve_svg

    return [
        fit_curve_svg(entry.fit, f"edgeship-fit-{i}") if entry.fit is not None and entry.fit.steps else None
        for i, entry in enumerate(entries)
    ]


def report_html(report: Report) -> str:
    import jinja2

    svgs = draw_timelines(report.entries)
    fit_svgs = draw_fit_curves(report.entries)
    views = [
        EntryView(
            entry=entry,
            latency=latency_rows(entry),
            memory=memory_rows(entry),
            sections=[
                (row, min(100.0, 100.0 * (section.share or 0.0)))
                for row, section in zip(section_rows(entry), entry.sections, strict=True)
            ],
            plan=plan_rows(entry),
            check=check_summary(entry),
            svg=svg,
            legend=legend(entry.timeline) if entry.timeline is not None else [],
            fit=fit_summary(entry),
            fit_rows=curve_rows(entry.fit) if entry.fit is not None else [],
            fit_svg=fit_svg,
            fit_legend=fit_legend(entry.fit) if entry.fit is not None else [],
        )
        for entry, svg, fit_svg in zip(report.entries, svgs, fit_svgs, strict=True)
    ]
    environment = jinja2.Environment(
        autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True
    )
    template = environment.from_string(TEMPLATE.read_text())
    context: dict[str, Any] = {
        "report": report,
        "views": views,
        "matrix": matrix_rows(report),
        "version": __version__,
        "curve_headers": CURVE_HEADERS,
        "curve_numeric": CURVE_NUMERIC,
    }
    return template.render(**context)
