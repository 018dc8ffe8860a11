"""The device's RAM: a memory cgroup of its own, sized from the profile, holding every process it starts.

Under the limit the runner's anonymous memory and the page cache of the bundle it maps compete as on a phone:
file pages are reclaimed and faulted in again, and a runner that does not fit is ended by the kernel's OOM
killer (the cgroup counts it: ``oom_kill`` in ``memory.oom_control`` on cgroup v1, ``memory.events`` on v2).
The cgroup is made below the daemon's own (``<its cgroup>/edgeship-vd-<name>-<daemon pid>``), so whatever
bounds the daemon also bounds the device, and removed when the device stops. Both hierarchies are supported:
cgroup v1's memory controller (``memory.limit_in_bytes``; also ``memory.memsw.limit_in_bytes`` so that host
swap does not let a runner grow past its RAM) and v2 (``memory.max``, ``memory.swap.max`` 0), where the
device's cgroup goes beside the daemon's (``v2_devices_parent``: v2 allows no processes in a cgroup that
hands memory to children).

Commands join it before anything of theirs runs: ``join_argv`` wraps the command in ``/bin/sh -c 'echo $$ >
cgroup.procs && exec …'`` (on the host, before bubblewrap), so everything they fork is born inside, and
nothing in the sandbox can write the cgroup files to leave (they are mounted read-only at /dev/memcg,
capabilities are dropped).

Page cache is charged to the cgroup of the process that first brings a page in. The daemon's sync service
writes pushed files, so their pages would be charged to the daemon's cgroup and a runner mapping a just-pushed
bundle would find it resident for free; the sync service therefore ends every SEND of 1 MiB or more by moving
the file's page cache into the device (``pagecache``: dropped from the daemon, read back once by a process in
this cgroup), so the device pays for it, as a phone does for what adbd has just written.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_PREFIX = "edgeship-vd-"
# A device below this cannot even run its shell; sizes are checked before they reach the kernel.
MIN_RAM_BYTES = 16 * 1024 * 1024
REMOVE_TIMEOUT_S = 5.0
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)


class MemoryUnavailable(Exception):
    """No memory cgroup can be made here; the message is the one-line reason."""


class MemoryLimitError(Exception):
    """A limit the kernel refused or that makes no sense; the message says which and why."""


@dataclass(frozen=True)
class _Names:
    """The file names of one cgroup version (v1 and v2 call the same things differently)."""

    limit: str
    usage: str
    peak: str
    events: str
    swap_limit: str


_V1 = _Names(
    "memory.limit_in_bytes",
    "memory.usage_in_bytes",
    "memory.max_usage_in_bytes",
    "memory.oom_control",
    "memory.memsw.limit_in_bytes",
)
_V2 = _Names("memory.max", "memory.current", "memory.peak", "memory.events", "memory.swap.max")
# memory.stat keys per version → one set of names (v1's total_* include descendants, like v2's).
_STAT_KEYS = {
    1: {
        "total_cache": "file",
        "total_rss": "anon",
        "total_shmem": "shmem",
        "total_mapped_file": "mapped",
        "total_dirty": "dirty",
        "total_writeback": "writeback",
        "total_active_anon": "active_anon",
        "total_inactive_anon": "inactive_anon",
        "total_active_file": "active_file",
        "total_inactive_file": "inactive_file",
        "total_unevictable": "unevictable",
        "total_workingset_refault_file": "refault_file",
        "total_pgmajfault": "major_faults",
    },
    2: {
        "file": "file",
        "anon": "anon",
        "shmem": "shmem",
        "file_mapped": "mapped",
        "file_dirty": "dirty",
        "file_writeback": "writeback",
        "active_anon": "active_anon",
        "inactive_anon": "inactive_anon",
        "active_file": "active_file",
        "inactive_file": "inactive_file",
        "unevictable": "unevictable",
        "workingset_refault_file": "refault_file",
        "pgmajfault": "major_faults",
    },
}


@dataclass(frozen=True)
class MemoryCgroup:
    """One device's memory cgroup on the host: ``path`` in a hierarchy of ``version`` 1 or 2."""

    path: Path
    version: int

    @property
    def names(self) -> _Names:
        return _V1 if self.version == 1 else _V2

    # ---- lifecycle ----------------------------------------------------------------------------------
    @classmethod
    def create(cls, device_name: str, limit_bytes: int) -> MemoryCgroup:
        version, parent = _own_memory_cgroup()
        _remove_stale_siblings(parent)
        path = parent / f"{CGROUP_PREFIX}{device_name}-{os.getpid()}"
        try:
            path.mkdir()
        except FileExistsError:
            pass
        except OSError as exc:
            raise MemoryUnavailable(f"cannot create memory cgroup {path}: {exc.strerror}") from None
        cgroup = cls(path, version)
        try:
            cgroup.set_limit(limit_bytes)
        except MemoryLimitError as exc:
            cgroup.remove()
            raise MemoryUnavailable(str(exc)) from None
        return cgroup

    def remove(self, timeout: float = REMOVE_TIMEOUT_S) -> bool:
        """rmdir the cgroup once its last process has gone (killed processes take a moment to leave)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.path.rmdir()
                return True
            except FileNotFoundError:
                return True
            except OSError as exc:
                if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                    return False
            time.sleep(0.05)

    def join_argv(self, argv: list[str]) -> list[str]:
        """``argv`` run by a host shell that first joins this cgroup (so its children start there)."""
        procs = str(self.path / "cgroup.procs")
        join = (
            'echo $$ > "$0" || { echo "edgeship vdevice: cannot join the memory cgroup $0" >&2; exit 126; }; '
            'exec "$@"'
        )
        return ["/bin/sh", "-c", join, procs, *argv]

    # ---- the limit ----------------------------------------------------------------------------------
    def set_limit(self, limit_bytes: int) -> None:
        """Set the device's RAM; lowering it reclaims page cache, and fails when what is in use cannot go."""
        if limit_bytes < MIN_RAM_BYTES:
            minimum = MIN_RAM_BYTES // 2**20
            raise MemoryLimitError(
                f"{limit_bytes / 2**20:.1f} MiB is below the {minimum} MiB a device needs for its shell"
            )
        names = self.names
        if self.version == 1:
            # v1 wants memsw >= memory at every step: raise memsw first when growing, last when shrinking.
            growing = limit_bytes >= self.limit()
            order = [names.swap_limit, names.limit] if growing else [names.limit, names.swap_limit]
            for name in order:
                self._write_limit(name, str(limit_bytes), optional=name == names.swap_limit)
        else:
            self._write_limit(names.limit, str(limit_bytes))
            self._write_limit(names.swap_limit, "0", optional=True)

    def _write_limit(self, name: str, value: str, optional: bool = False) -> None:
        path = self.path / name
        try:
            path.write_text(value)
        except FileNotFoundError:
            if optional:
                return  # no swap accounting in this kernel: nothing to bound
            raise MemoryLimitError(f"{path} does not exist") from None
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                wanted, used = int(value) // 2**20, self.usage() // 2**20
                raise MemoryLimitError(
                    f"cannot lower the RAM to {wanted} MiB: the device holds {used} MiB that cannot be "
                    "reclaimed (stop what runs on it first)"
                ) from None
            raise MemoryLimitError(f"cannot write {value} to {path}: {exc.strerror}") from None

    def limit(self) -> int:
        text = self._read(self.names.limit)
        return _host_ram_bytes() if text == "max" else int(text)

    # ---- what the kernel counts ---------------------------------------------------------------------
    def usage(self) -> int:
        return int(self._read(self.names.usage))

    def peak(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            return int(self._read(self.names.peak))
        return None  # memory.peak is new in v2 (5.19)

    def events(self) -> dict[str, int]:
        """memory.oom_control (v1: oom_kill, under_oom…) or memory.events (v2: oom, oom_kill, max…)."""
        return _keyed_numbers(self._read(self.names.events))

    def oom_kills(self) -> int:
        return self.events().get("oom_kill", 0)

    def counters(self) -> dict[str, int]:
        """memory.stat under version-independent names (file, anon, active_file, refault_file…), bytes."""
        raw = _keyed_numbers(self._read("memory.stat"))
        return {name: raw[key] for key, name in _STAT_KEYS[self.version].items() if key in raw}

    def _read(self, name: str) -> str:
        return (self.path / name).read_text().strip()


def parse_size(text: str) -> int:
    """``4G``, ``512M``, ``1.5GiB``, ``3500000000``: binary units (K, M, G, T = 2^10…), as RAM is counted."""
    match = _SIZE.match(text)
    if not match:
        raise MemoryLimitError(
            f"{text!r} is not a size: use bytes or a number with K, M, G or T (e.g. 4G, 512M)"
        )
    number, unit = float(match.group(1)), match.group(2).lower()
    return int(number * 1024 ** "_kmgt".index(unit)) if unit else int(number)


def unavailable_reason() -> str | None:
    """Why this host cannot give a device its own RAM, or None when it can (used by the tests to skip)."""
    try:
        _, parent = _own_memory_cgroup()
    except MemoryUnavailable as exc:
        return str(exc)
    if not os.access(parent, os.W_OK):
        return f"memory cgroup {parent} is not writable (run as root)"
    return None


def _own_memory_cgroup() -> tuple[int, Path]:
    """(version, folder to make device cgroups in), in the hierarchy that has the memory controller."""
    if os.geteuid() != 0:
        raise MemoryUnavailable("a memory cgroup needs root")
    memberships = _memberships()
    mounts = _cgroup_mounts()
    if "memory" in memberships and "memory" in mounts:
        mount_root, mount_point = mounts["memory"]
        return 1, _join_cgroup(mount_point, mount_root, memberships["memory"])
    if "" in memberships and "" in mounts:
        mount_root, mount_point = mounts[""]
        own = _join_cgroup(mount_point, mount_root, memberships[""])
        return 2, v2_devices_parent(own, Path(mount_point))
    raise MemoryUnavailable("this kernel has no memory cgroup controller mounted")


def v2_devices_parent(own: Path, mount_point: Path) -> Path:
    """Where cgroup v2 lets the daemon make its devices' cgroups, given the cgroup ``own`` it is in.

    v2 has no internal processes: only a cgroup without processes of its own (or the root) hands the memory
    controller to children, so the daemon's own cgroup cannot hold its devices. Its parent hands memory to it
    (``own`` lists memory in cgroup.controllers), so the devices go beside it; in the root cgroup (no
    memory.max), below it, the controller enabled for the children if need be.
    """
    if not (own / "memory.max").exists():  # the root cgroup: exempt from the rule
        enabled = _words(own / "cgroup.subtree_control")
        if "memory" not in enabled:
            if "memory" not in _words(own / "cgroup.controllers"):
                raise MemoryUnavailable(f"the cgroup v2 hierarchy at {own} has no memory controller")
            try:
                (own / "cgroup.subtree_control").write_text("+memory")
            except OSError as exc:
                raise MemoryUnavailable(
                    f"cannot enable the memory controller in {own}: {exc.strerror}"
                ) from None
        return own
    if "memory" not in _words(own / "cgroup.controllers"):
        raise MemoryUnavailable(f"cgroup v2: the memory controller is not delegated to {own}")
    if own == mount_point:
        raise MemoryUnavailable(
            f"cgroup v2: {own} (this cgroup namespace's root) holds processes, so it cannot hold a device's "
            "memory cgroup; run the daemon in a cgroup of its own (e.g. systemd-run --scope)"
        )
    return own.parent


def _words(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except OSError:
        return []


def _memberships() -> dict[str, str]:
    """controller → cgroup path from /proc/self/cgroup ("" is the v2 unified hierarchy)."""
    found: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            found[controller] = path
    return found


def _cgroup_mounts() -> dict[str, tuple[str, str]]:
    """controller → (root inside the hierarchy, mount point): "memory" for v1, "" for the v2 hierarchy."""
    mounts: dict[str, tuple[str, str]] = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, after = left.split(), right.split()
        if len(fields) < 5 or len(after) < 3:
            continue
        root, mount_point, fstype, options = fields[3], fields[4], after[0], after[2].split(",")
        if fstype == "cgroup" and "memory" in options:
            mounts.setdefault("memory", (root, mount_point))
        elif fstype == "cgroup2":
            mounts.setdefault("", (root, mount_point))
    return mounts


def _join_cgroup(mount_point: str, mount_root: str, cgroup_path: str) -> Path:
    relative = cgroup_path
    if mount_root != "/" and (cgroup_path == mount_root or cgroup_path.startswith(mount_root + "/")):
        relative = cgroup_path[len(mount_root) :]
    return Path(mount_point) / relative.lstrip("/")


def _remove_stale_siblings(parent: Path) -> None:
    """The cgroups of devices whose daemon was killed (SIGKILL leaves them behind); rmdir only empty ones."""
    with contextlib.suppress(OSError):
        for entry in parent.iterdir():
            if not entry.name.startswith(CGROUP_PREFIX):
                continue
            pid_text = entry.name.rsplit("-", 1)[-1]
            if pid_text.isdigit() and not Path(f"/proc/{pid_text}").exists():
                with contextlib.suppress(OSError):
                    entry.rmdir()


def _keyed_numbers(text: str) -> dict[str, int]:
    numbers: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            numbers[key] = int(value)
    return numbers


def _host_ram_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0
