"""The report's plots: matplotlib drawn straight to SVG text, inlined in the HTML (no files, no network).

matplotlib is imported here only (≈ 0.5 s), and each plot is kept cheap — fixed tick positions, no legend
per axes where one per figure does — because a bench report draws one timeline per device × bundle. Text
stays text (``svg.fonttype: none``), so the SVG is small and selectable. Every figure's ids are prefixed
with its own key: two inlined SVGs must not share an id.
"""

from __future__ import annotations

import io
import math
import re
from typing import Any

from edgeship.profiles.fitcurve import FitResult
from edgeship.profiles.report.timeline import Timeline

MIB = 1024 * 1024
ANON = "#3b6fb6"
PSS = "#222222"
FILE = "#9a9a9a"
SECTION_COLORS = ("#e39c37", "#5aa469", "#b65a8f", "#7c6fc4", "#c9b13b", "#4fb3b3")
FAULT_COLORS = {"major": "#c0392b", "minor": "#888888"}
PHASE_COLORS = {"init": "#f2e6d0", "prefill": "#dcebf7", "decode": "#e3f1df"}


def _nice_ticks(top: float, count: int = 4) -> list[float]:
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [i * step for i in range(int(top / step) + 2)]


_FIGURES: dict[bool, tuple[Any, list[Any]]] = {}  # has_faults → (figure, axes), reused plot after plot


def _canvas(has_faults: bool) -> tuple[Any, list[Any]]:
    """A figure and its axes, emptied of the previous plot's data.

    Reusing them keeps the tick objects, which are most of what a new axes costs: a report of 50 profiles
    draws in a third of the time.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullLocator

    if has_faults not in _FIGURES:
        # Fixed margins: a layout engine would draw the figure twice to measure it.
        fig = Figure(figsize=(7.2, 3.4 if has_faults else 2.6))
        fig.subplots_adjust(left=0.08, right=0.99, top=0.97, bottom=0.12 if has_faults else 0.16, hspace=0.08)
        axes = (
            list(fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))) if has_faults else [fig.add_subplot()]
        )
        for axis in axes:
            axis.xaxis.set_minor_locator(NullLocator())
            axis.yaxis.set_minor_locator(NullLocator())
        _FIGURES[has_faults] = (fig, axes)
    fig, axes = _FIGURES[has_faults]
    for axis in axes:
        for artist in [*axis.lines, *axis.collections, *axis.patches, *axis.texts]:
            artist.remove()
    return fig, axes


def timeline_svg(timeline: Timeline, key: str) -> str:
    """Anonymous and file-backed memory (bundle sections stacked where smaps was sampled), PSS, phases."""
    import matplotlib

    matplotlib.use("svg")
    from matplotlib.ticker import FixedLocator

    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": key, "font.size": 8}):
        has_faults = bool(timeline.faults)
        fig, axes = _canvas(has_faults)
        ax = axes[0]
        end = max(
            timeline.t_s[-1] if timeline.t_s else 0.0, max((p[2] for p in timeline.phases), default=0.0)
        )
        for name, start, stop in timeline.phases:
            ax.axvspan(start, stop, color=PHASE_COLORS.get(name, "#eeeeee"), lw=0, zorder=0)
        if timeline.section_t_s and timeline.sections:
            labels = list(timeline.sections)
            ax.stackplot(
                timeline.section_t_s,
                *[[v / MIB for v in timeline.sections[label]] for label in labels],
                colors=SECTION_COLORS[: len(labels)],
                alpha=0.85,
                lw=0,
                zorder=1,
            )
        top = 0.0
        for values, color, style in (
            (timeline.file, FILE, "-"),
            (timeline.anon, ANON, "-"),
            (timeline.pss, PSS, "--"),
        ):
            points = [(t, v / MIB) for t, v in zip(timeline.t_s, values, strict=True) if v is not None]
            if points:
                ax.plot(*zip(*points, strict=True), color=color, lw=1.3, ls=style, zorder=2)
                top = max(top, max(v for _, v in points))
        ticks = _nice_ticks(top)
        ax.set_ylim(0, ticks[-1])
        ax.yaxis.set_major_locator(FixedLocator(ticks))
        ax.set_ylabel("MiB")
        ax.set_xlim(0, end or 1.0)
        x_ticks = _nice_ticks(end or 1.0, 5)
        for axis in axes:
            axis.xaxis.set_major_locator(FixedLocator(x_ticks))
        for name, start, stop in timeline.phases:
            ax.text(
                (start + stop) / 2, ticks[-1] * 0.97, name, ha="center", va="top", fontsize=7, color="#555555"
            )
        if has_faults:
            fax = axes[1]
            for name, color in FAULT_COLORS.items():
                if name in timeline.faults:
                    fax.plot(timeline.t_s, timeline.faults[name], color=color, lw=1.1)
            fax.set_ylabel("faults")
            fault_ticks = _nice_ticks(max(_finite(timeline.faults)), 2)
            fax.set_ylim(0, fault_ticks[-1])
            fax.yaxis.set_major_locator(FixedLocator(fault_ticks))
        axes[-1].set_xlabel("seconds since the runner started")
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg")
    text = buffer.getvalue()
    return scope_ids(text[text.index("<svg") :], key)


def legend(timeline: Timeline) -> list[tuple[str, str, str]]:
    """(label, colour, "line"|"dashed"|"area") of what the timeline draws — shown by the HTML beside the plot,
    which costs nothing, where a matplotlib legend would cost a fifth of the plot's drawing time."""
    entries = [
        (f"bundle: {label}", color, "area")
        for label, color in zip(timeline.sections, SECTION_COLORS, strict=False)
    ]
    entries += [("file-backed (all)", FILE, "line"), ("anonymous", ANON, "line"), ("PSS", PSS, "dashed")]
    entries += [(f"{name} faults", FAULT_COLORS[name], "line") for name in timeline.faults]
    return entries


