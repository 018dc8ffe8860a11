"""The accuracy gate of `verify`: default thresholds per recipe, overrides, and the verdict.

Three figures are gated (llama.cpp's statistics, kl_stats.py): mean KLD, KLD p99.9 (the catastrophic tail a
mean averages away) and top-1 agreement. A recipe without defaults of its own (a YAML file) gets the tier of
its lowest-bit section: float, int8 or int4.

Where the defaults come from (BENCHMARKS.md, "verify: accuracy per preset"): Gemma 3 270M (the public
Q4_K_M GGUF dequantized to float32), exported float and quantized with each preset, 256 positions of the
built-in prompt set, BOS prepended:
- float measured mean 3.0e-11, p99.9 2.7e-10, top-1 100%: any real error is orders above; the gate is the
  issue's "identical weights" tier (mean ≤ 1e-3, top-1 ≥ 99.5%) with p99.9 ≤ 0.01.
- int8 (dynamic int8 weights and activations) measured mean 0.024–0.025, p99.9 0.145–0.363, top-1 93.4% ±
  1.6% and 94.5% ± 1.4% (two position plans), and decodes the same text as float: mean ≤ 0.05 (2×), p99.9
  ≤ 1.0, top-1 ≥ 90% (≥ 2σ below both).
  The 0.01 llama.cpp users quote for q8_0 (weights only, 32-value blocks) fails this working bundle.
- every int4 preset of that model is broken (mean 0.70–3.10, top-1 23–62%; the int4 bundle decodes
  "esesese…" in the LiteRT-LM engine too), so int4 thresholds are not loosened to what was measured: they
  keep llama.cpp's 4-bit quality level (IQ4_XS: 0.043 mean, 89.9% top-1): mean ≤ 0.05, top-1 ≥ 90%,
  p99.9 ≤ 2.0. ple4-main8 is int8 outside the PLE table and gets int8's defaults.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from edgeship.errors import UsageError


@dataclass(frozen=True)
class Thresholds:
    max_kl: float  # mean KLD must be ≤
    min_top1: float  # top-1 agreement (0..1) must be ≥
    max_kl_p999: float  # KLD p99.9 must be ≤
    source: str  # where the figures come from: "int8 default", "--max-kl", ...

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_kl": self.max_kl,
            "min_top1": self.min_top1,
            "max_kl_p999": self.max_kl_p999,
            "source": self.source,
        }


# recipe → (max mean KLD, min top-1, max p99.9 KLD); see the module docstring for where they come from.
DEFAULTS: dict[str, tuple[float, float, float]] = {
    "float": (1e-3, 0.995, 0.01),
    "int8": (0.05, 0.90, 1.0),
    "ple4-main8": (0.05, 0.90, 1.0),
    "int4": (0.05, 0.90, 2.0),
    "int4-b32": (0.05, 0.90, 2.0),
    "int4-b64": (0.05, 0.90, 2.0),
    "mixed48": (0.05, 0.90, 2.0),
}
_TIERS = {None: "float", 8: "int8", 4: "int4"}


def default_thresholds(recipe: str, lowest_bits: int | None) -> Thresholds:
    """The recipe's own defaults, else those of the tier of its lowest-bit section."""
    if recipe in DEFAULTS:
        return Thresholds(*DEFAULTS[recipe], source=f"{recipe} default")
    tier = _TIERS.get(lowest_bits, "int4" if (lowest_bits or 8) < 8 else "int8")
    return Thresholds(*DEFAULTS[tier], source=f"{tier} default (recipe {recipe}, lowest {lowest_bits} bits)")


def with_overrides(
    base: Thresholds, max_kl: float | None, min_top1: float | None, max_kl_p999: float | None
) -> Thresholds:
    """``base`` with the command-line overrides; out-of-range values are usage errors."""
    changed: dict[str, float] = {}
    for name, value, low, high in (
        ("max-kl", max_kl, 0.0, math.inf),
        ("min-top1", min_top1, 0.0, 1.0),
        ("max-kl-p999", max_kl_p999, 0.0, math.inf),
    ):
        if value is None:
            continue
        if not math.isfinite(value) or not low <= value <= high:
            bounds = "between 0 and 1 (a share, 0.9 = 90%)" if high == 1.0 else "a finite number ≥ 0"
            raise UsageError(f"--{name} must be {bounds}, got {value}")
        changed[name.replace("-", "_")] = value
    if not changed:
        return base
    named = ", ".join(f"--{k.replace('_', '-')}" for k in changed)
    return replace(base, **changed, source=f"{base.source}; overridden by {named}")


def judge(summary: dict[str, Any], thresholds: Thresholds) -> list[str]:
    """The thresholds ``summary`` misses, one line each (empty: pass)."""
    failures = []
    if summary.get("non_finite"):
        failures.append(f"{summary['non_finite']} position(s) gave non-finite logits")
        return failures
    kld = summary["kld"]
    if kld["mean"] > thresholds.max_kl:
        failures.append(f"mean KLD {kld['mean']:.6g} > {thresholds.max_kl:g} (max-kl)")
    if kld["p999"] > thresholds.max_kl_p999:
        failures.append(f"KLD p99.9 {kld['p999']:.6g} > {thresholds.max_kl_p999:g} (max-kl-p999)")
    top1 = summary["top1"]["agreement"]
    if top1 < thresholds.min_top1:
        failures.append(f"top-1 agreement {top1:.4f} < {thresholds.min_top1:g} (min-top1)")
    return failures
