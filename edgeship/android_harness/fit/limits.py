"""Taking memory away from a device, one step of a sweep at a time, and giving it back however the sweep ends.

Two ways, chosen per device (``--method``):

- ``cgroup``: a virtual device sets its own RAM when asked through adb (its ``vdevice-ram:`` service, a
  lease: the device restores the RAM when the stream closes, so a harness that dies mid-sweep, a dropped adb
  server or a lost connection leave no shrunken device). It works wherever the device runs, since edgeship
  reaches it only through its adb server. A phone refuses the service.
- ``balloon``: a small native helper (balloon.c) that holds incompressible anonymous memory until what the
  device has left is the target, started through adb's shell and ended by closing it. It works on a phone
  and on a virtual device alike (there it is a process in the device's memory cgroup).

The target is *available* memory (/proc/meminfo MemAvailable: what a new process can get without swapping),
which is what both methods control and what a phone reports. ``apply`` returns what was read back after the
change; the step's figures are against that, not against what was asked.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from edgeship.android_harness.adb import Device, LineStream, ServiceRefused, meminfo_values
from edgeship.android_harness.adb.shell import RunningShell, command_text
from edgeship.android_harness.fit.balloon import BalloonState, balloon_argv, build_balloon, parse_ready
from edgeship.android_harness.store import DeviceStore
from edgeship.errors import DeviceError, EdgeshipError
from edgeship.units import format_bytes

RAM_SERVICE = "vdevice-ram:"
ANSWER_TIMEOUT_S = 60.0  # a limit far below what the device holds makes the kernel reclaim for a while
BALLOON_READY_TIMEOUT_S = 180.0  # filling GBs with random bytes on a slow phone
RELEASE_TIMEOUT_S = 15.0


class LimitUnavailable(EdgeshipError):
    """The device offers no way to take its memory (one line naming why); fit exits 5 for it."""

    exit_code = 5


class LimitRefused(EdgeshipError):
    """This target cannot be set (below what the device needs to run at all): a step that does not start."""


@dataclass(frozen=True)
class Applied:
    """What a step's device had once its memory was taken: read back, not what was asked for."""

    target: int
    available: int | None  # MemAvailable read after the change
    limit: int | None = None  # cgroup: the device's RAM now
    balloon: BalloonState | None = None
    swap_free: int | None = None
    note: str | None = None

    def balloon_record(self) -> dict[str, Any] | None:
        return None if self.balloon is None else asdict(self.balloon)


class MemoryLimiter(Protocol):
    method: str

    def prepare(self, store: DeviceStore, abi: str) -> None:
        """What it needs on the device once the profile set-up is done (the balloon binary)."""

    def configure(self, tolerance: int, max_seconds: int) -> None:
        """How close to a target is close enough, and how long whatever holds memory may live unattended."""

    def apply(self, target_available: int) -> Applied: ...

    def broken(self) -> str | None:
        """Why the limit did not hold through the runs (the balloon was killed), None when it held."""

    def release(self) -> None:
        """Give the memory back after a step (the cgroup keeps its lease and the step's limit)."""

    def reset(self) -> None:
        """The device's whole memory, for an unconstrained reference run between steps."""

    def close(self) -> bool:
        """Restore the device (idempotent, from any thread); True when it is back as it was."""


def read_meminfo(device: Device) -> dict[str, int]:
    result = device.shell("cat /proc/meminfo", timeout=30)
    return meminfo_values(result.text.splitlines())


def available_now(device: Device) -> int | None:
    return read_meminfo(device).get("MemAvailable")


# -- cgroup: the virtual device's own RAM, through adb ----------------------------------------------------


