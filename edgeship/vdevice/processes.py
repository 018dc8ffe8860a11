"""Every command a device started, so each can be killed with its whole process group."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager

log = logging.getLogger("edgeship.vdevice")

F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ, named in the fcntl module only from Python 3.10 on Linux builds
PIPE_SIZE = 1024 * 1024


# adbd never SIGKILLs a hung-up command; the device does, to leave nothing behind, once a trap has had time
# to tidy up. 0.5 s was too short for a trap that sleeps 0.2 s on a loaded CI machine (a fresh-clone run
# saw it killed mid-trap); a command that ends on SIGHUP is waited for only as long as it takes.
HANGUP_GRACE_S = 2.0


def _grow_pipe(fd: int) -> None:
    """A 1 MiB pipe lets a command write a whole WRTE's worth while the host acknowledges the last one."""
    import fcntl

    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", F_SETPIPE_SZ), PIPE_SIZE)


def _group_members(group: int) -> list[int]:
    """The processes of a process group, read from /proc (a member gone meanwhile is skipped)."""
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:  # the fields after "(comm)": state, ppid, pgrp, ...
            members.append(int(entry.name))
    return members


def _hangup_targets(group: int) -> list[int]:
    """Who gets the SIGHUP adbd sends when the host goes: the group, less bubblewrap's own processes.

    A hung-up bwrap dies at once and takes the device's PID namespace with it (every process in it is
    SIGKILLed), so a script's HUP trap would not run; on a phone it does (the push's assembly script
    removes its attempt folder that way). The namespace's init ignores signals it has no handler for.
    """
    targets = []
    for pid in _group_members(group):
        try:
            with open(f"/proc/{pid}/comm", "rb") as comm:
                if comm.read().strip() == b"bwrap":
                    continue
        except OSError:
            continue
        targets.append(pid)
    return targets


class ProcessTracker:
    """Starts a device's commands (inside ``launching()``: its network namespace) and kills them by group."""

    def __init__(
        self,
        logger: logging.Logger | None = None,
        launching: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext,
    ) -> None:
        self.log = logger or log
        self._launching = launching
        self._lock = threading.Lock()
        self._processes: set[subprocess.Popen[bytes]] = set()

    def start(
        self,
        argv: list[str],
        env: dict[str, str],
        cwd: str,
        merge_stderr: bool,
        terminal: int | None = None,
        pass_fds: tuple[int, ...] = (),
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` in a new session; its stdio are pipes, or the PTY slave fd ``terminal``.

        ``pass_fds``: descriptors the command inherits under the same numbers (the sync service hands a pushed
        file to a reader in the device this way; see ``pagecache``).
        """
        with self._launching():  # a forked child keeps the namespaces of the thread that forked it
            process = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if terminal is None else terminal,
                stdout=subprocess.PIPE if terminal is None else terminal,
                stderr=terminal
                if terminal is not None
                else subprocess.STDOUT
                if merge_stderr
                else subprocess.PIPE,
                env=env,
                cwd=cwd,
                start_new_session=True,  # its own session and process group, killed as a whole
                close_fds=True,
                pass_fds=pass_fds,
            )
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                _grow_pipe(pipe.fileno())
        with self._lock:
            self._processes.add(process)
        return process

    def kill(self, process: subprocess.Popen[bytes], grace: float = HANGUP_GRACE_S) -> None:
        """SIGHUP the group like adbd does, then SIGKILL what is left after ``grace`` seconds."""
        if process.returncode is not None:
            # Reaped (and its group killed) earlier: its id may belong to someone else by now.
            self.forget(process)
            return
        for pid in _hangup_targets(process.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGHUP)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(grace)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            self.log.error("process %d did not die after SIGKILL", process.pid)
        self.forget(process)

    def kill_in_background(self, process: subprocess.Popen[bytes]) -> None:
        """kill() without blocking the caller (a connection's reader thread must keep reading)."""
        threading.Thread(target=self.kill, args=(process,), name=f"kill-{process.pid}", daemon=True).start()

    def reap(self, process: subprocess.Popen[bytes]) -> int:
        """Wait for a command that ended by itself and kill anything left in its group."""
        code = process.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        self.forget(process)
        return code

    def forget(self, process: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._processes.discard(process)

    def kill_all(self) -> None:
        with self._lock:
            processes = list(self._processes)
        for process in processes:
            self.kill(process, grace=0.2)

    def __len__(self) -> int:
        with self._lock:
            return len(self._processes)
