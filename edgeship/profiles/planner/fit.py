"""Fit a runner's calibration from real profiles of known builds (benchmarks/calibrate_planner.py).

Per build: the medians of peak PSS, peak anonymous memory and each section's resident peak over the measured
ok runs. From them:

- each dense role's file-resident share: resident ÷ section bytes on the build where that role is largest;
- anonymous bytes per transformer byte: the least-squares slope of (peak anonymous − KV) over transformer
  bytes across the builds — how much the runtime copies or repacks the weights (1.0 = one copy);
- PLE: the share of the section outside the table (scales, graph) that is resident, after the fault-around
  model has accounted for the table;
- the runtime's own memory: the mean over builds of peak PSS minus every bundle term.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edgeship.profiles.figures import FIGURES_BY_NAME, figure_values
from edgeship.profiles.planner.calibration import Calibration, runner_key
from edgeship.profiles.planner.kv import kv_layout
from edgeship.profiles.planner.model import BuildFacts, plan_memory, ple_resident, role_of
from edgeship.profiles.schema import Profile
from edgeship.profiles.summary import PLE_SECTION_KIND

DEFAULT_FAULT_AROUND = 64 * 1024  # Linux's fault_around_bytes default: 16 pages of 4 KiB
# PSS divides a shared page among the processes mapping it. On a phone the runner's own files (its binary,
# liblitert-lm, the bundle) are mapped by it alone; on a virtual device they are the host's files, and any
# host process mapping them too (an export, another runner, the test harness) lowers the runner's PSS with
# nothing changed in the runner — by a third on a busy box. Anonymous pages are private (Pss_Anon = RssAnon),
# so the runner's PSS with its files unshared is its RSS: what the planner predicts and is calibrated on.
# When a run's PSS is within QUIET_SHARE of its RSS, the host shared (almost) nothing and PSS is the figure.
QUIET_SHARE = 0.05


@dataclass(frozen=True)
class Measurement:
    name: str  # "tiny", "ple-heavy"
    build: BuildFacts
    profile: Profile
    profile_path: str


def own_pss(profile: Profile) -> list[float]:
    """Each ok run's peak PSS with its files mapped by no other process: its peak RSS (see above)."""
    return [
        float(it.memory.peak_rss)
        for it in profile.measured()
        if it.exit.ok and it.memory.peak_rss is not None
    ]


def measured_pss(profile: Profile) -> tuple[float | None, str]:
    """The figure to hold a prediction against, and which one it is: the median peak PSS on a quiet host,
    else the median peak RSS (the runner's own PSS) when other processes shared its files."""
    pss = figure_values(profile, FIGURES_BY_NAME["peak_pss"])
    if pss and shared_share(profile) <= QUIET_SHARE:
        return float(statistics.median(pss)), "peak PSS"
    own = own_pss(profile)
    if not own:
        return None, "none"
    return float(statistics.median(own)), f"peak RSS (PSS {shared_share(profile):.0%} below it: files shared)"


def shared_share(profile: Profile) -> float:
    """Median over the ok runs of (peak RSS − peak PSS) ÷ peak RSS: how much of the runner others share."""
    shares = [
        (it.memory.peak_rss - it.memory.peak_pss) / it.memory.peak_rss
        for it in profile.measured()
        if it.exit.ok and it.memory.peak_rss and it.memory.peak_pss is not None
    ]
    return float(statistics.median(shares)) if shares else 0.0


def distinct_tokens_of(profile: Profile) -> int:
    """Tokens a benchmark run looks up, taken as all distinct (an upper bound the residency data supports)."""
    config = profile.config
    tokens = int(config.get("prefill") or 0) + int(config.get("decode") or 0)
    vocab = ((profile.bundle.get("ple") or {}).get("vocab")) or tokens
    return min(tokens, int(vocab))


def _median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("no ok runs to calibrate from")
    return float(statistics.median(values))


def _section_median(profile: Profile, kind: str) -> float | None:
    values = [
        it.memory.sections[kind].resident_peak
        for it in profile.measured()
        if it.exit.ok and kind in it.memory.sections and it.memory.sections[kind].resident_peak is not None
    ]
    return float(statistics.median(values)) if values else None


