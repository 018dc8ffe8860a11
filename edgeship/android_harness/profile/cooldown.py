"""Thermal wait before an iteration (`--cooldown-c T`): poll until the hottest zone is below T °C.

A phone that throttles mid-run turns a decode benchmark into a thermal benchmark; waiting for the same
starting temperature makes iterations comparable. The reader of temperatures is passed in (the profile passes
one that reads the device's thermal zones), so the waiting logic is testable without a device.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

# Zones report nonsense on some phones (-273 °C for a disabled sensor, 0, or millidegrees read twice);
# a reading outside this range says nothing about how hot the SoC is.
PLAUSIBLE_MIN_C = -30.0
PLAUSIBLE_MAX_C = 150.0


@dataclass(frozen=True)
class CooldownResult:
    threshold_c: float
    reached: bool  # the hottest zone went below the threshold (or was already below)
    waited_s: float
    hottest_c: float | None  # last hottest plausible reading; None when the device exposes no zone
    hottest_zone: str | None
    polls: int
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def hottest_zone(thermal: Mapping[str, float | None] | None) -> tuple[str, float] | None:
    """The (zone, °C) with the highest plausible reading; None when no zone gives one."""
    readings = [
        (zone, float(value))
        for zone, value in (thermal or {}).items()
        if value is not None and PLAUSIBLE_MIN_C <= float(value) <= PLAUSIBLE_MAX_C
    ]
    if not readings:
        return None
    return max(readings, key=lambda item: item[1])


def wait_for_cooldown(
    read_thermal: Callable[[], Mapping[str, float | None] | None],
    threshold_c: float,
    *,
    max_wait_s: float = 600.0,
    poll_s: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    on_wait: Callable[[str, float], None] | None = None,
) -> CooldownResult:
    """Poll ``read_thermal`` until the hottest zone is below ``threshold_c`` or ``max_wait_s`` has passed.

    Never raises for a device without thermal zones: the run goes on and the result says why it did not wait.
    ``on_wait(zone, celsius)`` is told of each poll that found the device too hot (for progress notes).
    """
    start = clock()
    polls = 0
    last: tuple[str, float] | None = None
    while True:
        polls += 1
        last = hottest_zone(read_thermal())
        waited = clock() - start
        if last is None:
            return CooldownResult(
                threshold_c, False, waited, None, None, polls, note="device exposes no readable thermal zone"
            )
        zone, celsius = last
        if celsius < threshold_c:
            return CooldownResult(threshold_c, True, waited, celsius, zone, polls)
        if waited >= max_wait_s:
            return CooldownResult(
                threshold_c,
                False,
                waited,
                celsius,
                zone,
                polls,
                note=f"still {celsius:.1f} °C ({zone}) after {waited:.0f} s; ran anyway",
            )
        if on_wait is not None:
            on_wait(zone, celsius)
        sleep(min(poll_s, max(0.0, max_wait_s - waited)))
