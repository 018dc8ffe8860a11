"""Types shared by every runner adapter: what to run (RunConfig) and what a runner said (RunnerMetrics)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from edgeship.errors import UsageError

BACKENDS = ("cpu", "gpu", "npu")


@dataclass
class RunConfig:
    """One benchmark invocation of a runner. ``threads``/``max_tokens`` None = the runner's default."""

    backend: str = "cpu"
    threads: int | None = None
    prefill: int = 256
    decode: int = 256
    iterations: int = 1
    max_tokens: int | None = None
    disable_weight_cache: bool = False  # LiteRT-LM runners: no XNNPACK weight cache file (--disable_cache)
    log_sink_path: str | None = None
    warmup: int = 1  # benchmark_model only: warm-up runs inside the process
    signature: str | None = None  # benchmark_model only: signature to run (e.g. "decode")
    extra_args: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise UsageError(f"backend {self.backend!r} is not one of {', '.join(BACKENDS)}")
        for name in ("prefill", "decode", "iterations"):
            if int(getattr(self, name)) < 1:
                raise UsageError(f"--{name} must be at least 1 (got {getattr(self, name)})")
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"--threads must be at least 1 (got {self.threads})")


@dataclass
class RunnerMetrics:
    """What a runner reported about itself. None = the runner did not say (never a made-up 0).

    ``peak_mem_bytes`` is the runner's own claim (LiteRT-LM: getrusage ru_maxrss), not the probe's figure.
    """

    init_s: float | None = None
    ttft_s: float | None = None
    prefill_tokens: int | None = None
    prefill_tok_s: float | None = None
    decode_tokens: int | None = None
    decode_tok_s: float | None = None
    peak_mem_bytes: int | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def found(self) -> bool:
        """Whether the output held any benchmark figure at all."""
        return any(
            value is not None
            for value in (
                self.init_s,
                self.ttft_s,
                self.prefill_tok_s,
                self.decode_tok_s,
                self.peak_mem_bytes,
            )
        )


class RunnerAdapter(Protocol):
    """How edgeship drives one kind of runner binary and reads its output."""

    name: str
    ttft_definition: str

    def build_command(self, model_path: str, cfg: RunConfig, runner_path: str | None = None) -> list[str]:
        """The runner's argv: its flags, preceded by ``runner_path`` when given."""
        ...

    def parse(self, stdout: str, stderr: str = "", log_sink: str | None = None) -> RunnerMetrics:
        """Read the runner's output (and the text of its log-sink file, when it wrote one)."""
        ...
