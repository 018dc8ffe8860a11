"""Resident memory of a bundle under a runner, term by term, before any deploy.

    transformer weights   anonymous: the runtime repacks them (``transformer_anon_per_byte`` × section bytes)
                          + the share of the section that stays resident from the file
    embedder              file-backed: the share of the section the lookups keep resident
    PLE side table        file-backed and demand-paged: a lookup faults one page and the kernel maps its
                          fault-around window with it, so N distinct tokens touch ~N windows of the table
                          until windows repeat: windows × W × (1 − (1 − 1/windows)^N)
    other sections        metadata, tokenizer: their resident share
    KV cache              anonymous, every cache tensor of the graph allocated up front (planner/kv.py)
    runtime               the runner itself (interpreter, libraries, arenas), calibrated per runner

Everything but the runtime term is computed from the manifest; the constants come from calibration.yaml with
the measurement they were fitted on. The sum is the predicted peak PSS (bundle pages are private to the one
process that maps them, so their PSS is their RSS).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edgeship.profiles.planner.budget import Budget

if TYPE_CHECKING:
    from edgeship.exporter.manifest import Build
from edgeship.exporter.manifest import EMBEDDER_KIND, PLE_SECTION_KIND, PREFILL_DECODE_KIND
from edgeship.profiles.planner.calibration import Calibration
from edgeship.profiles.planner.kv import KvLayout, kv_layout
from edgeship.units import format_bytes, format_decimal_bytes

ROLE_BY_KIND = {PREFILL_DECODE_KIND: "transformer", EMBEDDER_KIND: "embedder", PLE_SECTION_KIND: "ple"}


def role_of(kind: str) -> str:
    return ROLE_BY_KIND.get(kind.split("#")[0], "other")


@dataclass(frozen=True)
class Term:
    name: str
    bytes: int
    kind: str  # "anonymous" | "file-backed"
    how: str  # the arithmetic, for the reader


@dataclass(frozen=True)
class Plan:
    bundle_sha256: str
    runner: str
    context: int  # cache positions the runtime allocates
    distinct_tokens: int
    terms: tuple[Term, ...]
    kv: KvLayout | None
    calibration: Calibration
    notes: tuple[str, ...] = ()
    budgets: tuple[Budget, ...] = field(default_factory=tuple)

    @property
    def total(self) -> int:
        return sum(term.bytes for term in self.terms)

    def verdict(self, budget: Budget) -> str:
        return fit_verdict(self.total, budget.usable)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "edgeship.plan/1",
            "bundle_sha256": self.bundle_sha256,
            "runner": self.runner,
            "context": self.context,
            "distinct_tokens": self.distinct_tokens,
            "terms": [term.__dict__ for term in self.terms],
            "total": self.total,
            "kv_layout": None if self.kv is None else {"source": self.kv.source, "bytes": self.kv.bytes},
            "calibration": {"runner": self.calibration.runner, "source": self.calibration.source},
            "notes": list(self.notes),
            "devices": [
                {
                    "name": b.name,
                    "ram_total": b.ram_total,
                    "usable": b.usable,
                    "available_now": b.available_now,
                    "headroom": b.usable - self.total,
                    "fits": self.total <= b.usable,
                    "verdict": self.verdict(b),
                    "rule": b.rule,
                }
                for b in self.budgets
            ],
        }


def fit_verdict(predicted: int, usable: int) -> str:
    """'fits with 1.2 GB headroom' / 'over by 300 MB' (decimal units, as phones are sold)."""
    margin = usable - predicted
    text = format_decimal_bytes(abs(margin))
    return f"fits with {text} headroom" if margin >= 0 else f"over by {text}"


@dataclass(frozen=True)
class Minimum:
    """The least available memory a run decodes at full speed in, as the planner predicts it."""

    bytes: int
    peak: int  # the predicted peak PSS (Plan.total)
    beyond_peak: int  # charged to the device beside the runner's PSS (calibration)
    unmapped_read: int  # bundle bytes the engine reads at init but does not keep mapped
    share: float  # of them, what must stay in the page cache (calibration)
    how: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "minimum": self.bytes,
            "peak": self.peak,
            "beyond_peak": self.beyond_peak,
            "unmapped_read": self.unmapped_read,
            "share": self.share,
            "how": self.how,
        }


def minimum_memory(plan: Plan, bundle_bytes: int) -> Minimum:
    """The peak is not the minimum. Beside the runner's PSS the device holds the probe, the shell and the
    kernel's own memory for them; and LiteRT-LM reads the whole bundle at init (after one ple-heavy run 144
    of its 153 MiB were in the page cache while the runner kept 30 MiB mapped). With less memory than the
    peak plus part of that read, the pages decoding needs next are reclaimed with the rest and come back
    from storage: the major faults below a fit curve's knee. Both are fitted on measured knees
    (benchmarks/fit_curve.py --calibrate); without them the minimum is the peak."""
    mapped = sum(term.bytes for term in plan.terms if term.kind == "file-backed")
    unmapped = max(0, bundle_bytes - mapped)
    fitted = plan.calibration.minimum
    if fitted is None:
        how = "the predicted peak PSS (no fit curve measured for this runner)"
        return Minimum(plan.total, plan.total, 0, unmapped, 0.0, how)
    read = int(unmapped * fitted.bundle_read_share)
    how = (
        f"the predicted peak PSS + {format_bytes(fitted.beyond_peak)} beside it + "
        f"{fitted.bundle_read_share:.0%} of the {format_bytes(unmapped)} the engine reads at init and does "
        "not keep mapped"
    )
    total = plan.total + fitted.beyond_peak + read
    return Minimum(total, plan.total, fitted.beyond_peak, unmapped, fitted.bundle_read_share, how)


def ple_resident(section_bytes: int, table_bytes: int, tokens: int, window: int, rest_share: float) -> int:
    """Resident bytes of the PLE section after ``tokens`` distinct lookups (uniformly spread rows)."""
    table = min(table_bytes or section_bytes, section_bytes)
    windows = max(1, math.ceil(table / window))
    touched = windows * (1.0 - (1.0 - 1.0 / windows) ** max(tokens, 0))
    resident_table = min(table, int(touched * window))
    return resident_table + int((section_bytes - table) * rest_share)


@dataclass(frozen=True)
class BuildFacts:
    """What the planner reads of a build (``exporter.manifest.Build``)."""

    bundle_sha256: str
    sections: tuple[tuple[str, int], ...]  # (kind, bytes), kinds made unique like profile.json does
    ple: dict[str, Any] | None
    cache_length: int
    manifest: dict[str, Any]  # the JSON as read: the KV layout (export.kv_cache) and attention facts
    manifest_sha256: str = ""

    @classmethod
    def from_build(cls, build: Build) -> BuildFacts:
        seen: dict[str, int] = {}
        sections = []
        for section in sorted(build.sections, key=lambda s: s.offset):
            seen[section.kind] = seen.get(section.kind, 0) + 1
            count = seen[section.kind]
            sections.append((section.kind if count == 1 else f"{section.kind}#{count}", section.bytes))
        ple = build.model.ple
        return cls(
            build.sha256,
            tuple(sections),
            None
            if ple is None
            else {"table_bytes": ple.table_bytes, "vocab": ple.vocab, "row_bytes": ple.row_bytes},
            int(build.export.cache_length or 0),
            dict(build.manifest),
            build.manifest_sha256,
        )


def plan_memory(
    build: BuildFacts,
    calibration: Calibration,
    *,
    distinct_tokens: int,
    budgets: tuple[Budget, ...] = (),
    notes: tuple[str, ...] = (),
) -> Plan:
    share = calibration.file_resident_share
    terms: list[Term] = []
    by_role: dict[str, list[tuple[str, int]]] = {}
    for kind, size in build.sections:
        by_role.setdefault(role_of(kind), []).append((kind, size))
    transformer = sum(size for _, size in by_role.get("transformer", []))
    if transformer:
        repacked = int(transformer * calibration.transformer_anon_per_byte)
        terms.append(
            Term(
                "transformer weights, repacked", repacked, "anonymous",
                f"{calibration.transformer_anon_per_byte:.2f} × {transformer} B section",
            )
        )  # fmt: skip
        mapped = int(transformer * share["transformer"])
        terms.append(
            Term(
                "transformer weights, mapped",
                mapped,
                "file-backed",
                f"{share['transformer']:.0%} of the section",
            )
        )
    embedder = sum(size for _, size in by_role.get("embedder", []))
    if embedder:
        terms.append(
            Term(
                "embedder",
                int(embedder * share["embedder"]),
                "file-backed",
                f"{share['embedder']:.0%} of the section",
            )
        )
    tokens = distinct_tokens
    for _kind, size in by_role.get("ple", []):
        table = int((build.ple or {}).get("table_bytes") or size)
        window = calibration.fault_around_bytes
        resident = ple_resident(size, table, tokens, window, share["ple"])
        how = (
            f"{tokens} distinct tokens × {window // 1024} KiB fault-around windows of the {table} B table "
            f"(repeats counted), + {share['ple']:.0%} of the {size - min(table, size)} B rest"
        )
        terms.append(Term(f"PLE side table ({tokens} distinct tokens)", resident, "file-backed", how))
    other = sum(size for _, size in by_role.get("other", []))
    if other:
        terms.append(
            Term("other sections", int(other * share["other"]), "file-backed", f"{share['other']:.0%}")
        )
    layout = kv_layout(build.manifest)
    if layout is not None and layout.layers:
        length = max(layer.length for layer in layout.layers)
        how = f"{len(layout.layers)} cache layers × {length} positions, allocated up front ({layout.source})"
        terms.append(Term("KV cache", layout.bytes, "anonymous", how))
    terms.append(
        Term(
            "runtime", calibration.overhead_pss, "mixed",
            f"{calibration.runner}, calibrated: {calibration.describe_source()}",
        )
    )  # fmt: skip
    return Plan(
        build.bundle_sha256, calibration.runner, build.cache_length, tokens, tuple(terms), layout,
        calibration, notes, budgets,
    )  # fmt: skip
