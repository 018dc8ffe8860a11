"""Who killed the runner: the kernel's own record of memory kills, read on the device around each run.

A SIGKILL alone does not say why. Two records do:

- the memory cgroup's OOM count: the line ``oom_kill N`` of ``/dev/memcg/memory.oom_control`` (cgroup v1) or
  ``memory.events`` (v2). The kernel adds one for every process its OOM killer ends in that cgroup. A
  virtual device's ``/dev/memcg`` is its own cgroup (docs/contracts.md); on a phone it is the root memory
  cgroup, which holds what adb's shell starts, where it is readable. It is read before and after each run:
  a count that rose while the runner was killed is the kernel's word that it was the OOM killer.
- a phone's logs: lmkd, Android's low-memory killer, kills from user space (the memory cgroup does not count
  those) and logs ``killinfo`` (logcat events buffer) or ``lowmemorykiller: Kill '…' (PID)``; the kernel's OOM
  killer logs ``Out of memory: Killed process PID`` (dmesg, rarely readable from adb's shell). They are read
  only after a run ended by SIGKILL, and only lines naming the runner's pid (result.json) count.

Everything here but the two readers is a pure function over what they read.
"""

from __future__ import annotations

import re
import signal as signals
from dataclasses import dataclass, field

from edgeship.android_harness.adb import Device, split_sections, tag
from edgeship.errors import DeviceError
from edgeship.profiles.schema import STATUS_OOM_KILLED, ExitStatus

OOM_FILES = ("/dev/memcg/memory.oom_control", "/dev/memcg/memory.events")
OOM_COUNT_COMMAND = f"cat {' '.join(OOM_FILES)} 2>/dev/null"
LOG_LINES = 200  # per log: the tail that can hold a kill of the last few seconds
KILL_LOG_SCRIPT = (
    f"{tag('events')}; logcat -b events -d -t {LOG_LINES} 2>/dev/null\n"
    f"{tag('main')}; logcat -b main,system -d -t {LOG_LINES} 2>/dev/null\n"
    f"{tag('kernel')}; dmesg 2>/dev/null | tail -n {LOG_LINES}\n"
    "echo '@end'\n"
)
LMKD_WORDS = re.compile(r"lowmemorykiller|killinfo|\blmkd\b", re.IGNORECASE)
KERNEL_WORDS = re.compile(r"out of memory|oom-kill|oom_reaper|killed process", re.IGNORECASE)


@dataclass(frozen=True)
class KillRecord:
    """What the device recorded around one run: the cgroup's OOM count before and after (None: not readable)
    and, for a run ended by SIGKILL, lmkd's and the kernel's log lines about memory kills."""

    oom_before: int | None = None
    oom_after: int | None = None
    log_lines: tuple[str, ...] = field(default_factory=tuple)

    @property
    def oom_kills(self) -> int | None:
        """OOM kills in the device's memory cgroup during the run; None when the count is not readable."""
        if self.oom_before is None or self.oom_after is None:
            return None
        return max(0, self.oom_after - self.oom_before)


def parse_oom_kills(text: str) -> int | None:
    """The ``oom_kill N`` line of memory.oom_control / memory.events; None when neither was readable or the
    kernel is older than the count (4.13)."""
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if key == "oom_kill" and value.strip().isdigit():
            return int(value)
    return None


def read_oom_kills(device: Device) -> int | None:
    """The device's memory cgroup OOM count now, None where it has none readable (never raises for that)."""
    try:
        result = device.shell(OOM_COUNT_COMMAND, timeout=30)
    except DeviceError:
        return None
    return parse_oom_kills(result.text)


def kill_log_lines(device: Device) -> tuple[str, ...]:
    """lmkd's and the kernel's recent log lines about memory kills (none where no log is readable)."""
    try:
        result = device.shell(KILL_LOG_SCRIPT, timeout=30)
    except DeviceError:
        return ()
    _, sections = split_sections(result.text)
    lines = [line for name in ("events", "main", "kernel") for line in sections.get(name, [])]
    return tuple(line.strip() for line in lines if LMKD_WORDS.search(line) or KERNEL_WORDS.search(line))


def naming_pid(lines: tuple[str, ...], pid: int | None) -> list[str]:
    """The lines that name ``pid`` as a whole number (none without a pid)."""
    if pid is None:
        return []
    mention = re.compile(rf"(?<![0-9]){pid}(?![0-9])")
    return [line for line in lines if mention.search(line)]


def attribute_kill(status: ExitStatus, record: KillRecord | None, pid: int | None) -> ExitStatus:
    """``status`` with the kernel's word on a memory kill: ``oom_killed`` when the runner died of SIGKILL and
    the cgroup counted an OOM kill meanwhile (or lmkd/the kernel logged its pid); the note says which record.

    Other endings keep their status; an OOM kill of another of the device's processes meanwhile is noted.
    """
    if record is None:
        return status
    kills = record.oom_kills
    if status.signal != signals.SIGKILL or status.timed_out:
        if kills:
            extra = f"the OOM killer ended another process during the run ({_count(record)})"
            status.note = f"{status.note}; {extra}" if status.note else extra
        return status
    prefix = "probe and runner " if (status.note or "").startswith("probe and runner") else ""
    about_runner = naming_pid(record.log_lines, pid)
    lmkd = next((line for line in about_runner if LMKD_WORDS.search(line)), None)
    kernel = next((line for line in about_runner if KERNEL_WORDS.search(line)), None)
    if kills:
        why = f"killed by the kernel's OOM killer ({_count(record)})"
    elif lmkd is not None:
        why = f"killed by lmkd, Android's low-memory killer: {lmkd[:160]}"
    elif kernel is not None:
        why = f"killed by the kernel's OOM killer: {kernel[:160]}"
    else:
        if kills == 0:
            status.note = (
                f"{prefix}killed by SIGKILL (the memory cgroup recorded no OOM kill: {_count(record)})"
            )
        return status
    return ExitStatus(status.code, status.signal, False, STATUS_OOM_KILLED, prefix + why)


def _count(record: KillRecord) -> str:
    return f"memory cgroup oom_kill {record.oom_before} → {record.oom_after}"
