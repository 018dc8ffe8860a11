"""Median and spread of each figure over a profile's measured iterations, and the per-device summary table.

Only measured iterations that ended well count: a warm-up run pays for cold caches, and a killed run has no
latency and a truncated memory timeline (it is reported in the table's exit column instead).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rich.table import Table
from rich.text import Text

from edgeship.profiles.schema import STATUS_SIGNAL, STATUS_TIMEOUT, Iteration, Profile
from edgeship.units import format_bytes, format_number, format_percent

LATENCY_FIGURES = ("init_s", "ttft_s", "prefill_tok_s", "decode_tok_s")
MEMORY_FIGURES = ("peak_rss", "peak_pss", "peak_anon", "peak_file", "peak_swap", "hwm", "rusage_maxrss")
PLE_SECTION_KIND = "tf_lite_per_layer_embedder"


@dataclass(frozen=True)
class FigureSummary:
    median: float
    min: float
    max: float
    stdev: float  # sample standard deviation; 0.0 for a single value
    n: int


def summarize_values(values: Iterable[float | int | None]) -> FigureSummary | None:
    """Stats over the values present (None = not measured); None when there are none."""
    present = [float(value) for value in values if value is not None]
    if not present:
        return None
    stdev = statistics.stdev(present) if len(present) > 1 else 0.0
    return FigureSummary(
        median=statistics.median(present), min=min(present), max=max(present), stdev=stdev, n=len(present)
    )


def summarize_iterations(iterations: Sequence[Iteration]) -> dict[str, Any]:
    """The profile.json ``summary``: {latency: {figure: stats}, memory: {…}, sections: {kind: …}, counts}."""
    measured = [it for it in iterations if not it.warmup]
    counted = [it for it in measured if it.exit.ok]
    latency = {
        name: _as_dict(summarize_values(getattr(it.latency, name) for it in counted))
        for name in LATENCY_FIGURES
    }
    memory = {
        name: _as_dict(summarize_values(getattr(it.memory, name) for it in counted))
        for name in MEMORY_FIGURES
    }
    sections: dict[str, Any] = {}
    for kind in _section_kinds(measured):
        sizes = [it.memory.sections[kind].bytes for it in measured if kind in it.memory.sections]
        present = [it.memory.sections[kind] for it in counted if kind in it.memory.sections]
        sections[kind] = {
            "bytes": sizes[-1],
            "resident_peak": _as_dict(summarize_values(section.resident_peak for section in present)),
            "resident_at_exit": _as_dict(summarize_values(section.resident_at_exit for section in present)),
        }
    statuses: dict[str, int] = {}
    for it in measured:
        statuses[it.exit.status] = statuses.get(it.exit.status, 0) + 1
    return {
        "latency": latency,
        "memory": memory,
        "sections": sections,
        "counts": {
            "warmup": len(iterations) - len(measured),
            "measured": len(measured),
            "ok": len(counted),
            "failed": len(measured) - len(counted),
            "by_status": statuses,
        },
    }


def _section_kinds(iterations: Sequence[Iteration]) -> list[str]:
    kinds: list[str] = []
    for it in iterations:
        for kind in it.memory.sections:
            if kind not in kinds:
                kinds.append(kind)
    return kinds


def _as_dict(summary: FigureSummary | None) -> dict[str, float | int] | None:
    return asdict(summary) if summary is not None else None


def section_label(kind: str) -> str:
    """'tf_lite_per_layer_embedder' → 'per_layer_embedder' (the prefix says nothing to a reader)."""
    return kind.removeprefix("tf_lite_")


def format_residency(kind: str, section_bytes: int, resident_peak: int | None) -> str:
    """'per_layer_embedder: 9.7 MiB resident of 129.5 MiB (7.5%)'."""
    if resident_peak is None:
        return f"{section_label(kind)}: not seen mapped by any smaps sample ({format_bytes(section_bytes)})"
    share = f" ({format_percent(resident_peak / section_bytes)})" if section_bytes else ""
    resident = format_bytes(resident_peak)
    return f"{section_label(kind)}: {resident} resident of {format_bytes(section_bytes)}{share}"


def residency_lines(summary: dict[str, Any]) -> list[str]:
    """One line per section with a measured residency (medians), largest section first."""
    sections = summary.get("sections") or {}
    lines = []
    for kind, section in sorted(sections.items(), key=lambda item: -item[1]["bytes"]):
        stats = section.get("resident_peak")
        lines.append(format_residency(kind, section["bytes"], stats["median"] if stats else None))
    return lines


def describe_exit(iteration: Iteration) -> str:
    """One phrase for an iteration's end: 'ok', 'SIGKILL (likely the OOM killer)', 'exit 3', 'timeout'."""
    status = iteration.exit
    if status.note:
        return status.note
    if status.status == STATUS_TIMEOUT:
        return "timeout"
    if status.status == STATUS_SIGNAL:
        return f"signal {status.signal}"
    return status.status if status.code in (None, 0) else f"exit {status.code}"


