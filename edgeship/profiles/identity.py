"""What makes two profiles comparable: the same kind of device, the same bundle line, runner and settings.

A CI gate compares a new build with last week's on "the same phone", but a virtual device gets a new serial
(127.0.0.1:PORT) every run and a rebuild gets a new bundle sha256. So profiles pair on the device's kind
(model, maker, SoC, ABI, SDK) and on the bundle's line (architecture, recipe, PLE shape, section kinds);
the runner (name and version) and the run settings must then match too, or the pair is reported as
incomparable instead of compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgeship.profiles.schema import Profile

# Settings that change what a figure means; sampling cadence (interval_ms, smaps) does not.
CONFIG_KEYS_THAT_MATTER = ("backend", "threads", "prefill", "decode", "max_tokens", "weight_cache")
# A profile written before a setting existed ran with what is now its default.
CONFIG_DEFAULTS = {"weight_cache": "keep"}


def setting(profile: Profile, key: str) -> Any:
    return profile.config.get(key, CONFIG_DEFAULTS.get(key))


@dataclass(frozen=True)
class DeviceKind:
    model: str | None
    manufacturer: str | None
    soc: str | None
    abi: str | None
    sdk: int | None

    @classmethod
    def of(cls, profile: Profile) -> DeviceKind:
        device = profile.device
        return cls(
            device.get("model"),
            device.get("manufacturer"),
            device.get("soc"),
            device.get("abi"),
            device.get("sdk"),
        )

    def label(self) -> str:
        return self.model or self.soc or "unknown device"


@dataclass(frozen=True)
class BundleLine:
    arch: str | None
    recipe: str | None
    ple: tuple[int | None, ...] | None
    kinds: tuple[str, ...]

    @classmethod
    def of(cls, profile: Profile) -> BundleLine:
        bundle = profile.bundle
        ple = bundle.get("ple")
        shape = (ple.get("vocab"), ple.get("layers"), ple.get("dim"), ple.get("bits")) if ple else None
        kinds = tuple(sorted(str(s.get("kind")) for s in bundle.get("sections") or []))
        return cls(bundle.get("arch"), bundle.get("recipe"), shape, kinds)

    def label(self) -> str:
        parts = [self.arch or "bundle", self.recipe or "?"]
        if self.ple:
            vocab, layers, dim, _bits = self.ple
            parts.append(f"PLE {vocab}×{layers}×{dim}")
        return " ".join(str(part) for part in parts)


def runner_identity(profile: Profile) -> tuple[Any, Any]:
    return (profile.runner.get("name"), profile.runner.get("version"))


def config_identity(profile: Profile) -> tuple[Any, ...]:
    return tuple(setting(profile, key) for key in CONFIG_KEYS_THAT_MATTER)


def device_label(profile: Profile) -> str:
    """'Virtual Flagship 12G (127.0.0.1:40001)'."""
    kind = DeviceKind.of(profile).label()
    return f"{kind} ({profile.device.get('serial')})"


def bundle_label(profile: Profile) -> str:
    """'gemma4 int8 d0f64e1ec3e7'."""
    bundle = profile.bundle
    return (
        f"{bundle.get('arch') or 'bundle'} {bundle.get('recipe') or '?'} {str(bundle.get('sha256', ''))[:12]}"
    )


def differences(baseline: Profile, current: Profile) -> list[str]:
    """Why two profiles of one device kind and bundle line cannot be compared (empty: they can)."""
    reasons = []
    if runner_identity(baseline) != runner_identity(current):
        reasons.append("runner {} {} vs {} {}".format(*runner_identity(baseline), *runner_identity(current)))
    for key in CONFIG_KEYS_THAT_MATTER:
        before, now = setting(baseline, key), setting(current, key)
        if before != now:
            reasons.append(f"{key} {before} vs {now}")
    return reasons
