"""The device's /proc/meminfo: its own RAM, kept current from its memory cgroup.

Inside the sandbox /proc/meminfo is a read-only bind of a file the daemon rewrites in place (same inode, so
the bind keeps showing it) every ``REFRESH_S``: MemTotal is the cgroup's limit (the profile's RAM, or what
``vdevice set-ram`` set), MemFree what the cgroup does not use, MemAvailable that plus the cgroup's file pages
(page cache the kernel reclaims under pressure), Cached/Active/Inactive/AnonPages/Mapped/Shmem from its
memory.stat. There is no swap. Tools that ask the kernel instead of reading the file (sysinfo(2): toybox
``free``, ``sysconf(_SC_PHYS_PAGES)``) still see the host.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path

from edgeship.vdevice.memory import MemoryCgroup

REFRESH_S = 0.5


def render(limit: int, usage: int, counters: dict[str, int], host_total: int) -> str:
    """meminfo text for a device of RAM ``limit`` (at most the host's) using ``usage`` bytes."""
    total = min(limit, host_total) if host_total else limit
    free = max(0, total - usage)
    file_pages = counters.get("active_file", 0) + counters.get("inactive_file", 0)
    lines = [
        ("MemTotal", total),
        ("MemFree", free),
        ("MemAvailable", min(total, free + file_pages)),
        ("Buffers", 0),
        ("Cached", counters.get("file", 0)),
        ("SwapCached", 0),
        ("Active", counters.get("active_anon", 0) + counters.get("active_file", 0)),
        ("Inactive", counters.get("inactive_anon", 0) + counters.get("inactive_file", 0)),
        ("Active(anon)", counters.get("active_anon", 0)),
        ("Inactive(anon)", counters.get("inactive_anon", 0)),
        ("Active(file)", counters.get("active_file", 0)),
        ("Inactive(file)", counters.get("inactive_file", 0)),
        ("Unevictable", counters.get("unevictable", 0)),
        ("Mlocked", 0),
        ("SwapTotal", 0),
        ("SwapFree", 0),
        ("Dirty", counters.get("dirty", 0)),
        ("Writeback", counters.get("writeback", 0)),
        ("AnonPages", counters.get("anon", 0)),
        ("Mapped", counters.get("mapped", 0)),
        ("Shmem", counters.get("shmem", 0)),
    ]
    # The kernel's own layout (fs/proc/meminfo.c): the label padded to 16 columns, "%8lu kB".
    return "".join(f"{label + ':':<16}{value // 1024:>8} kB\n" for label, value in lines)


def host_total_bytes() -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def write_in_place(path: Path, text: str) -> None:
    """Rewrite ``path`` keeping its inode (a bind mount shows the inode, so os.replace would be invisible)."""
    data = text.encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o444)
    try:
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


class MeminfoPublisher:
    """Keeps ``path`` current from ``cgroup`` in a background thread until ``stop``."""

    def __init__(self, path: Path, cgroup: MemoryCgroup, logger: logging.Logger) -> None:
        self.path = path
        self.cgroup = cgroup
        self.log = logger
        self._host_total = host_total_bytes()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> None:
        text = render(self.cgroup.limit(), self.cgroup.usage(), self.cgroup.counters(), self._host_total)
        write_in_place(self.path, text)

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.refresh()  # the file must exist before bubblewrap binds it
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="vdevice-meminfo", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(REFRESH_S):
            try:
                self.refresh()
            except OSError as exc:  # the cgroup is going away (stop) or the disk is full: try again later
                self.log.debug("meminfo refresh failed: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