def exit_summary(profile: Profile, device_error: str | None = None) -> str:
    """'3/3 ok', or '2/3 ok; iter 2: SIGKILL (likely the OOM killer)'."""
    measured = profile.measured()
    ok = sum(1 for it in measured if it.exit.ok)
    wanted = profile.config.get("iterations") or len(measured)
    parts = [f"{ok}/{wanted} ok"]
    parts += [f"iter {it.index}: {describe_exit(it)}" for it in measured if not it.exit.ok]
    if device_error:
        parts.append(device_error)
    return "; ".join(parts)


def _median(summary: dict[str, Any], group: str, name: str) -> float | None:
    stats = (summary.get(group) or {}).get(name)
    return stats["median"] if stats else None


def ple_residency_cell(summary: dict[str, Any]) -> str:
    section = (summary.get("sections") or {}).get(PLE_SECTION_KIND)
    if not section:
        return "no PLE section"
    resident = section["resident_peak"]["median"] if section.get("resident_peak") else None
    if resident is None:
        return f"not seen mapped ({format_bytes(section['bytes'])})"
    return f"{format_bytes(resident)} of {format_bytes(section['bytes'])}"


@dataclass
class SummaryRow:
    """What the table shows for one device (also the CLI's --json summary)."""

    serial: str
    model: str | None
    bundle_sha12: str
    init_s: float | None
    ttft_s: float | None
    prefill_tok_s: float | None
    decode_tok_s: float | None
    peak_rss: float | None
    peak_pss: float | None
    ple: str
    exit: str
    ok: bool

    @classmethod
    def from_profile(cls, profile: Profile, device_error: str | None = None) -> SummaryRow:
        summary = profile.summary or summarize_iterations(profile.iterations)
        measured = profile.measured()
        wanted = profile.config.get("iterations") or len(measured)
        return cls(
            serial=str(profile.device.get("serial")),
            model=profile.device.get("model"),
            bundle_sha12=str(profile.bundle.get("sha256", ""))[:12],
            init_s=_median(summary, "latency", "init_s"),
            ttft_s=_median(summary, "latency", "ttft_s"),
            prefill_tok_s=_median(summary, "latency", "prefill_tok_s"),
            decode_tok_s=_median(summary, "latency", "decode_tok_s"),
            peak_rss=_median(summary, "memory", "peak_rss"),
            peak_pss=_median(summary, "memory", "peak_pss"),
            ple=ple_residency_cell(summary),
            exit=exit_summary(profile, device_error),
            ok=device_error is None and len(measured) == wanted and all(it.exit.ok for it in measured),
        )


def summary_table(rows: Sequence[SummaryRow], title: str = "edgeship profile — medians") -> Table:
    """The per-device table the CLI prints."""
    table = Table(title=title, title_justify="left")
    for header, justify in (
        ("device", "left"),
        ("model", "left"),
        ("init s", "right"),
        ("TTFT s", "right"),
        ("prefill tok/s", "right"),
        ("decode tok/s", "right"),
        ("peak RSS", "right"),
        ("peak PSS", "right"),
        ("PLE resident", "right"),
        ("exit", "left"),
    ):
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        table.add_row(
            Text(row.serial),
            Text(row.model or "—"),
            format_number(row.init_s, 2),
            format_number(row.ttft_s, 3),
            format_number(row.prefill_tok_s, 1),
            format_number(row.decode_tok_s, 1),
            format_bytes(row.peak_rss),
            format_bytes(row.peak_pss),
            row.ple,
            Text(row.exit, style="green" if row.ok else "red"),
        )
    return table


def failed_row(serial: str, error: str) -> SummaryRow:
    """A device that failed before any profile existed (offline, push refused…)."""
    return SummaryRow(
        serial=serial,
        model=None,
        bundle_sha12="",
        init_s=None,
        ttft_s=None,
        prefill_tok_s=None,
        decode_tok_s=None,
        peak_rss=None,
        peak_pss=None,
        ple="—",
        exit=error,
        ok=False,
    )
