"""Device shell commands: the command line (every word quoted), and a started command's output and status.

The shell v2 protocol frames stdout (1), stderr (2) and the exit status (3); older adbd (v1) has one stream
and no status, so the command is run in a child shell followed by an exit marker.
"""

from __future__ import annotations

import select
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgeship.android_harness.adb.sync import recv_exact
from edgeship.errors import DeviceError

EXIT_MARKER = b"EDGESHIP_EXIT:"
STDOUT, STDERR, EXIT = 1, 2, 3  # shell v2 packet ids


@dataclass
class ShellResult:
    exit_code: int
    stdout: bytes
    stderr: bytes

    @property
    def text(self) -> str:
        return self.stdout.decode(errors="replace")

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def one_line(text: str | bytes, limit: int = 200) -> str:
    """The last non-blank line of some output, cut to ``limit`` characters (for one-line messages)."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    line = lines[-1] if lines else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def command_text(argv: list[str] | str) -> str:
    """A device shell command line; argv elements are quoted so nothing a user names is interpreted."""
    if isinstance(argv, str):
        return argv
    return " ".join(shlex.quote(str(part)) for part in argv)


def v1_service(command: str) -> str:
    """The v1 shell service: a child shell runs ``command``, so an `exit` in it cannot skip the marker."""
    return f"shell:sh -c {shlex.quote(command)}; echo {EXIT_MARKER.decode()}$?"


class RunningShell:
    """A started device command: shell v2 frames (stdout 1, stderr 2, exit 3), or v1 with an exit marker.

    ``serial`` names the device in messages; ``failure(what, exc)`` turns a socket error into the device's
    one-line DeviceError.
    """

    def __init__(
        self,
        serial: str,
        command: str,
        connection: Any,
        v2: bool,
        failure: Callable[[str, BaseException], DeviceError],
    ) -> None:
        self.serial = serial
        self.command = command
        self.connection = connection
        self.v2 = v2
        self.failure = failure
        self._stdout = bytearray()
        self._stderr = bytearray()
        self._exit_code: int | None = None
        self._line_start = 0  # where read_line's next line starts in the stdout buffer

    def wait(self, timeout: float | None = None) -> ShellResult:
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while self._exit_code is None:
                self._read_more(deadline)
            return ShellResult(self._exit_code, bytes(self._stdout), bytes(self._stderr))
        except TimeoutError:
            raise DeviceError(
                f"{self.serial}: command timed out after {timeout}s: {one_line(self.command, 80)}"
            ) from None
        except OSError as exc:
            raise self.failure(f"running {one_line(self.command, 60)!r} failed", exc) from None
        finally:
            self.close()

    def read_line(self, timeout: float) -> str | None:
        """The command's next line of stdout (without its newline), as soon as it is printed; None when the
        command ended first (``wait()`` then gives its status and the rest). The command keeps running."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                end = self._stdout.find(b"\n", self._line_start)
                if end >= 0:
                    line = bytes(self._stdout[self._line_start : end])
                    self._line_start = end + 1
                    if not (not self.v2 and line.startswith(EXIT_MARKER)):  # v1's status line is not output
                        return line.decode(errors="replace")
                    continue
                if self._exit_code is not None:
                    return None
                self._read_more(deadline)
        except TimeoutError:
            raise DeviceError(
                f"{self.serial}: no output line within {timeout:g}s from {one_line(self.command, 80)}"
            ) from None
        except OSError as exc:
            raise self.failure(f"reading from {one_line(self.command, 60)!r} failed", exc) from None

    def poll(self) -> int | None:
        """The exit status when the command has ended, else None; reads only what already arrived (never
        waits for more). A connection that dropped counts as ended (255)."""
        sock = self.connection.conn
        try:
            while self._exit_code is None:
                readable, _, _ = select.select([sock], [], [], 0)
                if not readable:
                    return None
                self._read_more(time.monotonic() + 5.0)
        except (OSError, ValueError):  # closed socket, dropped connection, a half frame that never came
            self._exit_code = 255
        return self._exit_code

    def _read_more(self, deadline: float | None) -> None:
        """One more frame (v2) or chunk (v1) into the buffers; sets the exit code at the end."""
        sock = self.connection.conn
        # A deadline for the whole command, not per read: a chatty command must not run forever.
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            sock.settimeout(remaining)
        if not self.v2:
            chunk = sock.recv(65536)
            if chunk:
                self._stdout += chunk
                return
            marker = self._stdout.rfind(EXIT_MARKER)
            if marker < 0:
                raise ConnectionError("the command ended without its exit status")
            self._exit_code = int(self._stdout[marker + len(EXIT_MARKER) :].strip() or b"255")
            del self._stdout[marker:]
            return
        header = recv_exact(sock, 5)
        length = int.from_bytes(header[1:5], "little")
        data = recv_exact(sock, length) if length else b""
        if header[0] == STDOUT:
            self._stdout += data
        elif header[0] == STDERR:
            self._stderr += data
        elif header[0] == EXIT:
            self._exit_code = data[0] if data else 255

    def close(self) -> None:
        self.connection.close()
