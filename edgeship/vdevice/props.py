"""Device profiles (YAML) and the Android system properties a virtual device answers with.

Built-in profiles live next to this file in ``profiles/``; users add their own in
``$XDG_CONFIG_HOME/edgeship/vdevice-profiles/`` (default ``~/.config/...``) or pass a path to a YAML file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edgeship.errors import InputError, UsageError
from edgeship.vdevice.auth import AUTH_MODES

BUILTIN_PROFILE_DIR = Path(__file__).parent / "profiles"
DEFAULT_PROFILE = "vflagship"

_REQUIRED = ("model",)
_KNOWN = {
    "name",
    "description",
    "model",
    "manufacturer",
    "device",
    "product",
    "soc_manufacturer",
    "soc_model",
    "board_platform",
    "abi",
    "sdk",
    "release",
    "ram_bytes",
    "props",
    "auth",
}


def user_profile_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "edgeship" / "vdevice-profiles"


@dataclass(frozen=True)
class DeviceProfile:
    """What a virtual device claims to be."""

    name: str
    model: str
    manufacturer: str = "Edgeship"
    device: str = "vdevice"
    product: str = "vdevice_x86_64"
    soc_manufacturer: str = "Edgeship"
    soc_model: str = "VSoC"
    board_platform: str = "vsoc"
    abi: str = "x86_64"
    sdk: int = 35
    release: str = "15"
    ram_bytes: int = 8 * 1024**3
    description: str = ""
    # adb authorization: "none" (ro.adb.secure=0), "deny" or "allow" (see edgeship.vdevice.auth).
    auth: str = "none"
    props: dict[str, str] = field(default_factory=dict)
    source: str = ""

    def abilist(self) -> list[str]:
        # What a real device of each ABI lists, most preferred first.
        return {
            "x86_64": ["x86_64", "x86"],
            "arm64-v8a": ["arm64-v8a", "armeabi-v7a", "armeabi"],
            "x86": ["x86"],
            "armeabi-v7a": ["armeabi-v7a", "armeabi"],
        }.get(self.abi, [self.abi])

    def system_properties(self, serialno: str) -> dict[str, str]:
        """Every property ``getprop`` answers, sorted like Android lists them."""
        abis = self.abilist()
        abis64 = [a for a in abis if a in ("x86_64", "arm64-v8a")]
        abis32 = [a for a in abis if a not in abis64]
        brand = re.sub(r"[^a-z0-9]+", "", self.manufacturer.lower()) or "edgeship"
        fingerprint = (
            f"{brand}/{self.product}/{self.device}:{self.release}/VD1A.{self.sdk}/1:userdebug/test-keys"
        )
        props = {
            "ro.product.model": self.model,
            "ro.product.manufacturer": self.manufacturer,
            "ro.product.brand": brand,
            "ro.product.device": self.device,
            "ro.product.name": self.product,
            "ro.product.board": self.board_platform,
            "ro.soc.manufacturer": self.soc_manufacturer,
            "ro.soc.model": self.soc_model,
            "ro.board.platform": self.board_platform,
            "ro.hardware": self.board_platform,
            "ro.product.cpu.abi": self.abi,
            "ro.product.cpu.abilist": ",".join(abis),
            "ro.product.cpu.abilist64": ",".join(abis64),
            "ro.product.cpu.abilist32": ",".join(abis32),
            "ro.build.version.sdk": str(self.sdk),
            "ro.build.version.release": self.release,
            "ro.build.version.release_or_codename": self.release,
            "ro.build.type": "userdebug",
            "ro.build.tags": "test-keys",
            "ro.build.fingerprint": fingerprint,
            "ro.serialno": serialno,
            "ro.boot.serialno": serialno,
            "ro.adb.secure": "0",
            "ro.secure": "0",
            "ro.debuggable": "1",
            "ro.kernel.qemu": "0",
            "sys.boot_completed": "1",
            "dev.bootcomplete": "1",
            "init.svc.adbd": "running",
            "persist.sys.timezone": "UTC",
            "ro.edgeship.virtual": "1",
            "ro.edgeship.profile": self.name,
            "ro.edgeship.ram_bytes": str(self.ram_bytes),
        }
        props.update({str(k): str(v) for k, v in self.props.items()})
        return dict(sorted(props.items()))

    def banner_properties(self) -> dict[str, str]:
        return {
            "ro.product.name": self.product,
            "ro.product.model": self.model,
            "ro.product.device": self.device,
        }


def _from_mapping(raw: Any, source: str, fallback_name: str) -> DeviceProfile:
    if not isinstance(raw, dict):
        raise InputError(f"device profile {source} must be a YAML mapping")
    unknown = set(raw) - _KNOWN
    if unknown:
        raise InputError(f"device profile {source}: unknown keys {sorted(unknown)} (known: {sorted(_KNOWN)})")
    missing = [key for key in _REQUIRED if not raw.get(key)]
    if missing:
        raise InputError(f"device profile {source}: missing {', '.join(missing)}")
    values = dict(raw)
    values["name"] = str(values.get("name") or fallback_name)
    props = values.pop("props", None) or {}
    if not isinstance(props, dict):
        raise InputError(f"device profile {source}: 'props' must be a mapping of property names to values")
    try:
        for key in ("sdk", "ram_bytes"):
            if key in values:
                values[key] = int(values[key])
    except (TypeError, ValueError):
        raise InputError(f"device profile {source}: sdk and ram_bytes must be integers") from None
    for key in list(values):
        if key not in ("sdk", "ram_bytes", "props"):
            values[key] = str(values[key])
    if values.get("auth", "none") not in AUTH_MODES:
        raise InputError(f"device profile {source}: 'auth' must be one of {', '.join(AUTH_MODES)}")
    return DeviceProfile(**values, props={str(k): _prop_text(v) for k, v in props.items()}, source=source)


def _prop_text(value: Any) -> str:
    # YAML reads `false` as a bool; Android properties spell it "false", not Python's "False".
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def load_profile_file(path: str | Path) -> DeviceProfile:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InputError(f"device profile {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise InputError(f"device profile {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    return _from_mapping(raw, str(path), path.stem)


def _profile_dirs() -> list[Path]:
    # User profiles first, so a user can shadow a built-in name.
    return [user_profile_dir(), BUILTIN_PROFILE_DIR]


def load_profile(name_or_path: str | Path | DeviceProfile = DEFAULT_PROFILE) -> DeviceProfile:
    """A profile by built-in/user name (``vflagship``) or by the path of a YAML file."""
    if isinstance(name_or_path, DeviceProfile):
        return name_or_path
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or os.sep in text or Path(text).is_file():
        return load_profile_file(text)
    for folder in _profile_dirs():
        for suffix in (".yaml", ".yml"):
            candidate = folder / f"{text}{suffix}"
            if candidate.is_file():
                return load_profile_file(candidate)
    known = ", ".join(profile.name for profile in list_profiles())
    raise UsageError(f"unknown device profile {text!r} (known: {known}; or pass a path to a .yaml file)")


def list_profiles() -> list[DeviceProfile]:
    """Every profile by name: user ones, then the built-ins they do not shadow."""
    found: dict[str, DeviceProfile] = {}
    for folder in _profile_dirs():
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.y*ml")):
            try:
                profile = load_profile_file(path)
            except InputError:
                continue  # a broken user file must not hide the others; loading it by name reports it
            found.setdefault(path.stem, profile)
    return [found[name] for name in sorted(found)]