class CgroupLimiter:
    """A virtual device's RAM, held through its ``vdevice-ram:`` lease (restored by the device on close)."""

    method = "cgroup"

    def __init__(self, device: Device, stream: LineStream, original: int, profile_ram: int) -> None:
        self.device = device
        self.stream = stream
        self.original = original
        self.profile_ram = profile_ram
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def open(cls, device: Device) -> CgroupLimiter:
        try:
            stream = device.open_service(RAM_SERVICE)
        except ServiceRefused:
            raise LimitUnavailable(
                f"{device.serial}: --method cgroup needs a virtual device (edgeship vdevice); this device "
                "refused vdevice-ram: (a phone: use --method balloon)"
            ) from None
        first = stream.read_line(ANSWER_TIMEOUT_S)
        words = first.split()
        if len(words) != 3 or words[0] != "ram" or not all(word.isdigit() for word in words[1:]):
            stream.close()
            reason = first.removeprefix("error ").strip() or "no answer"
            raise LimitUnavailable(f"{device.serial}: its RAM cannot be set: {reason}")
        return cls(device, stream, int(words[1]), int(words[2]))

    def prepare(self, store: DeviceStore, abi: str) -> None:
        """Nothing to push: the device sets its own RAM."""

    def configure(self, tolerance: int, max_seconds: int) -> None:
        """Nothing: the device's kernel holds the limit exactly, and the lease ends with the connection."""

    def _set(self, limit: int) -> int:
        with self._lock:
            if self._closed:
                raise DeviceError(f"{self.device.serial}: the sweep was stopped")
            self.stream.send_line(f"set {int(limit)}")
            answer = self.stream.read_line(ANSWER_TIMEOUT_S)
        if answer.startswith("ok "):
            return int(answer.split()[1])
        raise LimitRefused(answer.removeprefix("error ").strip())

    def apply(self, target_available: int) -> Applied:
        """RAM = target + what the device holds that cannot be reclaimed now (its MemTotal − MemAvailable),
        corrected once from what MemAvailable reads after the change."""
        before = read_meminfo(self.device)
        held = max(0, before.get("MemTotal", 0) - before.get("MemAvailable", 0))
        limit = self._set(target_available + held)
        available = available_now(self.device)
        if available is not None and abs(available - target_available) > max(1 << 20, target_available // 50):
            limit = self._set(max(1, limit + target_available - available))
            available = available_now(self.device)
        return Applied(target_available, available, limit=limit)

    def broken(self) -> str | None:
        return None  # the kernel keeps a cgroup's limit; only the device's end could drop it

    def release(self) -> None:
        """Nothing: the next step sets its own limit, and close() restores the device."""

    def reset(self) -> None:
        self._set(self.original)

    def close(self) -> bool:
        with self._lock:
            if self._closed:
                return True
            self._closed = True
            self.stream.close()  # the device restores the limit it had when the lease opened
        deadline = time.monotonic() + RELEASE_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                if read_meminfo(self.device).get("MemTotal") == self.original:
                    return True
            except DeviceError:
                return False  # the device is gone; it restored itself when the connection dropped
            time.sleep(0.2)
        return False


# -- balloon: anonymous memory held on the device ---------------------------------------------------------


class BalloonLimiter:
    """The balloon helper, one process per step, started and ended through adb's shell."""

    method = "balloon"

    def __init__(self, device: Device) -> None:
        self.device = device
        self.remote_binary: str | None = None  # pushed by prepare()
        self.tolerance = 1 << 20
        self.max_seconds = 3600  # the balloon's own deadline: it ends even if nothing ever hangs it up
        self._running: RunningShell | None = None
        self._state: BalloonState | None = None
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def open(cls, device: Device) -> BalloonLimiter:
        """A balloon for this device, refused (LimitUnavailable) where it cannot say what it leaves or
        would squeeze the host instead of the device."""
        meminfo = read_meminfo(device)
        if "MemAvailable" not in meminfo:
            raise LimitUnavailable(
                f"{device.serial}: /proc/meminfo has no MemAvailable (kernel before 3.14): a balloon cannot "
                "tell what is left"
            )
        _refuse_host_ram(device)
        return cls(device)

    def prepare(self, store: DeviceStore, abi: str) -> None:
        self.remote_binary = store.ensure_file(build_balloon(abi), "balloon")

    def configure(self, tolerance: int, max_seconds: int) -> None:
        self.tolerance, self.max_seconds = tolerance, max_seconds

    def apply(self, target_available: int) -> Applied:
        with self._lock:
            if self._closed:
                raise DeviceError(f"{self.device.serial}: the sweep was stopped")
            if self.remote_binary is None:
                raise DeviceError(f"{self.device.serial}: the balloon was not pushed (prepare() first)")
            argv = balloon_argv(self.remote_binary, target_available, self.tolerance, self.max_seconds)
            self._running = self.device.shell_start(command_text(["exec", *argv]))
            running = self._running
        line = running.read_line(BALLOON_READY_TIMEOUT_S)
        state = parse_ready(line) if line is not None else None
        if state is None:
            result = running.wait(RELEASE_TIMEOUT_S)
            self._running = None
            if result.exit_code == 137:
                raise LimitRefused(
                    f"the balloon was killed before it held {format_bytes(target_available)} available "
                    "(the device could not give that much memory up)"
                )
            reason = (result.stderr or result.stdout).decode(errors="replace").strip().splitlines()
            raise LimitRefused(f"the balloon failed: {reason[-1] if reason else f'exit {result.exit_code}'}")
        self._state = state
        note = None
        if state.locked < state.held:
            note = (
                f"mlock refused for {format_bytes(state.held - state.locked)} of the balloon "
                "(random bytes, touched every second: zram gains nothing from them)"
            )
        return Applied(target_available, state.available, balloon=state, swap_free=state.swap_free, note=note)

    def broken(self) -> str | None:
        running = self._running
        code = None if running is None else running.poll()
        if code is None:
            return None
        self.release()
        how = "SIGKILL: lmkd or the OOM killer" if code == 137 else f"exit status {code}"
        return f"the balloon was killed during the run ({how})"

    def release(self) -> None:
        with self._lock:
            running, state = self._running, self._state
            self._running, self._state = None, None
        if running is None:
            return
        running.close()  # adbd hangs the shell up: SIGHUP ends the balloon, its memory goes back
        if state is not None:
            _wait_for_memory_back(self.device, state)

    def reset(self) -> None:
        self.release()

    def close(self) -> bool:
        with self._lock:
            self._closed = True
        try:
            self.release()
        except DeviceError:
            return False  # the device is gone: its adbd hung the balloon's shell up when the link dropped
        return True


def _wait_for_memory_back(device: Device, state: BalloonState) -> None:
    """Until MemAvailable shows most of the balloon back (its process gone), at most RELEASE_TIMEOUT_S."""
    deadline = time.monotonic() + RELEASE_TIMEOUT_S
    while time.monotonic() < deadline:
        available = available_now(device)
        if available is None or available >= state.available + state.held * 0.8:
            return
        time.sleep(0.2)


def _refuse_host_ram(device: Device) -> None:
    """A virtual device without a memory cgroup has the host's RAM: a balloon there takes the host's memory
    (everything on the machine would be squeezed, not the device), so it is refused."""
    try:
        stream = device.open_service(RAM_SERVICE)
    except ServiceRefused:
        return  # a phone
    try:
        first = stream.read_line(ANSWER_TIMEOUT_S)
    finally:
        stream.close()
    if first.startswith("error no memory cgroup"):
        raise LimitUnavailable(
            f"{device.serial}: a virtual device without a memory cgroup has the host's RAM; a balloon would "
            f"take the host's memory ({first.removeprefix('error ')})"
        )


def open_limiter(device: Device, method: str) -> MemoryLimiter:
    """The device's way to take memory: ``cgroup``, ``balloon``, or ``auto`` (cgroup where the device has one,
    else the balloon), settled before anything is pushed or run; ``prepare`` it after the profile set-up.
    LimitUnavailable (one line naming why) when the method asked for is not there."""
    if method == "cgroup":
        return CgroupLimiter.open(device)
    if method == "balloon":
        return BalloonLimiter.open(device)
    try:
        return CgroupLimiter.open(device)
    except LimitUnavailable as cgroup_problem:
        try:
            return BalloonLimiter.open(device)
        except LimitUnavailable as balloon_problem:
            raise LimitUnavailable(f"{cgroup_problem.message}; and {balloon_problem.message}") from None
