"""The headline figures report and gate compare, how to read each from an iteration, and which way is better.

One list, so the report's matrix, the gate's rows and the JSON summary name the same things the same way.
Only measured runs that ended ``ok`` give values (as in profile.json's summary): a warm-up pays for cold
caches and a killed run has no latency and a truncated timeline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edgeship.profiles.schema import Iteration, Profile
from edgeship.profiles.summary import PLE_SECTION_KIND

LATENCY = "latency"
MEMORY = "memory"


@dataclass(frozen=True)
class Figure:
    name: str
    label: str
    group: str  # LATENCY (noisy: rank test) or MEMORY (near-deterministic: thresholds)
    unit: str  # "s" | "tok/s" | "bytes"
    higher_is_better: bool
    read: Callable[[Iteration], float | None]


def _latency(name: str) -> Callable[[Iteration], float | None]:
    return lambda it: getattr(it.latency, name)


def _memory(name: str) -> Callable[[Iteration], float | None]:
    return lambda it: getattr(it.memory, name)


def ple_resident(it: Iteration) -> float | None:
    section = it.memory.sections.get(PLE_SECTION_KIND)
    return None if section is None else section.resident_peak


FIGURES: tuple[Figure, ...] = (
    Figure("init_s", "init", LATENCY, "s", False, _latency("init_s")),
    Figure("ttft_s", "TTFT", LATENCY, "s", False, _latency("ttft_s")),
    Figure("prefill_tok_s", "prefill", LATENCY, "tok/s", True, _latency("prefill_tok_s")),
    Figure("decode_tok_s", "decode", LATENCY, "tok/s", True, _latency("decode_tok_s")),
    Figure("peak_pss", "peak PSS", MEMORY, "bytes", False, _memory("peak_pss")),
    Figure("peak_rss", "peak RSS", MEMORY, "bytes", False, _memory("peak_rss")),
    Figure("ple_resident", "PLE resident", MEMORY, "bytes", False, ple_resident),
)
FIGURES_BY_NAME = {figure.name: figure for figure in FIGURES}


def figure_values(profile: Profile, figure: Figure) -> list[float]:
    """The figure over the profile's measured ok runs, in run order (missing values left out)."""
    values = [figure.read(it) for it in profile.measured() if it.exit.ok]
    return [float(value) for value in values if value is not None]
