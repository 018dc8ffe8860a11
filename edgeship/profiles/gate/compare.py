"""Pair baseline and current profiles per device kind × bundle line and decide every figure of each pair.

A pair is *compared* when runner and settings match, *incomparable* (with the reasons) when they do not;
a current profile with no baseline of its device kind and bundle line is reported as *no baseline*. When
no current profile finds a baseline at all, the inputs are wrong (other devices, other bundles): an
InputError, since a gate that compares nothing must not pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from edgeship.errors import InputError
from edgeship.profiles.collect import LoadedProfile
from edgeship.profiles.figures import FIGURES, MEMORY, figure_values
from edgeship.profiles.gate.decide import INCONCLUSIVE, REGRESSION, FigureVerdict, decide
from edgeship.profiles.gate.thresholds import Thresholds
from edgeship.profiles.identity import BundleLine, DeviceKind, bundle_label, device_label, differences
from edgeship.profiles.summary import exit_summary

COMPARED = "compared"
INCOMPARABLE = "incomparable"
NO_BASELINE = "no baseline"


@dataclass
class PairResult:
    device: str
    bundle: str
    status: str  # COMPARED | INCOMPARABLE | NO_BASELINE
    baseline: str | None  # path of the baseline profile.json
    current: str
    reasons: list[str] = field(default_factory=list)
    verdicts: list[FigureVerdict] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "bundle": self.bundle,
            "status": self.status,
            "baseline": self.baseline,
            "current": self.current,
            "reasons": self.reasons,
            "verdicts": [verdict.to_dict() for verdict in self.verdicts],
        }


@dataclass
class GateResult:
    pairs: list[PairResult]
    thresholds: Thresholds

    def verdicts(self) -> list[FigureVerdict]:
        return [verdict for pair in self.pairs for verdict in pair.verdicts]

    @property
    def regressions(self) -> int:
        return sum(1 for verdict in self.verdicts() if verdict.verdict == REGRESSION)

    @property
    def inconclusive(self) -> int:
        """Undecided figures plus pairs that could not be compared at all."""
        undecided = sum(1 for verdict in self.verdicts() if verdict.verdict == INCONCLUSIVE)
        return undecided + sum(1 for pair in self.pairs if pair.status != COMPARED)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "edgeship.gate/1",
            "outcome": self.outcome(strict=False),
            "regressions": self.regressions,
            "inconclusive": self.inconclusive,
            "thresholds": self.thresholds.to_dict(),
            "pairs": [pair.to_dict() for pair in self.pairs],
        }

    def outcome(self, strict: bool) -> str:
        if self.regressions:
            return "regression"
        if self.inconclusive:
            return "inconclusive" if strict else "pass with warnings"
        return "pass"


def _key(loaded: LoadedProfile) -> tuple[DeviceKind, BundleLine]:
    return DeviceKind.of(loaded.profile), BundleLine.of(loaded.profile)


def _match(current: LoadedProfile, candidates: list[LoadedProfile]) -> LoadedProfile:
    """Among baselines of the same kind, the same serial when there is one (two identical phones)."""
    serial = current.profile.device.get("serial")
    for candidate in candidates:
        if candidate.profile.device.get("serial") == serial:
            return candidate
    return candidates[0]


def failed_runs_verdict(baseline: LoadedProfile, current: LoadedProfile) -> FigureVerdict | None:
    """A run that crashed or was killed is a regression when the baseline's runs did not fail."""
    failed_now = len(current.profile.failed())
    failed_before = len(baseline.profile.failed())
    if failed_now <= failed_before:
        return None
    return FigureVerdict(
        "failed_runs", "failed runs", REGRESSION, float(failed_before), float(failed_now),
        len(baseline.profile.measured()), len(current.profile.measured()), None, None,
        "no more failed runs than the baseline", exit_summary(current.profile),
    )  # fmt: skip


def compare_profiles(
    baseline: Sequence[LoadedProfile], current: Sequence[LoadedProfile], thresholds: Thresholds
) -> GateResult:
    by_key: dict[tuple[DeviceKind, BundleLine], list[LoadedProfile]] = {}
    for loaded in baseline:
        by_key.setdefault(_key(loaded), []).append(loaded)
    pairs: list[PairResult] = []
    for loaded in current:
        profile = loaded.profile
        device, bundle = device_label(profile), bundle_label(profile)
        candidates = by_key.get(_key(loaded))
        if not candidates:
            kind, line = DeviceKind.of(profile).label(), BundleLine.of(profile).label()
            reason = f"no baseline profile of {kind} with {line}"
            pairs.append(PairResult(device, bundle, NO_BASELINE, None, str(loaded.path), [reason]))
            continue
        base = _match(loaded, candidates)
        reasons = differences(base.profile, profile)
        if reasons:
            pairs.append(PairResult(device, bundle, INCOMPARABLE, str(base.path), str(loaded.path), reasons))
            continue
        verdicts = []
        for figure in FIGURES:
            before, after = figure_values(base.profile, figure), figure_values(profile, figure)
            if not before and not after and figure.group == MEMORY:
                continue  # not a figure of this bundle or kernel (no PLE section, no PSS): nothing to gate
            verdicts.append(decide(figure, before, after, thresholds))
        failed = failed_runs_verdict(base, loaded)
        if failed is not None:
            verdicts.append(failed)
        pairs.append(PairResult(device, bundle, COMPARED, str(base.path), str(loaded.path), [], verdicts))
    if pairs and all(pair.status == NO_BASELINE for pair in pairs):
        kinds = sorted(
            {f"{DeviceKind.of(b.profile).label()} / {BundleLine.of(b.profile).label()}" for b in baseline}
        )
        raise InputError(
            f"the baseline has no profile of any current device and bundle ({pairs[0].reasons[0]}); "
            f"the baseline holds: {'; '.join(kinds)}"
        )
    return GateResult(pairs, thresholds)
