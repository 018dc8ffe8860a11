"""edgeship.yaml → typed configuration.

Looked up as: the path in $EDGESHIP_CONFIG, else ./edgeship.yaml, else defaults. Example:

    adb_servers: ["127.0.0.1:5037", "lab-host-2:5037"]
    labels:
      flagship: ["R5CT1234", "127.0.0.1:40001"]
    runners:
      arm64-v8a: /opt/litert-lm/android_arm64/litert_lm_main
    recipes:
      mine: recipes/mine.yaml                      # a YAML recipe file (edgeship/quantize/recipes.py)
      ple4: {default: int8, sections: {tf_lite_per_layer_embedder: int4}}   # or the recipe inline
    device_root: /data/local/tmp/edgeship
    gate:                      # `edgeship gate` thresholds (edgeship/profiles/gate/thresholds.py)
      latency: {decode_tok_s: 5%}

``recipes`` names recipes for `export --recipe NAME` and `quantize --recipe NAME` (edgeship/quantize/
recipes.py reads them); ``gate`` holds the thresholds of `edgeship gate` (unknown keys are refused there).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edgeship.errors import UsageError

DEFAULT_DEVICE_ROOT = "/data/local/tmp/edgeship"
CONFIG_FILE_NAME = "edgeship.yaml"


@dataclass(frozen=True)
class AdbServer:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> AdbServer:
        host, sep, port = text.rpartition(":")
        if not sep:
            host, port = "127.0.0.1", text
        if not port.isdigit():
            raise UsageError(f"adb server {text!r} is not HOST:PORT")
        return cls(host or "127.0.0.1", int(port))

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def default_adb_server() -> AdbServer:
    """The local server, honouring ANDROID_ADB_SERVER_PORT / ADB_SERVER_SOCKET like adb itself."""
    socket_spec = os.environ.get("ADB_SERVER_SOCKET", "")
    if socket_spec.startswith("tcp:"):
        return AdbServer.parse(socket_spec[len("tcp:") :])
    port = os.environ.get("ANDROID_ADB_SERVER_PORT", "5037")
    host = os.environ.get("ANDROID_ADB_SERVER_HOST", "127.0.0.1")
    return AdbServer(host, int(port))


@dataclass
class Config:
    adb_servers: list[AdbServer] = field(default_factory=list)
    labels: dict[str, list[str]] = field(default_factory=dict)
    runners: dict[str, str] = field(default_factory=dict)
    # name -> YAML recipe file (relative to this file's folder) or an inline recipe mapping
    recipes: dict[str, str | dict[str, Any]] = field(default_factory=dict)
    device_root: str = DEFAULT_DEVICE_ROOT
    gate: dict[str, Any] = field(
        default_factory=dict
    )  # `edgeship gate` thresholds (profiles/gate/thresholds.py)
    source: Path | None = None

    def servers(self, extra: list[str] | tuple[str, ...] = ()) -> list[AdbServer]:
        """Configured servers plus --adb ones; the local default when none is named."""
        servers = list(self.adb_servers) + [AdbServer.parse(text) for text in extra]
        if not servers:
            servers = [default_adb_server()]
        unique: list[AdbServer] = []
        for server in servers:
            if server not in unique:
                unique.append(server)
        return unique


def load_config(path: str | Path | None = None) -> Config:
    if path is None:
        env_path = os.environ.get("EDGESHIP_CONFIG")
        if env_path:
            path = env_path
        elif Path(CONFIG_FILE_NAME).is_file():
            path = CONFIG_FILE_NAME
    if path is None:
        return Config()
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise UsageError(f"config file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"config file {path} is not valid YAML: {exc}".splitlines()[0]) from None
    if not isinstance(raw, dict):
        raise UsageError(f"config file {path} must hold a mapping at the top")
    known = {"adb_servers", "labels", "runners", "recipes", "device_root", "gate"}
    unknown = set(raw) - known
    if unknown:
        raise UsageError(f"config file {path}: unknown keys {sorted(unknown)} (known: {sorted(known)})")
    return Config(
        adb_servers=[AdbServer.parse(str(s)) for s in raw.get("adb_servers", [])],
        labels={str(k): [str(s) for s in v] for k, v in (raw.get("labels") or {}).items()},
        runners={str(k): str(v) for k, v in (raw.get("runners") or {}).items()},
        recipes=_recipes(raw.get("recipes"), path),
        device_root=str(raw.get("device_root", DEFAULT_DEVICE_ROOT)),
        gate=dict(raw.get("gate") or {}),
        source=path,
    )


def _recipes(raw: Any, path: Path) -> dict[str, str | dict[str, Any]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UsageError(f"config file {path}: 'recipes' must map names to recipe files or recipe mappings")
    recipes: dict[str, str | dict[str, Any]] = {}
    for name, value in raw.items():
        if not isinstance(value, str | dict):
            raise UsageError(
                f"config file {path}: recipes.{name} must be a recipe file path or a mapping, got {value!r}"
            )
        recipes[str(name)] = value
    return recipes