def scope_ids(svg: str, key: str) -> str:
    """Prefix every id (and every in-SVG reference to one) with ``key``: matplotlib numbers its elements
    figure_1, patch_1… in every figure, and ids must be unique in the page that inlines several."""
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{key}-{m.group(1)}"', svg)
    return re.sub(r'(href="#|url\(#)([^")]+)', lambda m: f"{m.group(1)}{key}-{m.group(2)}", svg)


def _finite(faults: dict[str, list[float]]) -> list[float]:
    values = [v for series in faults.values() for v in series if not math.isnan(v)]
    return values or [1.0]


# -- the fit curve (edgeship fit) ---------------------------------------------------------------------------

OUTCOME_COLORS = {
    "fast": "#2d7d46",
    "slow": "#e39c37",
    "stalled": "#b65a8f",
    "killed": "#c0392b",
    "failed": "#c0392b",
    "no_start": "#888888",
    "balloon_killed": "#888888",
}
MARKS = {"knee": ("#2d7d46", "-"), "kill": ("#c0392b", "-"), "planner": (ANON, "--"), "bundle": (FILE, ":")}


def fit_marks(fit: FitResult) -> dict[str, float]:
    """Available memory (MiB) of the knee, the kill point, the planner's minimum and the bundle's size."""
    knee, kill, planner = fit.knee or {}, fit.kill or {}, fit.planner or {}
    values = {
        "knee": knee.get("available") if knee.get("step") else None,
        "kill": kill.get("killed_at"),
        "planner": planner.get("minimum"),
        "bundle": fit.bundle.get("bytes"),
    }
    return {name: value / MIB for name, value in values.items() if value}


