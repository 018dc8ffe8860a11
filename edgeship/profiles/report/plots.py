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
