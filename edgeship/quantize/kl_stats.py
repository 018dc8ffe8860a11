"""llama.cpp's KL-divergence statistics (`llama-perplexity --kl-divergence`), per position and aggregated.

Definitions (same names as llama.cpp, tools/perplexity/perplexity.cpp), P the reference, Q the bundle:
- KLD = Σ_v P(v) · (log P(v) − log Q(v)) over the whole vocabulary, in nats. (llama.cpp stores the base
  log-probs as uint16 and drops entries with log P < −16; here both distributions are full float.)
- Same top p: the share of positions where argmax Q = argmax P, ± sqrt(p(1 − p)/(n − 1)).
- Δp: Q(t) − P(t) for t the reference's top token (llama.cpp uses the actual next token of the text; the
  reference's top token measures the bundle where the reference is most sure), summarised as RMS.
- Mean KLD ± σ/√n; median, p99 and p99.9 by linear interpolation between ranks (numpy's default); max.

Softmax in float64: one position of a 262 144-token vocabulary is 2 MiB of work, not worth float32's error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PositionScore:
    prompt: str
    position: int
    bucket: str
    kld: float  # inf when the bundle's logits were not finite
    same_top: bool
    delta_p: float  # nan when the bundle's logits were not finite

    def to_dict(self) -> dict[str, Any]:
        finite = math.isfinite(self.kld)
        return {
            "prompt": self.prompt,
            "position": self.position,
            "bucket": self.bucket,
            "kld": self.kld if finite else None,
            "same_top": self.same_top,
            "delta_p": self.delta_p if finite else None,
        }


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    x = x - x.max()
    return x - math.log(np.exp(x).sum())


def score_position(
    reference: np.ndarray, bundle: np.ndarray, prompt: str, position: int, bucket: str
) -> PositionScore:
    log_p = _log_softmax(reference)
    top = int(np.argmax(log_p))
    if not np.all(np.isfinite(bundle)):
        return PositionScore(prompt, position, bucket, math.inf, False, math.nan)
    log_q = _log_softmax(bundle)
    p = np.exp(log_p)
    kld = max(0.0, float(np.dot(p, log_p - log_q)))  # ≥ 0 up to rounding
    return PositionScore(
        prompt, position, bucket, kld, int(np.argmax(log_q)) == top, float(math.exp(log_q[top]) - p[top])
    )


def summarize(scores: Sequence[PositionScore]) -> dict[str, Any]:
    """Aggregates over ``scores``; KLD figures are null when a position's logits were not finite."""
    n = len(scores)
    if n == 0:
        return {"positions": 0}
    kld = np.array([s.kld for s in scores], np.float64)
    same = np.array([s.same_top for s in scores], np.float64)
    non_finite = int(np.count_nonzero(~np.isfinite(kld)))
    top1 = float(same.mean())
    out: dict[str, Any] = {
        "positions": n,
        "non_finite": non_finite,
        "top1": {"agreement": top1, "stderr": math.sqrt(top1 * (1 - top1) / (n - 1)) if n > 1 else None},
    }
    if non_finite:
        out["kld"] = None
        out["delta_p_rms"] = None
        return out
    delta = np.array([s.delta_p for s in scores], np.float64)
    out["kld"] = {
        "mean": float(kld.mean()),
        "stderr": float(kld.std(ddof=1) / math.sqrt(n)) if n > 1 else None,
        "median": float(np.median(kld)),
        "p99": float(np.percentile(kld, 99)),
        "p999": float(np.percentile(kld, 99.9)),
        "max": float(kld.max()),
    }
    out["delta_p_rms"] = float(math.sqrt(float(np.mean(delta**2))))
    return out
