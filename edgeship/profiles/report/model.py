"""What the report says, computed once from the profiles (and their builds when found), rendered three ways.

Every renderer (HTML, Markdown, JSON) reads these dataclasses and nothing else, so the three agree. One
``Entry`` per profile (a device × bundle); the report adds the device × bundle matrix.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeship.profiles.collect import LoadedProfile
from edgeship.profiles.figures import FIGURES_BY_NAME, figure_values
from edgeship.profiles.fitcurve import FIT_FILE_NAME, FitResult, load_fit
from edgeship.profiles.identity import bundle_label, device_label
from edgeship.profiles.planner import (
    Budget,
    BuildFacts,
    Plan,
    architecture_bytes,
    budget_for,
    full_attention_bytes,
    layout_bytes_at,
    plan_build,
    runner_key,
)
from edgeship.profiles.planner.fit import distinct_tokens_of, measured_pss
from edgeship.profiles.report.timeline import Timeline, read_timeline_of
from edgeship.profiles.schema import Iteration, Profile
from edgeship.profiles.summary import PLE_SECTION_KIND, exit_summary, section_label, summarize_values
from edgeship.units import format_bytes, format_decimal_bytes

LATENCY_ROWS = ("init_s", "ttft_s", "prefill_tok_s", "decode_tok_s")
MEMORY_ROWS = (
    ("peak_pss", "peak PSS"),
    ("peak_rss", "peak RSS"),
    ("peak_anon", "anonymous"),
    ("peak_file", "file-backed"),
    ("peak_swap", "swap"),
    ("hwm", "high-water (max of VmHWM, RSS+swap, ru_maxrss)"),
)
CLAIM_CONTEXTS = (2048, 8192, 32768)


@dataclass(frozen=True)
class Stat:
    median: float | None
    min: float | None
    max: float | None
    n: int

    @classmethod
    def of(cls, values: Sequence[float | int | None]) -> Stat:
        summary = summarize_values(values)
        if summary is None:
            return cls(None, None, None, 0)
        return cls(summary.median, summary.min, summary.max, summary.n)


@dataclass(frozen=True)
class SectionRow:
    kind: str
    label: str
    bytes: int
    resident: Stat  # resident peak over the ok runs

    @property
    def share(self) -> float | None:
        return None if self.resident.median is None or not self.bytes else self.resident.median / self.bytes


@dataclass(frozen=True)
class PlanCheck:
    """The planner's prediction for the profiled configuration, beside what was measured."""

    plan: Plan | None
    measured_pss: float | None
    budget: Budget | None
    verdict: str  # "fits with 1.2 GB headroom" / "over by 300 MB" / why there is none
    note: str | None = None

    @property
    def remainder(self) -> float | None:
        """Measured minus predicted: what the model does not explain."""
        if self.plan is None or self.measured_pss is None:
            return None
        return self.measured_pss - self.plan.total


@dataclass(frozen=True)
class ClaimRow:
    claim: str
    measured: str
    configuration: str


@dataclass
class Entry:
    """One profile: a device × bundle."""

    path: str
    device: str
    bundle: str
    profile: Profile
    facts: list[tuple[str, str]]
    latency: dict[str, Stat]
    memory: dict[str, Stat]
    faults: dict[str, Stat]
    sections: list[SectionRow]
    timeline: Timeline | None
    timeline_iteration: int | None
    state: list[tuple[str, str, str]]  # (what, before, after)
    cooldowns: list[str]
    runs: str  # "3/3 ok; iter 2: SIGKILL…"
    check: PlanCheck
    claims: list[ClaimRow]
    build_dir: str | None
    versions: dict[str, str] = field(default_factory=dict)
    fit: FitResult | None = None  # `edgeship fit`'s curve beside this profile (fit.json), when there is one
    fit_path: str | None = None
    fit_note: str | None = None  # why a fit.json beside the profile is not shown


@dataclass
class Report:
    entries: list[Entry]
    devices: list[str]  # matrix rows
    bundles: list[str]  # matrix columns
    notes: list[str]

    def cell(self, device: str, bundle: str) -> Entry | None:
        return next((e for e in self.entries if e.device == device and e.bundle == bundle), None)


def _ok_measured(profile: Profile) -> list[Iteration]:
    return [it for it in profile.measured() if it.exit.ok]


