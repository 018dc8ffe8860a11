"""The thermal wait, driven by a scripted sequence of readings and a fake clock."""

from __future__ import annotations

from collections.abc import Iterator

from edgeship.android_harness.profile.cooldown import hottest_zone, wait_for_cooldown


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def readings(*temps: dict[str, float | None]) -> Iterator[dict[str, float | None]]:
    yield from temps
    while True:
        yield temps[-1]


def test_hottest_zone_ignores_implausible_readings() -> None:
    assert hottest_zone({"cpu": 41.0, "gpu": 55.5, "bogus": -273.0, "broken": None, "x": 900.0}) == (
        "gpu",
        55.5,
    )
    assert hottest_zone({"bogus": -273.0}) is None
    assert hottest_zone(None) is None


def test_waits_until_below_threshold() -> None:
    fake = FakeTime()
    source = readings({"cpu": 50.0}, {"cpu": 45.0}, {"cpu": 39.5, "gpu": 38.0})
    seen: list[float] = []
    result = wait_for_cooldown(
        lambda: next(source),
        40.0,
        poll_s=5.0,
        sleep=fake.sleep,
        clock=fake.clock,
        on_wait=lambda zone, c: seen.append(c),
    )
    assert result.reached
    assert result.polls == 3
    assert result.hottest_c == 39.5 and result.hottest_zone == "cpu"
    assert result.waited_s == sum(fake.sleeps) == 10.0
    assert seen == [50.0, 45.0]


def test_already_cool_does_not_sleep() -> None:
    fake = FakeTime()
    result = wait_for_cooldown(lambda: {"cpu": 30.0}, 40.0, sleep=fake.sleep, clock=fake.clock)
    assert result.reached and result.polls == 1 and fake.sleeps == []


def test_gives_up_after_max_wait_and_says_so() -> None:
    fake = FakeTime()
    result = wait_for_cooldown(
        lambda: {"cpu": 70.0}, 40.0, max_wait_s=12.0, poll_s=5.0, sleep=fake.sleep, clock=fake.clock
    )
    assert not result.reached
    assert result.waited_s >= 12.0
    assert sum(fake.sleeps) == 12.0  # the last sleep is trimmed to the deadline
    assert result.note and "70.0" in result.note


def test_no_thermal_zones_goes_on_with_a_note() -> None:
    fake = FakeTime()
    result = wait_for_cooldown(lambda: {}, 40.0, sleep=fake.sleep, clock=fake.clock)
    assert not result.reached and result.hottest_c is None and fake.sleeps == []
    assert result.note == "device exposes no readable thermal zone"
