"""How much RAM an app can realistically use on an Android phone of a given size.

Android keeps its own processes resident (kernel and its reserved memory, system_server, SurfaceFlinger,
SystemUI, the launcher, Play services, the camera and radio HALs) — about 1.5–2.5 GB on current phones — and
lmkd kills cached and then perceptible apps before the foreground one. What is left for one foreground app is
estimated as ``USABLE_SHARE`` of MemTotal (a 4 GB phone ≈ 2.2 GiB, 8 GB ≈ 4.4 GiB, 12 GB ≈ 6.6 GiB): between
the free memory a phone shows with apps in the background and what lmkd can reclaim for the foreground.
When the device is asked live (`plan --device`), its MemAvailable at that moment is shown beside it: it is
lower while other apps are cached, and lmkd gives most of the difference back to the foreground app.
"""

from __future__ import annotations

from dataclasses import dataclass

USABLE_SHARE = 0.55
RULE = (
    f"usable ≈ {USABLE_SHARE:.0%} of RAM: Android's own processes and the kernel hold the rest, "
    "and lmkd kills cached apps before the foreground one"
)


@dataclass(frozen=True)
class Budget:
    name: str  # the device or profile the RAM figure belongs to
    ram_total: int
    usable: int
    available_now: int | None  # MemAvailable when read live
    rule: str = RULE


def budget_for(name: str, ram_total: int, available_now: int | None = None) -> Budget:
    return Budget(name, ram_total, int(ram_total * USABLE_SHARE), available_now)
