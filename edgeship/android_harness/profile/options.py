"""The options of a profile session: checked before any device is touched, recorded in profile.json config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edgeship.android_harness.runners.base import BACKENDS
from edgeship.errors import UsageError

if TYPE_CHECKING:
    from edgeship.exporter.manifest import Build

# The XNNPACK weight cache LiteRT-LM keeps beside the bundle (<bundle>_<mtime>_<size>.xnnpack_cache): its
# first run packs the weights into anonymous memory and writes the file (272 MB for Gemma 3 270M int8), later
# runs map the file instead, so a first launch and the ones after it differ in init time and anonymous memory.
WEIGHT_CACHE_KEEP = "keep"  # LiteRT-LM's own behaviour, as an app that has run once
WEIGHT_CACHE_COLD = "cold"  # removed before each run: every run is a first launch, and writes it again
WEIGHT_CACHE_OFF = "off"  # --disable_cache (cache dir ":nocache"): packed in anonymous memory, no file
WEIGHT_CACHE_MODES = (WEIGHT_CACHE_KEEP, WEIGHT_CACHE_COLD, WEIGHT_CACHE_OFF)


@dataclass
class ProfileOptions:
    """What `edgeship profile` was asked to do; every field is recorded in profile.json ``config``.

    The CLI's options are generated from these fields (commands/options.py ``options_from``): a field with
    a "help" in its metadata is an option, with this default and these choices.
    """

    prefill: int = field(default=128, metadata={"help": "Prefill tokens per run."})
    decode: int = field(default=128, metadata={"help": "Decode tokens per run."})
    iterations: int = field(default=3, metadata={"help": "Measured runs per device."})
    warmup: int = field(default=1, metadata={"help": "Warm-up runs per device (not in the summary)."})
    threads: int | None = field(
        default=None, metadata={"help": "CPU threads for the runner (runner default if unset)."}
    )
    backend: str = field(default="cpu", metadata={"help": "Runner backend.", "choices": BACKENDS})
    interval_ms: int = field(default=50, metadata={"help": "Probe sampling interval."})
    # None: the probe's adaptive smaps cadence (smaps reads ≤ 1% of wall time). A short run may then get a
    # single smaps sample; a fixed interval makes section residency reliable at the price of probe overhead.
    smaps_interval_ms: int | None = field(
        default=None,
        metadata={"help": "Fixed smaps (section residency) interval; default adaptive, ≤1% of wall time."},
    )
    timeout_s: float = field(
        default=600.0, metadata={"help": "Seconds before a run is killed.", "flag": "--timeout"}
    )
    cooldown_c: float | None = field(
        default=None, metadata={"help": "Wait until the hottest zone is below T °C."}
    )
    cooldown_max_wait_s: float = 600.0
    runner: str | None = field(  # a local runner binary or folder, or a built-in runner's name
        default=None,
        metadata={
            "help": "Runner binary (or its folder) to use, or an x86_64 runner of edgeship's: `native` (C on "
            "liblitert-lm.so, the x86_64 default) or `host-python` (Python on litert-lm-api). "
            "Else edgeship.yaml `runners`.",
            "metavar": "PATH|native|host-python",
        },
    )
    weight_cache: str = field(
        default=WEIGHT_CACHE_KEEP,
        metadata={
            "help": "XNNPACK weight cache beside the bundle: keep (LiteRT-LM's: made by the first run, "
            "mapped by later ones), cold (removed before every run), off (--disable_cache: none).",
            "choices": WEIGHT_CACHE_MODES,
        },
    )
    # None: prefill + decode, so the KV cache is no larger than the run needs.
    max_tokens: int | None = field(
        default=None, metadata={"help": "KV cache size (default: prefill + decode)."}
    )

    # Not a `profile` option: a fit's balloon steps set it (profile/run.py probe_shell_command says why).
    oom_score_adj: int | None = None

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
        if self.backend not in BACKENDS:
            raise UsageError(f"--backend {self.backend!r} is not one of {', '.join(BACKENDS)}")

    def validate_for(self, build: Build) -> None:
        """The runs must fit the bundle's KV cache (``export.cache_length``)."""
        cache_length = build.export.cache_length
        if cache_length and self.effective_max_tokens > cache_length:
            raise UsageError(
                f"--prefill + --decode = {self.effective_max_tokens} tokens exceeds the bundle's cache "
                f"length {cache_length}; lower them or re-export with --cache-length"
            )

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
            "weight_cache": self.weight_cache,
            "timeout_s": self.timeout_s,
            "cooldown_c": self.cooldown_c,
            **({} if self.oom_score_adj is None else {"oom_score_adj": self.oom_score_adj}),
        }
