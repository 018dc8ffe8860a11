"""The report's figures as JSON (``edgeship.report/1``) for dashboards and scripts.

Documented in docs/contracts.md; machine-checkable in report.schema.json beside this file.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from edgeship.profiles.report.model import Entry, Report, Stat

REPORT_SCHEMA = "edgeship.report/1"
JSON_SCHEMA_FILE = Path(__file__).with_name("report.schema.json")


def _stat(stat: Stat) -> dict[str, Any]:
    return asdict(stat)


def _entry(entry: Entry) -> dict[str, Any]:
    profile = entry.profile
    check = entry.check
    plan = check.plan
    return {
        "profile": entry.path,
        "device": {
            key: profile.device.get(key)
            for key in ("serial", "model", "manufacturer", "soc", "abi", "sdk", "release", "ram_total")
        },
        "bundle": {
            "sha256": profile.bundle.get("sha256"),
            "arch": profile.bundle.get("arch"),
            "recipe": profile.bundle.get("recipe"),
            "bytes": profile.bundle.get("bytes"),
            "build_dir": entry.build_dir,
        },
        "runner": {key: profile.runner.get(key) for key in ("name", "version", "sha256", "ttft_definition")},
        "probe": {key: profile.probe.get(key) for key in ("version", "sha256")},
        "versions": entry.versions,
        "config": profile.config,
        "runs": entry.runs,
        "latency": {name: _stat(stat) for name, stat in entry.latency.items()},
        "memory": {name: _stat(stat) for name, stat in entry.memory.items()},
        "faults": {name: _stat(stat) for name, stat in entry.faults.items()},
        "sections": [
            {"kind": row.kind, "bytes": row.bytes, "resident_peak": _stat(row.resident), "share": row.share}
            for row in entry.sections
        ],
        "timeline": None
        if entry.timeline is None
        else {
            "iteration": entry.timeline_iteration,
            "samples": len(entry.timeline.t_s),
            "phases": [{"name": n, "start_s": a, "end_s": b} for n, a, b in entry.timeline.phases],
            "phase_note": entry.timeline.phase_note,
        },
        "state": [{"what": what, "before": before, "after": after} for what, before, after in entry.state],
        "cooldowns": entry.cooldowns,
        "plan": {
            "predicted_pss": plan.total if plan else None,
            "terms": [{"name": t.name, "bytes": t.bytes, "kind": t.kind, "how": t.how} for t in plan.terms]
            if plan
            else [],
            "calibration": plan.calibration.runner if plan else None,
            "measured_pss": check.measured_pss,
            "remainder": check.remainder,
            "verdict": check.verdict,
            "usable_ram": check.budget.usable if check.budget else None,
            "note": check.note,
        },
        "claims": [asdict(claim) for claim in entry.claims],
        "fit": _fit(entry),
    }


def _fit(entry: Entry) -> dict[str, Any] | None:
    """`edgeship fit`'s findings beside the profile, and its curve (one point per measured step)."""
    fit = entry.fit
    if fit is None:
        return None
    return {
        "path": entry.fit_path,
        "method": fit.method,
        "state": fit.state,
        "verdict": fit.verdict,
        "knee": fit.knee,
        "kill": fit.kill,
        "planner": fit.planner,
        "curve": [
            {
                "step": step.index,
                "available": step.available,
                "target_available": step.target_available,
                "outcome": step.outcome,
                "decode_ratio": step.decode_ratio,
                **asdict(step.figures),
            }
            for step in fit.curve()
        ],
    }


def report_json(report: Report) -> dict[str, Any]:
    return {
        "schema": REPORT_SCHEMA,
        "devices": report.devices,
        "bundles": report.bundles,
        "notes": report.notes,
        "matrix": [
            {
                "device": device,
                "bundle": bundle,
                "decode_tok_s": entry.latency["decode_tok_s"].median,
                "peak_pss": entry.memory["peak_pss"].median,
                "ple_resident": next(
                    (
                        row.resident.median
                        for row in entry.sections
                        if row.kind.endswith("per_layer_embedder")
                    ),
                    None,
                ),
            }
            for device in report.devices
            for bundle in report.bundles
            if (entry := report.cell(device, bundle)) is not None
        ],
        "entries": [_entry(entry) for entry in report.entries],
    }
