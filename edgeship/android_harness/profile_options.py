"""The options of a profile session: checked before any device is touched, recorded in profile.json config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgeship.errors import UsageError


@dataclass
class ProfileOptions:
    """What `edgeship profile` was asked to do (the CLI fills it; every field is recorded in config)."""

    prefill: int = 128
    decode: int = 128
    iterations: int = 3
    warmup: int = 1
    threads: int | None = None
    backend: str = "cpu"
    interval_ms: int = 50
    # None: the probe's adaptive smaps cadence (smaps reads ≤ 1% of wall time). A short run may then get a
    # single smaps sample; a fixed interval makes section residency reliable at the price of probe overhead.
    smaps_interval_ms: int | None = None
    timeout_s: float = 600.0
    cooldown_c: float | None = None
    cooldown_max_wait_s: float = 600.0
    runner: str | None = None  # explicit local runner binary (--runner)
    max_tokens: int | None = None  # None: prefill + decode, so the KV cache is no larger than the run needs

    def validate(self) -> None:
        if self.iterations < 1:
            raise UsageError("--iterations must be at least 1")
        if self.warmup < 0:
            raise UsageError("--warmup cannot be negative")
        if self.prefill < 1 or self.decode < 1:
            raise UsageError("--prefill and --decode must be at least 1 token")
        if self.interval_ms < 1:
            raise UsageError("--interval-ms must be at least 1")
        if self.smaps_interval_ms is not None and self.smaps_interval_ms < self.interval_ms:
            raise UsageError("--smaps-interval-ms cannot be shorter than --interval-ms")
        if self.timeout_s <= 0:
            raise UsageError("--timeout must be positive")
        if self.threads is not None and self.threads < 1:
            raise UsageError("--threads must be at least 1")
        if self.backend not in ("cpu", "gpu", "npu"):
            raise UsageError(f"--backend {self.backend!r} is not one of cpu, gpu, npu")

    @property
    def effective_max_tokens(self) -> int:
        return self.max_tokens if self.max_tokens is not None else self.prefill + self.decode

    def to_config(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "threads": self.threads,
            "prefill": self.prefill,
            "decode": self.decode,
            "iterations": self.iterations,
            "warmup": self.warmup,
            "interval_ms": self.interval_ms,
            "smaps_interval_ms": self.smaps_interval_ms,
            "max_tokens": self.effective_max_tokens,
            "timeout_s": self.timeout_s,
            "cooldown_c": self.cooldown_c,
        }
