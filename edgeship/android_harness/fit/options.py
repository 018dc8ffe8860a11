"""What `edgeship fit` was asked beyond a profile's run settings; recorded in fit.json ``config``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edgeship.errors import UsageError

if TYPE_CHECKING:
    from edgeship.android_harness.profile.options import ProfileOptions

METHODS = ("auto", "cgroup", "balloon")
MAX_STEPS = 16
# A step's time limit when none is given: this many times the unconstrained run's wall time, and at least
# MIN_STEP_TIMEOUT_S. A run that slow decodes at well under the knee's 90%; past it the runner is thrashing.
STEP_TIMEOUT_FACTOR = 6.0
MIN_STEP_TIMEOUT_S = 15.0


@dataclass
class FitOptions:
    method: str = field(
        default="auto",
        metadata={
            "help": "How memory is taken: the virtual device's own RAM (cgroup, through adb), a balloon "
            "process holding memory (phones; virtual devices too), or auto (cgroup where the device has it).",
            "choices": METHODS,
        },
    )
    context: int | None = field(
        default=None,
        metadata={"help": "Tokens of context each run allocates (its KV cache); default prefill + decode."},
    )
    max_steps: int = field(default=8, metadata={"help": "Constrained steps at most (bisection)."})
    threshold: float = field(
        default=0.9, metadata={"help": "The knee: decode tok/s at least this share of the unconstrained run."}
    )
    step_timeout_s: float | None = field(
        default=None,
        metadata={
            "help": "Seconds a run at a step may take before it counts as stalled (default: 6× the "
            "unconstrained run, at least 15).",
            "flag": "--step-timeout",
        },
    )
    step_warmup: int = field(
        default=1,
        metadata={"help": "Warm-up runs at each step (they leave the page cache as that memory allows)."},
    )
    reference_runs: int = field(
        default=1,
        metadata={
            "help": "Unconstrained runs right before each step, its decode compared with them (so the "
            "machine's or phone's drift, load or heat, is not taken for memory pressure); 0: compare with "
            "the first unconstrained runs."
        },
    )

    def validate(self, profile: ProfileOptions) -> None:
        if self.method not in METHODS:
            raise UsageError(f"--method {self.method!r} is not one of {', '.join(METHODS)}")
        if not 1 <= self.max_steps <= MAX_STEPS:
            raise UsageError(f"--max-steps must be 1 to {MAX_STEPS}, not {self.max_steps}")
        if not 0 < self.threshold < 1:
            raise UsageError(
                f"--threshold is a share of the unconstrained decode rate (0–1), not {self.threshold}"
            )
        if self.step_timeout_s is not None and self.step_timeout_s <= 0:
            raise UsageError("--step-timeout must be positive")
        if self.step_warmup < 0:
            raise UsageError("--step-warmup cannot be negative")
        if self.reference_runs < 0:
            raise UsageError("--reference-runs cannot be negative")
        if self.context is not None:
            if self.context < profile.prefill + profile.decode:
                raise UsageError(
                    f"--context {self.context} is shorter than --prefill + --decode "
                    f"({profile.prefill + profile.decode} tokens)"
                )
            if profile.max_tokens is not None and profile.max_tokens != self.context:
                raise UsageError("--context and --max-tokens both set the KV cache: give one")

    def apply_context(self, profile: ProfileOptions) -> None:
        """--context is the runs' KV cache size (the profile's --max-tokens)."""
        if self.context is not None:
            profile.max_tokens = self.context

    def to_config(self, step_timeout_s: float, resolution: int) -> dict[str, Any]:
        return {
            "method": self.method,
            "context": self.context,
            "max_steps": self.max_steps,
            "threshold": self.threshold,
            "step_timeout_s": step_timeout_s,
            "step_warmup": self.step_warmup,
            "reference_runs": self.reference_runs,
            "resolution": resolution,
        }
