"""Where to measure next: two bisections over available memory sharing one budget of steps.

Each measured step is, for available memory M, *fast* (decode ≥ threshold × the unconstrained run) or not,
and *runs* (the runner was not killed: it finished, or was still going at the step's time limit) or not. Both
are taken as monotone in M, so two boundaries are bracketed:

- the knee: the least M that is fast, in (largest non-fast M below it, least fast M];
- the kill point: where the runner stops running, in (largest M where it did not run, least M where it ran].

The unconstrained run is fast at the device's full memory; nothing is assumed to run at 0. The first step is a
guess from the unconstrained run's footprint; then each step halves the wider bracket (doubling up instead
while a bracket's top is still the unconstrained run, so a low guess costs a step or two, not a walk down
from a phone's whole RAM). Steps stop when both brackets are narrower than the resolution, or the budget is
spent. A step that says nothing (its balloon was killed twice) closes the bracket it was meant to narrow.
Pure: no device, so the search is tested on its own.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Point:
    available: int
    fast: bool | None  # None: the step says nothing (inconclusive)
    runs: bool | None


@dataclass(frozen=True)
class Bracket:
    low: int  # the boundary is above this (0: nothing measured below)
    high: int  # … and at or below this

    @property
    def width(self) -> int:
        return self.high - self.low


@dataclass
class Bisection:
    full: int  # available memory of the unconstrained run: fast, and runs
    first_guess: int
    resolution: int
    points: list[Point] = field(default_factory=list)
    closed: set[str] = field(default_factory=set)  # brackets an inconclusive step ended

    def add(self, available: int, fast: bool | None, runs: bool | None, meant_for: str | None = None) -> None:
        self.points.append(Point(available, fast, runs))
        if fast is None and meant_for is not None:
            self.closed.add(meant_for)

    def knee(self) -> Bracket:
        high = min([self.full, *(p.available for p in self.points if p.fast)])
        low = max([0, *(p.available for p in self.points if p.fast is False and p.available < high)])
        return Bracket(low, high)

    def kill(self) -> Bracket:
        low = max([0, *(p.available for p in self.points if p.runs is False)])
        high = min([self.full, *(p.available for p in self.points if p.runs and p.available > low)])
        return Bracket(low, high)

    def next_target(self) -> tuple[int, str] | None:
        """(available memory to measure next, "knee" | "kill"), or None when both are narrow enough."""
        if not self.points:
            return min(self.first_guess, self.full), "knee"
        candidates = [
            (bracket.width, name, bracket)
            for name, bracket in (("knee", self.knee()), ("kill", self.kill()))
            if name not in self.closed and bracket.width > self.resolution
        ]
        tried = sorted({p.available for p in self.points})
        for _, name, bracket in sorted(candidates, key=lambda item: -item[0]):
            target = self._inside(bracket, tried)
            if target is not None:
                return target, name
        return None

    def _inside(self, bracket: Bracket, tried: list[int]) -> int | None:
        """The middle of the widest gap the bracket leaves between points already measured (an inconclusive
        one sits inside it); doubling up instead while the bracket's top is the unconstrained run."""
        inside = [value for value in tried if bracket.low < value < bracket.high]
        if not inside and bracket.high == self.full and bracket.low > 0:
            return min((bracket.low + bracket.high) // 2, 2 * bracket.low)
        edges = [bracket.low, *inside, bracket.high]
        width, start = max((b - a, a) for a, b in itertools.pairwise(edges))
        if width <= self.resolution:
            return None
        return start + width // 2
