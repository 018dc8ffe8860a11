"""One run's memory timeline for the report: anonymous, file-backed by section, PSS, faults, and its phases.

The probe's raw output (timeline.csv, maps.csv, result.json beside profile.json) is read through the probe's
own reader. The run's phases are not in the probe's output: they are placed from the runner's own durations
(init, prefill tokens ÷ prefill tok/s, decode tokens ÷ decode tok/s), ending where the last smaps sample saw
the bundle mapped plus half a sampling interval (the engine unmaps its sections when it is deleted, right
after decoding), or at the runner's exit without smaps samples. The start is where the run began less the
three durations: LiteRT-LM's init time overlaps the process start-up, so init may be drawn from 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeship.profiles.schema import Iteration, Profile
from edgeship.profiles.summary import section_label

SHOWN_SECTIONS = 3  # the plot's legend names the largest sections; the small ones are summed
MAX_POINTS = 400  # a plot needs no more; a long run's timeline is thinned evenly
FAULT_COLUMNS = (("minflt", "minor"), ("majflt", "major"))


@dataclass
class Timeline:
    t_s: list[float]
    anon: list[float | None]
    file: list[float | None]
    pss: list[float | None]
    section_t_s: list[float]
    sections: dict[str, list[float]]  # label → resident bytes at each section_t_s (bundle sections)
    phases: list[tuple[str, float, float]]  # (name, start s, end s)
    phase_note: str
    faults: dict[str, list[float]] = field(default_factory=dict)  # "minor"/"major" → cumulative, per t_s


def _thin(count: int) -> list[int]:
    if count <= MAX_POINTS:
        return list(range(count))
    step = count / MAX_POINTS
    picks = sorted({int(i * step) for i in range(MAX_POINTS)} | {count - 1})
    return picks


def _phases(
    it: Iteration, last_mapped_s: float | None, interval_s: float, wall_s: float | None
) -> tuple[list[tuple[str, float, float]], str]:
    lat = it.latency
    spans = []
    if lat.init_s:
        spans.append(("init", lat.init_s))
    if lat.prefill_tok_s and lat.prefill_tokens:
        spans.append(("prefill", lat.prefill_tokens / lat.prefill_tok_s))
    if lat.decode_tok_s and lat.decode_tokens:
        spans.append(("decode", lat.decode_tokens / lat.decode_tok_s))
    if not spans:
        return [], "no phases: the runner reported no durations"
    total = sum(duration for _, duration in spans)
    if last_mapped_s is not None:
        end = last_mapped_s + interval_s / 2
        note = "phases from the runner's own durations, ending when the bundle was last seen mapped"
    elif wall_s is not None:
        end = wall_s
        note = "phases from the runner's own durations, ending at the runner's exit"
    else:
        return [], "no phases: no smaps sample and no wall time"
    start = end - total
    if start < 0:
        note += " (the runner's init overlaps its start-up: init drawn from 0)"
    phases = []
    for name, duration in spans:
        phases.append((name, max(0.0, start), start + duration))
        start += duration
    return phases, note


def read_timeline_of(folder: Path, profile: Profile, it: Iteration) -> Timeline | None:
    """The iteration's timeline, or None when its raw output is gone (a profile.json copied alone)."""
    from edgeship.android_harness.probe import read_probe_output
    from edgeship.errors import EdgeshipError

    if not it.raw_dir or not (folder / it.raw_dir).is_dir():
        return None
    try:
        run = read_probe_output(folder / it.raw_dir)
    except (EdgeshipError, OSError, ValueError):
        return None
    if not run.samples:
        return None
    picks = _thin(len(run.samples))
    samples = [run.samples[i] for i in picks]
    t_s = [s.t_ms / 1000.0 for s in samples]
    spans = [
        (str(s.get("kind")), int(s.get("offset") or 0), int(s.get("end") or 0))
        for s in profile.bundle.get("sections") or []
    ]
    per_time = run.section_timeline(spans)
    section_t = sorted(per_time)
    kinds = [kind for kind, _, _ in spans]
    sections = _largest_sections(
        {section_label(kind): [float(per_time[t].get(kind, 0)) for t in section_t] for kind in kinds}
    )
    faults = {}
    for column, name in FAULT_COLUMNS:
        series = [s.values.get(column) for s in samples]
        if any(value is not None for value in series):
            faults[name] = [float(v) if v is not None else float("nan") for v in series]
    interval = (
        float(profile.config.get("smaps_interval_ms") or profile.config.get("interval_ms") or 50) / 1000
    )
    last_mapped = section_t[-1] / 1000.0 if section_t else None
    phases, note = _phases(it, last_mapped, interval, it.wall_s)
    return Timeline(
        t_s=t_s,
        anon=[_first(s.values, "rss_anon", "pss_anon") for s in samples],
        file=[_first(s.values, "rss_file", "pss_file") for s in samples],
        pss=[_first(s.values, "pss") for s in samples],
        section_t_s=[t / 1000.0 for t in section_t],
        sections=sections,
        phases=phases,
        phase_note=note,
        faults=faults,
    )


def _largest_sections(series: dict[str, list[float]]) -> dict[str, list[float]]:
    """The SHOWN_SECTIONS sections with the most resident bytes; the rest (metadata, tokenizer) summed."""
    ranked = sorted((label for label in series if any(series[label])), key=lambda k: -max(series[k]))
    shown = {label: series[label] for label in ranked[:SHOWN_SECTIONS]}
    rest = ranked[SHOWN_SECTIONS:]
    if rest:
        shown["other sections"] = [sum(values) for values in zip(*(series[k] for k in rest), strict=True)]
    return shown


def _first(values: dict[str, int | None], *names: str) -> float | None:
    for name in names:
        if values.get(name) is not None:
            return float(values[name])  # type: ignore[arg-type]
    return None


def rusage_of(folder: Path, it: Iteration) -> dict[str, Any]:
    """The runner's rusage as the probe recorded it at exit (minflt, majflt, maxrss…); {} when absent."""
    from edgeship.android_harness.probe import read_result
    from edgeship.errors import EdgeshipError

    if not it.raw_dir:
        return {}
    try:
        rusage = read_result(folder / it.raw_dir).get("rusage")
    except (EdgeshipError, OSError, ValueError):
        return {}
    return dict(rusage) if isinstance(rusage, dict) else {}
