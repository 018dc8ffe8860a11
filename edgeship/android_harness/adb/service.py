"""A raw device service stream spoken in lines (a virtual device's ``vdevice-ram:``), beside shell and sync.

adb forwards any service name to the device; the device answers OKAY or refuses it. A real phone's adbd
refuses names it does not know, which is ``ServiceRefused`` here: the caller learns the device lacks it.
"""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Any

from edgeship.errors import DeviceError

MAX_LINE = 4096


class ServiceRefused(DeviceError):
    """The device refused to open the service (it has none of that name)."""


class LineStream:
    """One open service stream: write a line, read a line; closing it ends the service on the device."""

    def __init__(self, serial: str, service: str, connection: Any) -> None:
        self.serial = serial
        self.service = service
        self.connection = connection
        self._buffer = bytearray()
        self._closed = False

    def send_line(self, text: str) -> None:
        try:
            self.connection.conn.sendall(text.encode() + b"\n")
        except OSError as exc:
            raise DeviceError(f"{self.serial}: {self.service} stream lost: {exc}") from None

    def read_line(self, timeout: float) -> str:
        """The next line the device wrote; DeviceError when the stream ends or nothing comes in time."""
        sock = self.connection.conn
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or len(self._buffer) > MAX_LINE:
                raise DeviceError(f"{self.serial}: {self.service} did not answer within {timeout:g}s")
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError as exc:
                raise DeviceError(f"{self.serial}: {self.service} stream lost: {exc}") from None
            if not chunk:
                raise DeviceError(f"{self.serial}: {self.service} stream closed by the device")
            self._buffer += chunk
        line, _, rest = bytes(self._buffer).partition(b"\n")
        self._buffer = bytearray(rest)
        return line.decode(errors="replace").strip()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self.connection.conn.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.connection.close()
