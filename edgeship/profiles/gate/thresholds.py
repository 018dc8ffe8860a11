"""Gate thresholds: defaults, edgeship.yaml's ``gate:`` key, a ``--thresholds`` YAML file — in that order.

    alpha: 0.05              # one-sided Mann-Whitney U level for latency figures
    min_runs: 3              # fewer measured runs on a side: inconclusive, whatever the numbers say
    latency:                 # the smallest change that matters (worse direction), per figure
      decode_tok_s: 5%
      prefill_tok_s: 5%
      ttft_s: 10%
      init_s: 10%
    memory:                  # near-deterministic: a change of the median beyond max(bytes, percent)
      peak_pss: {bytes: 16MiB, percent: 2%}
      peak_rss: {bytes: 16MiB, percent: 2%}
      ple_resident: {percent: 10%}

Any key not listed here is refused (a typo must not silently keep a default).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from edgeship.errors import UsageError
from edgeship.profiles.figures import FIGURES, LATENCY, MEMORY
from edgeship.profiles.quantities import parse_percent, parse_size
from edgeship.units import format_bytes

MIB = 1024 * 1024
LATENCY_NAMES = tuple(f.name for f in FIGURES if f.group == LATENCY)
MEMORY_NAMES = tuple(f.name for f in FIGURES if f.group == MEMORY)
TOP_KEYS = ("alpha", "min_runs", "latency", "memory")
MEMORY_KEYS = ("bytes", "percent")


@dataclass(frozen=True)
class MemoryThreshold:
    bytes: int  # absolute floor
    percent: float  # fraction of the baseline median

    def limit(self, baseline: float) -> float:
        return max(float(self.bytes), self.percent * abs(baseline))

    def describe(self) -> str:
        parts = []
        if self.bytes:
            parts.append(format_bytes(self.bytes))
        if self.percent:
            parts.append(f"{self.percent * 100:g}%")
        return f"max({', '.join(parts)})" if len(parts) > 1 else (parts[0] if parts else "any change")


@dataclass(frozen=True)
class Thresholds:
    alpha: float = 0.05
    min_runs: int = 3
    latency: dict[str, float] = field(
        default_factory=lambda: {"decode_tok_s": 0.05, "prefill_tok_s": 0.05, "ttft_s": 0.10, "init_s": 0.10}
    )
    memory: dict[str, MemoryThreshold] = field(
        default_factory=lambda: {
            "peak_pss": MemoryThreshold(16 * MIB, 0.02),
            "peak_rss": MemoryThreshold(16 * MIB, 0.02),
            "ple_resident": MemoryThreshold(0, 0.10),
        }
    )
    sources: tuple[str, ...] = ("defaults",)

    def to_dict(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "min_runs": self.min_runs,
            "latency": {name: value for name, value in self.latency.items()},
            "memory": {name: {"bytes": t.bytes, "percent": t.percent} for name, t in self.memory.items()},
            "sources": list(self.sources),
        }


def apply_overrides(base: Thresholds, raw: Any, source: str) -> Thresholds:
    """``base`` with the values of one YAML mapping; UsageError for unknown keys or bad values."""
    if raw is None:
        return base
    if not isinstance(raw, dict):
        raise UsageError(f"{source}: gate thresholds must be a mapping with keys {list(TOP_KEYS)}")
    _refuse_unknown(raw, TOP_KEYS, source)
    alpha = base.alpha
    if "alpha" in raw:
        alpha = _number(raw["alpha"], f"{source}: alpha")
        if not 0 < alpha < 1:
            raise UsageError(f"{source}: alpha must be between 0 and 1, not {raw['alpha']!r}")
    min_runs = base.min_runs
    if "min_runs" in raw:
        min_runs = int(_number(raw["min_runs"], f"{source}: min_runs"))
        if min_runs < 1:
            raise UsageError(f"{source}: min_runs must be at least 1")
    latency = dict(base.latency)
    for name, value in _mapping(raw.get("latency"), LATENCY_NAMES, f"{source}: latency").items():
        latency[name] = parse_percent(value, f"{source}: latency.{name}")
    memory = dict(base.memory)
    for name, value in _mapping(raw.get("memory"), MEMORY_NAMES, f"{source}: memory").items():
        where = f"{source}: memory.{name}"
        if not isinstance(value, dict):
            raise UsageError(f"{where} must be a mapping like {{bytes: 16MiB, percent: 2%}}")
        _refuse_unknown(value, MEMORY_KEYS, where)
        old = memory[name]
        memory[name] = MemoryThreshold(
            parse_size(value["bytes"], f"{where}.bytes") if "bytes" in value else old.bytes,
            parse_percent(value["percent"], f"{where}.percent") if "percent" in value else old.percent,
        )
    return replace(
        base, alpha=alpha, min_runs=min_runs, latency=latency, memory=memory, sources=(*base.sources, source)
    )


def load_thresholds(config_gate: dict[str, Any] | None, path: Path | None) -> Thresholds:
    """Defaults, then edgeship.yaml's ``gate:`` mapping, then the file given with --thresholds."""
    thresholds = Thresholds()
    if config_gate:
        thresholds = apply_overrides(thresholds, config_gate, "edgeship.yaml gate")
    if path is not None:
        try:
            raw = yaml.safe_load(Path(path).read_text())
        except FileNotFoundError:
            raise UsageError(f"thresholds file {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"thresholds file {path} cannot be read: {exc}") from None
        except yaml.YAMLError as exc:
            raise UsageError(
                f"thresholds file {path} is not valid YAML: {str(exc).splitlines()[0]}"
            ) from None
        thresholds = apply_overrides(thresholds, raw, str(path))
    return thresholds


def _refuse_unknown(raw: dict[str, Any], known: tuple[str, ...], where: str) -> None:
    unknown = sorted(str(key) for key in raw if key not in known)
    if unknown:
        raise UsageError(f"{where}: unknown keys {unknown} (known: {list(known)})")


def _mapping(value: Any, known: tuple[str, ...], where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UsageError(f"{where} must be a mapping with keys among {list(known)}")
    _refuse_unknown(value, known, where)
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UsageError(f"{where} must be a number, not {value!r}")
    return float(value)
