"""One figure, baseline runs vs current runs → regression, improvement, same, or inconclusive.

Latency is noisy (thermal drift, other load): a change counts only when a one-sided Mann-Whitney U test
says the current runs are worse (or better) at level alpha AND the medians moved by at least the practical
minimum. With fewer than ``min_runs`` runs on a side nothing is decided; with 3 vs 3 the smallest p is
1/20 = 0.05, so complete separation plus the minimum change is a regression at alpha 0.05. A change past
the minimum whose p is not small enough is inconclusive, with the runs per side that would settle it.

Memory is nearly deterministic run to run (the same pages are touched), so it is compared by medians
against max(absolute, relative) thresholds, as benchstat's ``assume=exact`` does for noiseless units.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from edgeship.profiles.figures import LATENCY, Figure
from edgeship.profiles.gate.thresholds import Thresholds
from edgeship.profiles.stats import mann_whitney, runs_needed
from edgeship.units import format_signed_bytes

REGRESSION = "regression"
IMPROVEMENT = "improvement"
SAME = "same"
INCONCLUSIVE = "inconclusive"
VERDICTS = (REGRESSION, IMPROVEMENT, SAME, INCONCLUSIVE)


@dataclass(frozen=True)
class FigureVerdict:
    figure: str
    label: str
    verdict: str
    baseline_median: float | None
    current_median: float | None
    baseline_n: int
    current_n: int
    change: float | None  # relative change of the median, current vs baseline (+0.10 = 10% higher)
    p: float | None  # one-sided p in the direction the medians moved (latency only)
    threshold: str  # what counted as a change, for the reader
    note: str  # why: "p=0.05 ≤ 0.05 and −12% ≤ −5%", "needs ≥ 3 runs per side (has 2/3)"

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def decide(
    figure: Figure, baseline: Sequence[float], current: Sequence[float], t: Thresholds
) -> FigureVerdict:
    if figure.group == LATENCY:
        return _decide_latency(figure, baseline, current, t)
    return _decide_memory(figure, baseline, current, t)


def _medians(baseline: Sequence[float], current: Sequence[float]) -> tuple[float | None, float | None]:
    return (
        statistics.median(baseline) if baseline else None,
        statistics.median(current) if current else None,
    )


def _relative(before: float | None, after: float | None) -> float | None:
    if before is None or after is None or before == 0:
        return None
    return (after - before) / abs(before)


def _verdict(
    figure: Figure, kind: str, baseline: Sequence[float], current: Sequence[float], p: float | None,
    threshold: str, note: str,
) -> FigureVerdict:  # fmt: skip
    before, after = _medians(baseline, current)
    return FigureVerdict(
        figure.name, figure.label, kind, before, after, len(baseline), len(current),
        _relative(before, after), p, threshold, note,
    )  # fmt: skip


def _decide_latency(
    figure: Figure, baseline: Sequence[float], current: Sequence[float], t: Thresholds
) -> FigureVerdict:
    minimum = t.latency[figure.name]
    sign = "−" if figure.higher_is_better else "+"
    threshold = f"{sign}{minimum * 100:g}% and p ≤ {t.alpha:g}"
    if len(baseline) < t.min_runs or len(current) < t.min_runs:
        note = f"needs ≥ {t.min_runs} ok runs per side (has {len(baseline)} vs {len(current)})"
        return _verdict(figure, INCONCLUSIVE, baseline, current, None, threshold, note)
    before, after = _medians(baseline, current)
    change = _relative(before, after) or 0.0
    test = mann_whitney(baseline, current)
    # "worse" is lower for tok/s, higher for seconds; the test side follows.
    worse_p, better_p = (
        (test.p_less, test.p_greater) if figure.higher_is_better else (test.p_greater, test.p_less)
    )
    worse_change = -change if figure.higher_is_better else change  # > 0 means worse
    if worse_change >= minimum and worse_p <= t.alpha:
        note = f"p={worse_p:.3g} ≤ {t.alpha:g}, median {change * 100:+.1f}%"
        return _verdict(figure, REGRESSION, baseline, current, worse_p, threshold, note)
    if -worse_change >= minimum and better_p <= t.alpha:
        note = f"p={better_p:.3g} ≤ {t.alpha:g}, median {change * 100:+.1f}%"
        return _verdict(figure, IMPROVEMENT, baseline, current, better_p, threshold, note)
    p = worse_p if worse_change >= 0 else better_p
    if abs(worse_change) < minimum:
        note = f"median {change * 100:+.1f}%, within the ±{minimum * 100:g}% that matters"
        return _verdict(figure, SAME, baseline, current, p, threshold, note)
    needed = runs_needed(len(baseline), len(current), test.u, t.alpha)
    more = f"needs ~{needed} runs per side to tell" if needed else "the runs overlap too much to tell"
    note = f"median {change * 100:+.1f}% but p={p:.3g} > {t.alpha:g}: {more}"
    return _verdict(figure, INCONCLUSIVE, baseline, current, p, threshold, note)


def _decide_memory(
    figure: Figure, baseline: Sequence[float], current: Sequence[float], t: Thresholds
) -> FigureVerdict:
    rule = t.memory[figure.name]
    threshold = f"± {rule.describe()}"
    if not baseline or not current:
        note = f"not measured on {'the baseline' if not baseline else 'the current runs'}"
        return _verdict(figure, INCONCLUSIVE, baseline, current, None, threshold, note)
    before, after = _medians(baseline, current)
    assert before is not None and after is not None
    limit = rule.limit(before)
    delta = after - before
    moved = format_signed_bytes(delta)
    if delta > limit:
        return _verdict(figure, REGRESSION, baseline, current, None, threshold, f"median {moved}")
    if delta < -limit:
        return _verdict(figure, IMPROVEMENT, baseline, current, None, threshold, f"median {moved}")
    return _verdict(figure, SAME, baseline, current, None, threshold, f"median {moved}, within the limit")
