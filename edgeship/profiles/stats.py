"""The one-sided Mann-Whitney U test the gate uses, exact for the small samples a phone bench gives.

A device run takes seconds to minutes, so a CI gate sees 3–10 runs per side: the normal approximation is
poor there, and scipy costs ~0.3 s to import. Without ties the exact null distribution of U comes from the
classic recurrence (Mann & Whitney 1947), cached per (n, m); with ties it is the permutation distribution of
the mid-rank sum, counted exactly while C(n + m, n) stays small, and the tie-corrected normal approximation
(continuity corrected) beyond that. tests/profiles/test_stats.py checks every path against scipy.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

# Above this many arrangements the tied case uses the normal approximation (C(20, 10) = 184 756).
EXACT_TIED_LIMIT = 200_000
# The no-ties recurrence is O(n·m·n·m); past this the normal approximation is as good and cheaper.
EXACT_SIZE_LIMIT = 50


@dataclass(frozen=True)
class UTest:
    """``u``: pairs (x, y) with y > x, ties counting one half; ``p_greater``: P(U ≥ u) under H0 — small when
    y tends to be larger than x; ``p_less``: P(U ≤ u) — small when y tends to be smaller."""

    u: float
    n: int
    m: int
    p_greater: float
    p_less: float
    method: str  # "exact" | "exact-ties" | "normal"


def u_statistic(x: Sequence[float], y: Sequence[float]) -> float:
    return sum(1.0 if b > a else 0.5 if b == a else 0.0 for a in x for b in y)


def mann_whitney(x: Sequence[float], y: Sequence[float]) -> UTest:
    """Both one-sided p-values of the U test of ``y`` against ``x`` (each side needs at least one value)."""
    n, m = len(x), len(y)
    if n == 0 or m == 0:
        raise ValueError("the U test needs at least one value on each side")
    u = u_statistic(x, y)
    pooled = list(x) + list(y)
    has_ties = len(set(pooled)) < len(pooled)
    if not has_ties and max(n, m) <= EXACT_SIZE_LIMIT:
        counts = _u_counts(n, m)
        total = math.comb(n + m, n)
        k = int(u)
        return UTest(u, n, m, sum(counts[k:]) / total, sum(counts[: k + 1]) / total, "exact")
    if has_ties and math.comb(n + m, n) <= EXACT_TIED_LIMIT:
        p_greater, p_less = _exact_tied(x, y)
        return UTest(u, n, m, p_greater, p_less, "exact-ties")
    p_greater, p_less = _normal(u, pooled, n, m)
    return UTest(u, n, m, p_greater, p_less, "normal")


def min_one_sided_p(n: int, m: int) -> float:
    """The smallest one-sided p any data can give with n vs m runs (complete separation): 1 / C(n+m, n)."""
    return 1.0 / math.comb(n + m, n)


@functools.cache
def _u_counts(n: int, m: int) -> tuple[int, ...]:
    """counts[k] = arrangements of n x's and m y's with U = k (no ties)."""
    # Look at the largest value: a y there beats all n x's (adds n to U), an x there is beaten by no y.
    if n == 0 or m == 0:
        return (1,)
    with_y_last = _u_counts(n, m - 1)  # the largest value is a y: it beats all n x's
    with_x_last = _u_counts(n - 1, m)  # the largest value is an x: no y beats it
    size = n * m + 1
    counts = [0] * size
    for k, ways in enumerate(with_x_last):
        counts[k] += ways
    for k, ways in enumerate(with_y_last):
        counts[k + n] += ways
    return tuple(counts)


def _exact_tied(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Permutation distribution of the y mid-rank sum, counted by dynamic programming over doubled ranks."""
    n, m = len(x), len(y)
    pooled = sorted(list(x) + list(y))
    doubled: list[int] = []  # 2 × mid-rank of each pooled value, so ties stay integers
    position = 0
    while position < len(pooled):
        end = position
        while end < len(pooled) and pooled[end] == pooled[position]:
            end += 1
        doubled += [position + 1 + end] * (end - position)  # 2 × (first + last rank) / 2
        position = end
    rank_of = {value: rank for value, rank in zip(pooled, doubled, strict=True)}
    observed = sum(rank_of[value] for value in y)
    # ways[k][s]: subsets of k pooled items whose doubled ranks sum to s
    ways: list[dict[int, int]] = [dict() for _ in range(m + 1)]
    ways[0][0] = 1
    for rank in doubled:
        for k in range(m, 0, -1):
            below = ways[k - 1]
            here = ways[k]
            for total, count in below.items():
                here[total + rank] = here.get(total + rank, 0) + count
    distribution = ways[m]
    total = math.comb(n + m, m)
    greater = sum(count for s, count in distribution.items() if s >= observed)
    less = sum(count for s, count in distribution.items() if s <= observed)
    return greater / total, less / total


def _normal(u: float, pooled: Sequence[float], n: int, m: int) -> tuple[float, float]:
    mean = n * m / 2.0
    tie_term = 0.0
    counts: dict[float, int] = {}
    for value in pooled:
        counts[value] = counts.get(value, 0) + 1
    for count in counts.values():
        tie_term += count**3 - count
    size = n + m
    variance = n * m / 12.0 * ((size + 1) - tie_term / (size * (size - 1)))
    if variance <= 0:
        return 1.0, 1.0
    sd = math.sqrt(variance)
    z_greater = (u - mean - 0.5) / sd
    z_less = (u - mean + 0.5) / sd
    return _upper_tail(z_greater), 1.0 - _upper_tail(z_less)


def _upper_tail(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def runs_needed(n: int, m: int, u: float, alpha: float, limit: int = 30) -> int | None:
    """Runs per side at which an effect like the observed one (same share of pairs won) would reach ``alpha``.

    A hint for "inconclusive: needs N runs", not a power analysis: it assumes the share U/(n·m) holds.
    None when even ``limit`` runs per side would not reach it (the two sides overlap too much).
    """
    share = u / (n * m)
    for runs in range(max(n, m, 3), limit + 1):
        pairs = runs * runs
        extreme = max(share, 1.0 - share)
        k = round(extreme * pairs)
        counts = _u_counts(runs, runs)
        p = sum(counts[k:]) / math.comb(2 * runs, runs)
        if p <= alpha:
            return runs
    return None
