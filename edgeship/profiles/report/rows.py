"""Display rows of the report (formatted once, laid out by both the HTML and the Markdown renderer)."""

from __future__ import annotations

from edgeship.profiles.figures import FIGURES_BY_NAME
from edgeship.profiles.report.model import MEMORY_ROWS, Entry, Report, Stat
from edgeship.units import (
    MISSING,
    format_bytes,
    format_change,
    format_figure,
    format_percent,
    format_signed_bytes,
)

LATENCY_LABELS = {
    "init_s": "init",
    "ttft_s": "time to first token",
    "prefill_tok_s": "prefill",
    "decode_tok_s": "decode",
}
STAT_HEADERS = ("figure", "median", "min – max", "n")


def _stat_row(label: str, stat: Stat, unit: str) -> list[str]:
    spread = (
        MISSING if stat.min is None else f"{format_figure(stat.min, unit)} – {format_figure(stat.max, unit)}"
    )
    return [label, format_figure(stat.median, unit), spread, str(stat.n)]


def latency_rows(entry: Entry) -> list[list[str]]:
    return [
        _stat_row(LATENCY_LABELS[name], entry.latency[name], FIGURES_BY_NAME[name].unit)
        for name in LATENCY_LABELS
    ]


def memory_rows(entry: Entry) -> list[list[str]]:
    rows = [_stat_row(label, entry.memory[name], "bytes") for name, label in MEMORY_ROWS]
    for name, stat in entry.faults.items():
        if stat.n:
            rows.append(_stat_row(f"{name} page faults (whole run)", stat, "count"))
    return rows


def section_rows(entry: Entry) -> list[list[str]]:
    return [
        [
            row.label,
            format_bytes(row.resident.median),
            format_bytes(row.bytes),
            format_percent(row.share),
        ]
        for row in entry.sections
    ]


def plan_rows(entry: Entry) -> list[list[str]]:
    plan = entry.check.plan
    if plan is None:
        return []
    return [[term.name, term.kind, format_bytes(term.bytes), term.how] for term in plan.terms]


def check_summary(entry: Entry) -> list[list[str]]:
    check = entry.check
    predicted = check.plan.total if check.plan else None
    remainder = check.remainder
    share = MISSING
    if remainder is not None and check.measured_pss:
        share = f"{100 * remainder / check.measured_pss:+.1f}%"
    return [
        ["predicted peak PSS", format_bytes(predicted)],
        ["measured (median)", format_bytes(check.measured_pss)],
        ["unexplained remainder (measured − predicted)", f"{format_signed_bytes(remainder)} ({share})"],
        ["fit", check.verdict],
    ]


def matrix_cell(entry: Entry | None) -> str:
    if entry is None:
        return MISSING
    decode = format_figure(entry.latency["decode_tok_s"].median, "tok/s")
    pss = format_bytes(entry.memory["peak_pss"].median)
    ple = next((row for row in entry.sections if row.kind.endswith("per_layer_embedder")), None)
    parts = [f"decode {decode}", f"PSS {pss}"]
    if ple is not None:
        parts.append(f"PLE {format_bytes(ple.resident.median)}")
    return " · ".join(parts)


def matrix_rows(report: Report) -> list[list[str]]:
    return [
        [device, *[matrix_cell(report.cell(device, bundle)) for bundle in report.bundles]]
        for device in report.devices
    ]


def fit_summary(entry: Entry) -> list[list[str]]:
    """The fit curve's findings beside the planner's fit verdict: knee, kill point, planner's minimum."""
    fit = entry.fit
    if fit is None:
        return []
    knee, kill, planner = fit.knee or {}, fit.kill or {}, fit.planner or {}
    measured_knee = format_bytes(knee.get("available")) if knee.get("step") else MISSING
    if knee.get("step") and knee.get("above"):
        measured_knee += f" (slower at {format_bytes(knee['above'])})"
    minimum = format_bytes(planner.get("minimum"))
    if planner.get("how"):
        minimum += f" ({planner['how']})"
    return [
        ["measured", fit.verdict or MISSING],
        ["knee (available memory)", measured_knee],
        ["planner's minimum", minimum],
        ["planner vs knee", format_change(planner.get("error_vs_knee"))],
        ["runs down to", format_bytes(kill.get("runs_at"))],
        ["killed at", format_bytes(kill.get("killed_at"))],
        ["method", f"{fit.method}; {fit.state}; {len(fit.steps)} step(s)"],
    ]