def _stat(profile: Profile, name: str) -> Stat:
    if name in FIGURES_BY_NAME:
        return Stat.of(figure_values(profile, FIGURES_BY_NAME[name]))
    values = [getattr(it.memory, name, None) for it in _ok_measured(profile)]
    return Stat.of(values)


def _facts(profile: Profile) -> list[tuple[str, str]]:
    device, bundle, runner, probe = profile.device, profile.bundle, profile.runner, profile.probe
    ram = device.get("ram_total")
    config = profile.config
    return [
        ("device", f"{device.get('manufacturer')} {device.get('model')} — serial {device.get('serial')}"),
        ("SoC / ABI", f"{device.get('soc') or '?'} / {device.get('abi') or '?'}"),
        ("Android", f"{device.get('release') or '?'} (SDK {device.get('sdk') or '?'})"),
        ("RAM", format_decimal_bytes(ram) if ram else "unknown"),
        (
            "bundle",
            f"{bundle.get('sha256')} ({bundle.get('bytes')} B, {bundle.get('arch')} {bundle.get('recipe')})",
        ),
        ("runner", f"{runner.get('name')} {runner.get('version') or ''} — sha256 {runner.get('sha256')}"),
        ("probe", f"version {probe.get('version')} — sha256 {probe.get('sha256')}"),
        (
            "settings",
            f"backend {config.get('backend')}, threads {config.get('threads') or 'runner default'}, "
            f"prefill {config.get('prefill')}, decode {config.get('decode')}, "
            f"max tokens {config.get('max_tokens')}, "
            f"{config.get('iterations')} runs + {config.get('warmup')} warm-up, "
            f"sampling {config.get('interval_ms')} ms "
            f"(smaps {config.get('smaps_interval_ms') or 'adaptive'})",
        ),
        ("TTFT", str(runner.get("ttft_definition") or "as the runner reports it")),
    ]  # fmt: skip


def _state(profile: Profile) -> list[tuple[str, str, str]]:
    before = profile.state.get("before") or {}
    after = profile.state.get("after") or {}

    def thermal(state: dict[str, Any]) -> str:
        zones = state.get("thermal") or {}
        return ", ".join(f"{zone} {value:.1f} °C" for zone, value in sorted(zones.items())) or "not exposed"

    def battery(state: dict[str, Any]) -> str:
        info = state.get("battery") or {}
        if not info:
            return "not exposed"
        return f"{info.get('level')}%, {info.get('temperature_c')} °C"

    def clocks(state: dict[str, Any]) -> str:
        freqs = state.get("cpu_freq_khz") or {}
        return ", ".join(f"{cpu} {khz / 1000:.0f} MHz" for cpu, khz in sorted(freqs.items())) or "not exposed"

    rows = [
        ("thermal", thermal(before), thermal(after)),
        ("battery", battery(before), battery(after)),
        ("CPU clocks", clocks(before), clocks(after)),
    ]
    if before.get("thermal_status") is not None or after.get("thermal_status") is not None:
        rows.append(("thermal status", str(before.get("thermal_status")), str(after.get("thermal_status"))))
    return rows


def _cooldowns(profile: Profile) -> list[str]:
    lines = []
    for it in profile.iterations:
        wait = it.cooldown
        if not wait:
            continue
        label = f"{'warm-up' if it.warmup else 'run'} {it.index}"
        reached = "reached" if wait.get("reached") else "NOT reached"
        lines.append(
            f"{label}: waited {wait.get('waited_s', 0):.0f} s for < {wait.get('threshold_c')} °C ({reached}; "
            f"hottest {wait.get('hottest_zone')} {wait.get('hottest_c')} °C)"
        )
    return lines


def _sections(profile: Profile) -> list[SectionRow]:
    rows = []
    ok = _ok_measured(profile)
    for section in profile.bundle.get("sections") or []:
        kind = str(section.get("kind"))
        values = [it.memory.sections[kind].resident_peak for it in ok if kind in it.memory.sections]
        rows.append(SectionRow(kind, section_label(kind), int(section.get("bytes") or 0), Stat.of(values)))
    return sorted(rows, key=lambda row: -row.bytes)


