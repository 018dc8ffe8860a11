"""Measure what crosses the wire to a device, and what the device itself holds — independently of edgeship.

- ``TrafficTap(port)``: a TCP forwarder in front of a virtual device's adbd that counts the bytes the host
  sends it; ``adb connect`` its ``serial`` and every byte of the adb transport (headers, sync framing, shell
  scripts, the data) goes through the count.
- ``device_sha256(server, serial, path)``: the device's own ``sha256sum`` of a file, asked through the adb
  CLI (not edgeship's Device), so a test checks the copy on the device rather than edgeship's "ok".
"""

from __future__ import annotations

import contextlib
import shlex
import socket
import threading
from typing import Any

CHUNK = 256 * 1024


class TrafficTap:
    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.target = (host, target_port)
        self.listener = socket.create_server((host, 0))
        self.port = self.listener.getsockname()[1]
        self.to_device = 0
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="traffic-tap").start()

    @property
    def serial(self) -> str:
        return f"127.0.0.1:{self.port}"

    def reset(self) -> None:
        with self._lock:
            self.to_device = 0

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, counted: bool) -> None:
        try:
            while data := source.recv(CHUNK):
                if counted:
                    with self._lock:
                        self.to_device += len(data)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()


def device_sha256(server: Any, serial: str, path: str) -> str:
    """``adb -s SERIAL shell sha256sum PATH`` → the digest the device computes ('' when it cannot)."""
    result = server.run("-s", serial, "shell", f"sha256sum {shlex.quote(path)}", timeout=300)
    words = result.stdout.split()
    return words[0] if result.returncode == 0 and words else ""
