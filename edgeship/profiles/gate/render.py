"""The gate's Markdown: what changed, by how much, p and n, with the undecided and incomparable said aloud."""

from __future__ import annotations

from edgeship.profiles.figures import FIGURES_BY_NAME
from edgeship.profiles.gate.compare import COMPARED, GateResult
from edgeship.profiles.gate.decide import IMPROVEMENT, INCONCLUSIVE, REGRESSION, SAME
from edgeship.profiles.markdown import pipe_table
from edgeship.units import format_change, format_figure

MARKS = {
    REGRESSION: "❌ regression",
    IMPROVEMENT: "✅ improvement",
    SAME: "same",
    INCONCLUSIVE: "⚠️ inconclusive",
}
ORDER = {REGRESSION: 0, INCONCLUSIVE: 1, IMPROVEMENT: 2, SAME: 3}


def _unit(name: str) -> str:
    figure = FIGURES_BY_NAME.get(name)
    return figure.unit if figure else "count"


def gate_markdown(result: GateResult, strict: bool = False) -> str:
    outcome = result.outcome(strict)
    head = {
        "regression": f"**edgeship gate: {result.regressions} regression(s)**",
        "inconclusive": f"**edgeship gate: inconclusive** ({result.inconclusive} undecided, --strict)",
        "pass with warnings": f"**edgeship gate: pass, with {result.inconclusive} undecided** (see ⚠️ below)",
        "pass": "**edgeship gate: pass**",
    }[outcome]
    lines = [head, ""]
    rows = []
    for pair in result.pairs:
        if pair.status != COMPARED:
            continue
        for verdict in sorted(pair.verdicts, key=lambda v: ORDER[v.verdict]):
            unit = _unit(verdict.figure)
            rows.append(
                [
                    pair.device,
                    pair.bundle,
                    verdict.label,
                    format_figure(verdict.baseline_median, unit),
                    format_figure(verdict.current_median, unit),
                    format_change(verdict.change),
                    "—" if verdict.p is None else f"{verdict.p:.3g}",
                    f"{verdict.baseline_n}/{verdict.current_n}",
                    MARKS[verdict.verdict],
                    verdict.note,
                ]
            )
    if rows:
        headers = ["device", "bundle", "figure", "baseline", "current", "change", "p", "n", "verdict", "why"]
        lines.append(pipe_table(headers, rows, right=(3, 4, 5, 6, 7)))
    others = [pair for pair in result.pairs if pair.status != COMPARED]
    if others:
        lines += ["", "Not compared:", ""]
        lines += [
            f"- {pair.device}, {pair.bundle}: {pair.status} — {'; '.join(pair.reasons)}" for pair in others
        ]
    t = result.thresholds
    lines += [
        "",
        f"Latency: one-sided Mann-Whitney U at α = {t.alpha:g} and a minimum change; fewer than {t.min_runs} "
        "ok runs on a side is inconclusive. Memory: change of the median beyond the threshold. "
        f"Thresholds from {', '.join(t.sources)}.",
    ]
    return "\n".join(lines) + "\n"
