"""Running virtual devices: one state folder per device under ``$EDGESHIP_HOME/vdevices/<name>/``.

Each folder holds ``state.json`` (pid, port, serial, profile, sandbox root, adb server, memory cgroup),
``daemon.log`` (rotated: ``daemon.log.1``…), ``daemon.out`` (what the daemon printed outside its log: a crash)
and, unless ``--root`` named another place, the sandbox itself in ``root/``.

``set_ram`` changes a running device's RAM from outside (its memory cgroup's limit; the device's /proc/meminfo
follows within a second): what `edgeship vdevice set-ram` and a memory sweep use.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from edgeship.errors import DeviceError
from edgeship.vdevice.memory import MemoryCgroup, MemoryLimitError

STATE_FILE = "state.json"
LOG_FILE = "daemon.log"
OUTPUT_FILE = "daemon.out"
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
    ram_bytes: int = 0  # the profile's RAM
    memory_cgroup: str | None = None  # the device's memory cgroup on the host; None: it has the host's RAM
    memory_cgroup_version: int | None = None
    memory_unavailable: str | None = None  # why there is no memory cgroup

    @property
    def serial(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def state_dir(self) -> Path:
        return state_dir(self.name)

    def alive(self) -> bool:
        return process_is_daemon(self.pid)

    def memory(self) -> MemoryCgroup | None:
        if self.memory_cgroup is None or self.memory_cgroup_version is None:
            return None
        return MemoryCgroup(Path(self.memory_cgroup), self.memory_cgroup_version)

    def ram_limit(self) -> int | None:
        """The device's RAM now (its cgroup's limit), None without a cgroup or once it is gone."""
        memory = self.memory()
        try:
            return memory.limit() if memory is not None else None
        except (OSError, ValueError):
            return None

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = asdict(self)
        data["serial"] = self.serial
        data["state_dir"] = str(self.state_dir)
        data["running"] = self.alive()
        data["ram_limit_bytes"] = self.ram_limit() if data["running"] else None
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


def find_record(name_or_serial: str) -> DeviceRecord:
    """The running device of that name or serial (``127.0.0.1:PORT``); DeviceError naming the running ones."""
    records = [record for record in list_records() if record.alive()]
    for record in records:
        if name_or_serial in (record.name, record.serial):
            return record
    running = ", ".join(f"{record.name} ({record.serial})" for record in records) or "none"
    raise DeviceError(f"no running virtual device {name_or_serial!r} (running: {running})")


def set_ram(name_or_serial: str, size_bytes: int | None) -> int:
    """Set a running device's RAM to ``size_bytes`` (None: back to its profile's); returns the new limit.

    Lowering it reclaims the device's page cache at once; DeviceError when the host gave the device no memory
    cgroup, or when what the device holds cannot be reclaimed below the new size.
    """
    record = find_record(name_or_serial)
    memory = record.memory()
    if memory is None:
        reason = record.memory_unavailable or "started without one"
        raise DeviceError(
            f"virtual device {record.name} has no memory cgroup ({reason}): its RAM is the host's"
        )
    target = record.ram_bytes if size_bytes is None else size_bytes
    try:
        memory.set_limit(target)
        return memory.limit()
    except MemoryLimitError as exc:
        raise DeviceError(f"virtual device {record.name}: {exc}") from None
    except OSError as exc:
        raise DeviceError(
            f"virtual device {record.name}: its memory cgroup is gone ({exc.strerror})"
        ) from None


def remove_record(name: str) -> None:
    (state_dir(name) / STATE_FILE).unlink(missing_ok=True)