def _shares(measurements: Sequence[Measurement], window: int) -> dict[str, float]:
    shares = {"transformer": 1.0, "embedder": 1.0, "ple": 1.0, "other": 1.0}
    largest: dict[str, int] = {}
    for m in measurements:
        for kind, size in m.build.sections:
            role = role_of(kind)
            resident = _section_median(m.profile, kind)
            if resident is None or size <= largest.get(role, -1):
                continue
            largest[role] = size
            if role == "ple":
                table = int((m.build.ple or {}).get("table_bytes") or size)
                rest = size - min(table, size)
                modelled = ple_resident(size, table, distinct_tokens_of(m.profile), window, 0.0)
                shares[role] = min(1.0, max(0.0, (resident - modelled) / rest)) if rest else 1.0
            else:
                shares[role] = min(1.0, resident / size) if size else 1.0
    return shares


def _line(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares (intercept, slope) of y over x; slope 0 when x does not vary."""
    xs = [x for x, _ in points]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(y for _, y in points)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return mean_y, 0.0
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread
    return mean_y - slope * mean_x, slope


def _transformer_bytes(m: Measurement) -> float:
    return float(sum(size for kind, size in m.build.sections if role_of(kind) == "transformer"))


def figure_values_of(profile: Profile, name: str) -> list[float]:
    if name in FIGURES_BY_NAME:
        return figure_values(profile, FIGURES_BY_NAME[name])
    values = [getattr(it.memory, name) for it in profile.measured() if it.exit.ok]
    return [float(v) for v in values if v is not None]


def fit_calibration(
    measurements: Sequence[Measurement], source: dict[str, Any], window: int = DEFAULT_FAULT_AROUND
) -> tuple[Calibration, list[dict[str, Any]]]:
    """The calibration, and per build what it predicts against what was measured.

    The runner's own peak PSS (``own_pss``, its RSS) minus the file-backed and KV terms
    is what the runtime and the transformer's anonymous copy cost; a line over the transformer section's
    bytes gives both (intercept: the runtime; slope: bytes per transformer byte). The slope of peak
    *anonymous* memory alone is recorded beside it as the measurement of whether the weights are repacked
    (≈ 1 or more) or used from the mapping (≈ 0).
    """
    first = measurements[0].profile
    runner = runner_key(first.runner.get("name"), first.runner.get("version"))
    shares = _shares(measurements, window)
    no_runtime = Calibration(runner, 0, 0.0, shares, window, source)
    pss_points, anon_points = [], []
    for m in measurements:
        plan = plan_memory(m.build, no_runtime, distinct_tokens=distinct_tokens_of(m.profile))
        pss = _median(own_pss(m.profile))
        pss_points.append((_transformer_bytes(m), pss - plan.total))
        layout = kv_layout(m.build.manifest)
        anon = _median(figure_values_of(m.profile, "peak_anon")) - (layout.bytes if layout else 0)
        anon_points.append((_transformer_bytes(m), anon))
    overhead, slope = _line(pss_points)
    _, anon_slope = _line(anon_points)
    observed = {
        "peak_anon_per_transformer_byte": round(anon_slope, 3),
        "transformer_file_resident_share": round(shares["transformer"], 3),
    }
    calibration = Calibration(
        runner, int(overhead), max(0.0, slope), shares, window, {**source, "observed": observed, "builds": []}
    )
    rows = []
    for m in measurements:
        plan = plan_memory(m.build, calibration, distinct_tokens=distinct_tokens_of(m.profile))
        own = own_pss(m.profile)
        measured = _median(own)
        pss = figure_values(m.profile, FIGURES_BY_NAME["peak_pss"])
        rows.append(
            {
                "build": m.name,
                "bundle_sha256": m.build.bundle_sha256[:12],
                "profile": m.profile_path,
                "runs": len(own),
                "own_peak_pss_median": int(measured),  # the runner's PSS with its files unshared: its RSS
                "own_peak_pss_range": [int(min(own)), int(max(own))],
                "measured_peak_pss_median": int(_median(pss)) if pss else None,
                "pss_below_rss": round(shared_share(m.profile), 3),
                "predicted": plan.total,
                "error": round((plan.total - measured) / measured, 4),
                "ple_resident_median": _section_median(m.profile, PLE_SECTION_KIND),
            }
        )
    calibration.source["builds"] = rows
    return calibration, rows


def calibration_to_yaml_entry(calibration: Calibration) -> dict[str, Any]:
    return {
        "overhead_pss": calibration.overhead_pss,
        "transformer_anon_per_byte": round(calibration.transformer_anon_per_byte, 4),
        "file_resident_share": {k: round(v, 4) for k, v in calibration.file_resident_share.items()},
        "fault_around_bytes": calibration.fault_around_bytes,
        "source": calibration.source,
    }