def _representative(profile: Profile) -> Iteration | None:
    """The ok run whose peak PSS is the median (the timeline a reader should see), else any with one."""
    ok = [it for it in _ok_measured(profile) if it.raw_dir]
    ranked = [it for it in ok if it.memory.peak_pss is not None]
    if ranked:
        ranked.sort(key=lambda it: it.memory.peak_pss or 0)
        return ranked[(len(ranked) - 1) // 2]
    candidates = ok or [it for it in profile.iterations if it.raw_dir]
    return candidates[0] if candidates else None


def find_build(profile: Profile, extra_builds: dict[str, Path]) -> tuple[BuildFacts | None, str | None, str]:
    """The profile's build (by bundle sha256 among --build dirs, else the recorded build_dir), if its manifest
    still is the one profiled; else None and why."""
    from edgeship.errors import EdgeshipError
    from edgeship.profiles.planner import read_build_facts

    sha = str(profile.bundle.get("sha256"))
    candidate = extra_builds.get(sha)
    if candidate is None and profile.bundle.get("build_dir"):
        candidate = Path(str(profile.bundle["build_dir"]))
    if candidate is None or not candidate.is_dir():
        return None, None, "build dir not found (pass --build BUILD_DIR)"
    try:
        build = read_build_facts(candidate)
    except EdgeshipError as exc:
        return None, str(candidate), str(exc)
    if build.manifest_sha256 != profile.bundle.get("manifest_sha256"):
        return None, str(candidate), f"{candidate}/manifest.json is not the one profiled (re-exported since?)"
    return build, str(candidate), ""


def _check(profile: Profile, build: BuildFacts | None, why: str) -> PlanCheck:
    measured, what = measured_pss(profile)
    if what != "peak PSS":
        why = f"measured: {what}" + (f"; {why}" if why else "")
    ram = profile.device.get("ram_total")
    budget = budget_for(device_label(profile), int(ram)) if ram else None
    if build is None:
        if budget is not None and measured is not None:
            verdict = (
                f"{_verdict_text(int(measured), budget)} (from the measured peak PSS; no prediction: {why})"
            )
        else:
            verdict = f"no verdict: {why}"
        return PlanCheck(None, measured, budget, verdict, why)
    runner = runner_key(profile.runner.get("name"), profile.runner.get("version"))
    plan = plan_build(build, runner=runner, distinct_tokens=distinct_tokens_of(profile))
    note = "; ".join([*plan.notes, why] if why else plan.notes) or None
    if budget is None:
        return PlanCheck(plan, measured, None, "no verdict: the device did not report its RAM", note)
    return PlanCheck(plan, measured, budget, _verdict_text(plan.total, budget), note)


def _verdict_text(predicted: int, budget: Budget) -> str:
    from edgeship.profiles.planner import fit_verdict

    return f"{fit_verdict(predicted, budget.usable)} of {format_decimal_bytes(budget.usable)} usable"


def _claims(profile: Profile, build: BuildFacts | None, sections: list[SectionRow]) -> list[ClaimRow]:
    rows = []
    ple = next((row for row in sections if row.kind == PLE_SECTION_KIND), None)
    tokens = distinct_tokens_of(profile)
    config = f"{profile.bundle.get('recipe')} bundle, {tokens} tokens looked up (prefill + decode)"
    if ple is not None and ple.resident.median is not None:
        per_token = ple.resident.median / tokens if tokens else None
        measured = (
            f"PLE resident {format_bytes(ple.resident.median)} of {format_bytes(ple.bytes)} "
            f"({100 * (ple.share or 0):.1f}%), {per_token / 1024:.1f} KiB per token"
            if per_token
            else f"{ple.resident.median:.0f} B"
        )
        rows.append(
            ClaimRow(
                '"only the core weights are loaded; the PLE table is fetched on demand"', measured, config
            )
        )
    elif ple is not None:
        rows.append(
            ClaimRow('"the PLE table is fetched on demand"', "not measured (no smaps sample saw it)", config)
        )
    if build is None:
        return rows
    attention = (build.manifest.get("model") or {}).get("attention")
    from edgeship.profiles.planner import kv_layout

    layout = kv_layout(build.manifest)
    if not attention or layout is None or not layout.layers:
        return rows
    element = layout.layers[0].bytes_per_element
    contexts = [tokens, *(c for c in CLAIM_CONTEXTS if c != tokens)]
    parts = []
    for context in contexts:
        full = full_attention_bytes(attention, context, element)
        bundle_kv = layout_bytes_at(layout, context, build.cache_length)
        ideal = architecture_bytes(attention, context, element)
        parts.append(
            f"{context} tokens: {format_bytes(bundle_kv)} vs {format_bytes(full)} full attention "
            f"(−{100 * (1 - bundle_kv / full):.0f}%; "
            f"the architecture allows −{100 * (1 - ideal / full):.0f}%)"
        )
    capped = (
        "sliding layers capped by a ring buffer" if layout.sliding_capped else "sliding layers NOT capped"
    )
    rows.append(
        ClaimRow(
            '"sliding window + shared KV cuts KV memory by 74%"',
            "; ".join(parts),
            f"this bundle's cache layout ({layout.source}; {capped}), {element} B per element; the first "
            f"context is the profiled one ({tokens} tokens); the runtime allocates the whole cache up front: "
            f"{format_bytes(layout.bytes)} for its {build.cache_length} positions",
        )
    )
    return rows


def find_fit(loaded: LoadedProfile) -> tuple[FitResult | None, str | None, str | None]:
    """`edgeship fit`'s fit.json beside the profile (the fit's unconstrained run), if it is of the same
    device and bundle: (fit, its path, why it is not shown)."""
    from edgeship.errors import InputError

    path = loaded.folder / FIT_FILE_NAME
    if not path.is_file():
        return None, None, None
    try:
        fit = load_fit(path)
    except InputError as exc:
        return None, str(path), str(exc)
    profile = loaded.profile
    if fit.bundle.get("sha256") != profile.bundle.get("sha256") or fit.device.get(
        "serial"
    ) != profile.device.get("serial"):
        return None, str(path), f"{path} is of another device or bundle than the profile beside it"
    return fit, str(path), None


def build_entry(loaded: LoadedProfile, extra_builds: dict[str, Path]) -> Entry:
    profile = loaded.profile
    build, build_dir, why = find_build(profile, extra_builds)
    sections = _sections(profile)
    chosen = _representative(profile)
    timeline = read_timeline_of(loaded.folder, profile, chosen) if chosen is not None else None
    rusages = _rusage(loaded, profile)
    faults = {
        "minor": Stat.of([f.get("minflt") for f in rusages]),
        "major": Stat.of([f.get("majflt") for f in rusages]),
    }
    fit, fit_path, fit_note = find_fit(loaded)
    versions = {}
    if build is not None:
        versions = {
            str(k): str(v) for k, v in ((build.manifest.get("export") or {}).get("versions") or {}).items()
        }
    return Entry(
        path=str(loaded.path),
        device=device_label(profile),
        bundle=bundle_label(profile),
        profile=profile,
        facts=_facts(profile),
        latency={name: _stat(profile, name) for name in LATENCY_ROWS},
        memory={name: _stat(profile, name) for name, _ in MEMORY_ROWS},
        faults=faults,
        sections=sections,
        timeline=timeline,
        timeline_iteration=chosen.index if chosen is not None and timeline is not None else None,
        state=_state(profile),
        cooldowns=_cooldowns(profile),
        runs=exit_summary(profile),
        check=_check(profile, build, why),
        claims=_claims(profile, build, sections),
        build_dir=build_dir,
        versions=versions,
        fit=fit,
        fit_path=fit_path,
        fit_note=fit_note,
    )


def _rusage(loaded: LoadedProfile, profile: Profile) -> list[dict[str, Any]]:
    from edgeship.profiles.report.timeline import rusage_of

    return [rusage_of(loaded.folder, it) for it in _ok_measured(profile)]


def build_report(loaded: Sequence[LoadedProfile], builds: Sequence[Path] = ()) -> Report:
    from edgeship.errors import InputError
    from edgeship.profiles.planner import read_build_facts

    extra = {}
    for build_dir in builds:
        try:
            extra[read_build_facts(build_dir).bundle_sha256] = Path(build_dir)
        except InputError as exc:
            raise InputError(f"--build {build_dir}: {exc}") from None
    entries = [build_entry(item, extra) for item in loaded]
    devices = list(dict.fromkeys(entry.device for entry in entries))
    bundles = list(dict.fromkeys(entry.bundle for entry in entries))
    notes = []
    measured = [e for e in entries if e.check.plan is not None and e.check.measured_pss]
    if measured:
        errors = [abs(e.check.remainder or 0) / (e.check.measured_pss or 1) for e in measured]
        notes.append(
            f"planner vs measured peak PSS: median |error| {100 * statistics.median(errors):.1f}% over "
            f"{len(measured)} profile(s)"
        )
    return Report(entries, devices, bundles, notes)
