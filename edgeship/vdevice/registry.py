"""Running virtual devices: one state folder per device under ``$EDGESHIP_HOME/vdevices/<name>/``.

Each folder holds ``state.json`` (pid, port, serial, profile, sandbox root, adb server), ``daemon.log`` and,
unless ``--root`` named another place, the sandbox itself in ``root/``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from edgeship.errors import DeviceError

STATE_FILE = "state.json"
LOG_FILE = "daemon.log"
DAEMON_MODULE = "edgeship.vdevice.daemon"


def edgeship_home() -> Path:
    configured = os.environ.get("EDGESHIP_HOME")
    return Path(configured) if configured else Path.home() / ".local" / "state" / "edgeship"


def vdevices_dir() -> Path:
    return edgeship_home() / "vdevices"


def state_dir(name: str) -> Path:
    return vdevices_dir() / name


@dataclass
class DeviceRecord:
    """What ``edgeship vdevice list`` shows about one started device."""

    name: str
    pid: int
    host: str
    port: int
    profile: str
    model: str
    root: str
    log: str
    confined: bool
    adb_server: str | None = None
    started_at: float = 0.0
    auth: str = "none"
    link_mb_per_s: float | None = None  # None: loopback speed

    @property
    def serial(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def state_dir(self) -> Path:
        return state_dir(self.name)

    def alive(self) -> bool:
        return process_is_daemon(self.pid)

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = asdict(self)
        data["serial"] = self.serial
        data["state_dir"] = str(self.state_dir)
        data["running"] = self.alive()
        return data


def process_is_daemon(pid: int) -> bool:
    """True when ``pid`` is alive and is a vdevice daemon (a recycled pid must not be killed)."""
    if pid <= 0:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return DAEMON_MODULE.encode() in cmdline


def write_record(record: DeviceRecord) -> None:
    folder = record.state_dir
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / (STATE_FILE + ".tmp")
    data = asdict(record)
    temporary.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(temporary, folder / STATE_FILE)


def read_record(name: str) -> DeviceRecord | None:
    path = state_dir(name) / STATE_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise DeviceError(f"virtual device state {path} is unreadable ({exc}); remove that folder") from None
    known = set(DeviceRecord.__dataclass_fields__)
    return DeviceRecord(**{key: value for key, value in data.items() if key in known})


def list_records() -> list[DeviceRecord]:
    folder = vdevices_dir()
    if not folder.is_dir():
        return []
    records = []
    for entry in sorted(folder.iterdir()):
        if entry.is_dir():
            try:
                record = read_record(entry.name)
            except DeviceError:
                continue
            if record is not None:
                records.append(record)
    return records


def free_name(prefix: str = "vdevice") -> str:
    """The first ``<prefix>N`` (N from 1) with no running device."""
    index = 1
    while True:
        record = read_record(f"{prefix}{index}")
        if record is None or not record.alive():
            return f"{prefix}{index}"
        index += 1


def remove_record(name: str) -> None:
    (state_dir(name) / STATE_FILE).unlink(missing_ok=True)