def fit_curve_svg(fit: FitResult, key: str) -> str:
    """Decode tok/s by available memory (each step coloured by its outcome, the threshold dashed), major
    faults and PLE residency below it; the knee, kill point, planner's minimum and bundle size as lines. The
    unconstrained run sits far to the right on a phone's whole RAM, so it is named in a corner, not drawn."""
    import matplotlib

    matplotlib.use("svg")
    from matplotlib.figure import Figure

    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": key, "font.size": 8}):
        fig = Figure(figsize=(7.2, 3.8))
        fig.subplots_adjust(left=0.08, right=0.92, top=0.93, bottom=0.12, hspace=0.08)
        top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
        steps = [(float(step.available or step.target_available or 0) / MIB, step) for step in fit.steps]
        marks = fit_marks(fit)
        right = max([x for x, _ in steps] + list(marks.values()) + [1.0]) * 1.12
        baseline = fit.baseline.figures.decode_tok_s or 0.0
        decoded = sorted((x, s.figures.decode_tok_s) for x, s in steps if s.figures.decode_tok_s is not None)
        if decoded:
            top.plot(*zip(*decoded, strict=True), color=PSS, lw=1.0, zorder=2)
        for x, step in steps:
            value = step.figures.decode_tok_s
            top.plot(
                [x], [value if value is not None else 0.0], marker="o" if value is not None else "x",
                color=OUTCOME_COLORS.get(step.outcome, PSS), ms=5, zorder=3, ls="none",
            )  # fmt: skip
        threshold = float(fit.config.get("threshold") or 0.9)
        if baseline:
            top.axhline(baseline, color=FILE, lw=0.8)
            top.axhline(threshold * baseline, color=FILE, lw=0.8, ls="--")
        ceiling = max([baseline, *(v for _, v in decoded)]) * 1.15 or 1.0
        top.set_ylim(0, ceiling)
        top.set_ylabel("decode tok/s")
        unconstrained = fit.baseline.available or 0
        top.text(
            0.99, 0.97, f"unconstrained: {unconstrained / MIB:.0f} MiB, {baseline:.0f} tok/s",
            transform=top.transAxes, ha="right", va="top", fontsize=7, color="#555555",
        )  # fmt: skip
        faults = sorted((x, s.figures.major_faults) for x, s in steps if s.figures.major_faults is not None)
        if faults:
            bottom.plot(*zip(*faults, strict=True), color=FAULT_COLORS["major"], lw=1.0, marker=".")
        bottom.set_ylabel("major faults")
        bottom.set_ylim(bottom=0)
        ple = sorted(
            (x, s.figures.ple_resident / MIB) for x, s in steps if s.figures.ple_resident is not None
        )
        if ple:
            twin = bottom.twinx()
            twin.plot(*zip(*ple, strict=True), color=SECTION_COLORS[0], lw=1.0, marker=".")
            twin.set_ylabel("PLE resident MiB")
            twin.set_ylim(bottom=0)
        for name, x in marks.items():
            color, style = MARKS[name]
            for axis in (top, bottom):
                axis.axvline(x, color=color, ls=style, lw=1.0, zorder=1)
            top.text(x, ceiling * 0.99, f" {name}", color=color, fontsize=7, va="top", ha="left", rotation=90)
        bottom.set_xlim(0, right)
        bottom.set_xlabel("available memory before the run, MiB")
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg")
    text = buffer.getvalue()
    return scope_ids(text[text.index("<svg") :], key)


def fit_legend(fit: FitResult) -> list[tuple[str, str, str]]:
    seen = list(dict.fromkeys(step.outcome for step in fit.steps))
    entries = [(outcome.replace("_", " "), OUTCOME_COLORS.get(outcome, PSS), "line") for outcome in seen]
    entries += [
        (f"{name}", MARKS[name][0], "dashed" if MARKS[name][1] != "-" else "line") for name in fit_marks(fit)
    ]
    entries += [("major faults", FAULT_COLORS["major"], "line")]
    if any(step.figures.ple_resident is not None for step in fit.steps):
        entries.append(("PLE resident", SECTION_COLORS[0], "line"))
    return entries
