"""Where a sweep measures next: both brackets narrow to the resolution within the step budget, on a device
whose true knee and kill point are known (a pure model of the device, no runs)."""

from __future__ import annotations

import pytest

from edgeship.android_harness.fit.bisect import Bisection

MIB = 1 << 20


def sweep(knee: int, kill: int, full: int, first_guess: int, resolution: int, steps: int = 8) -> Bisection:
    """Run the bisection against a device that is fast at ≥ knee and runs at > kill."""
    search = Bisection(full=full, first_guess=first_guess, resolution=resolution)
    for _ in range(steps):
        chosen = search.next_target()
        if chosen is None:
            break
        target, meant_for = chosen
        search.add(target, fast=target >= knee, runs=target > kill, meant_for=meant_for)
    return search


@pytest.mark.parametrize(
    ("knee", "kill"),
    [(131 * MIB, 31 * MIB), (87 * MIB, 20 * MIB), (190 * MIB, 100 * MIB), (60 * MIB, 58 * MIB)],
)
def test_both_brackets_hold_the_true_boundaries(knee: int, kill: int) -> None:
    search = sweep(knee, kill, full=1024 * MIB, first_guess=180 * MIB, resolution=4 * MIB, steps=16)
    k, c = search.knee(), search.kill()
    assert k.low < knee <= k.high and k.width <= 4 * MIB
    assert c.low <= kill < c.high and c.width <= 4 * MIB


def test_eight_steps_bracket_a_ple_heavy_shape_to_a_few_percent() -> None:
    search = sweep(131 * MIB, 31 * MIB, full=12 * 1024 * MIB, first_guess=190 * MIB, resolution=4 * MIB)
    assert len(search.points) == 8
    assert search.knee().width <= 12 * MIB and search.kill().width <= 24 * MIB


def test_a_low_guess_doubles_up_instead_of_walking_down_from_the_whole_ram() -> None:
    search = Bisection(full=12 * 1024 * MIB, first_guess=100 * MIB, resolution=4 * MIB)
    first, _ = search.next_target()
    search.add(first, fast=False, runs=True)
    second, meant_for = search.next_target()
    assert (first, second, meant_for) == (100 * MIB, 200 * MIB, "knee")


def test_an_inconclusive_step_closes_its_bracket_and_nothing_is_measured_twice() -> None:
    search = Bisection(full=1024 * MIB, first_guess=200 * MIB, resolution=4 * MIB)
    search.add(200 * MIB, fast=True, runs=True)
    target, meant_for = search.next_target()
    search.add(target, fast=None, runs=None, meant_for=meant_for)  # the balloon was killed twice
    assert meant_for in search.closed
    following = search.next_target()
    assert following is not None and following[1] != meant_for and following[0] != target


def test_it_stops_when_both_brackets_are_narrow() -> None:
    search = Bisection(full=100 * MIB, first_guess=50 * MIB, resolution=60 * MIB)
    assert search.next_target() == (50 * MIB, "knee")
    search.add(50 * MIB, fast=True, runs=True)
    assert search.next_target() is None
