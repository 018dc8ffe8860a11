"""The exact one-sided Mann-Whitney U against scipy (no ties) and brute-force enumeration (ties)."""

from __future__ import annotations

import itertools
import random

import pytest
import scipy.stats as scipy_stats

from edgeship.profiles.stats import mann_whitney, min_one_sided_p, runs_needed, u_statistic


def enumerate_p(x: list[float], y: list[float]) -> tuple[float, float]:
    pooled = x + y
    observed = u_statistic(x, y)
    greater = less = total = 0
    for chosen in itertools.combinations(range(len(pooled)), len(y)):
        ys = [pooled[i] for i in chosen]
        xs = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        u = u_statistic(xs, ys)
        total += 1
        greater += u >= observed
        less += u <= observed
    return greater / total, less / total


@pytest.mark.parametrize("seed", range(6))
def test_exact_without_ties_matches_scipy(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(40):
        x = [rng.random() for _ in range(rng.randint(1, 9))]
        y = [rng.random() + rng.choice([0, 0.2, 0.5]) for _ in range(rng.randint(1, 9))]
        result = mann_whitney(x, y)
        assert result.method == "exact"
        assert result.p_greater == pytest.approx(
            scipy_stats.mannwhitneyu(y, x, alternative="greater", method="exact").pvalue, abs=1e-12
        )
        assert result.p_less == pytest.approx(
            scipy_stats.mannwhitneyu(y, x, alternative="less", method="exact").pvalue, abs=1e-12
        )


def test_exact_with_ties_matches_enumeration() -> None:
    rng = random.Random(7)
    for _ in range(60):
        x = [float(rng.choice([1, 2, 3])) for _ in range(rng.randint(1, 6))]
        y = [float(rng.choice([1, 2, 3, 4])) for _ in range(rng.randint(1, 6))]
        result = mann_whitney(x, y)
        expected = enumerate_p(x, y)
        if result.method == "exact":  # the draw had no ties after all
            continue
        assert result.method == "exact-ties"
        assert (result.p_greater, result.p_less) == pytest.approx(expected, abs=1e-12)


def test_large_tied_samples_use_the_normal_approximation_like_scipy() -> None:
    rng = random.Random(3)
    x = [float(rng.randint(0, 9)) for _ in range(30)]
    y = [float(rng.randint(0, 10)) for _ in range(25)]
    result = mann_whitney(x, y)
    assert result.method == "normal"
    for side, p in (("greater", result.p_greater), ("less", result.p_less)):
        assert p == pytest.approx(
            scipy_stats.mannwhitneyu(y, x, alternative=side, method="asymptotic").pvalue, rel=1e-9
        )


def test_three_vs_three_complete_separation_reaches_five_percent() -> None:
    assert min_one_sided_p(3, 3) == pytest.approx(0.05)
    result = mann_whitney([100.0, 101.0, 102.0], [90.0, 91.0, 92.0])
    assert result.p_less == pytest.approx(0.05) and result.p_greater == pytest.approx(1.0)


def test_runs_needed_grows_with_overlap() -> None:
    separated = runs_needed(3, 3, u=0.0, alpha=0.05)
    overlapping = runs_needed(3, 3, u=2.0, alpha=0.05)  # 7 of 9 pairs won
    assert separated == 3
    assert overlapping is not None and overlapping > 3
    assert runs_needed(3, 3, u=4.5, alpha=0.05) is None  # a coin flip never reaches 5%
