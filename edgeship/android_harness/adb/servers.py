"""adb clients over one or many adb servers.

A lab drives phones on several hosts: each host runs its own adb server, and edgeship talks to all of them
through adbutils. The local server is started (like `adb` itself does) when nothing listens on its port;
a remote server that does not answer is an error naming it, since we cannot start it from here.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import adbutils
from adbutils import AdbClient, AdbDevice
from adbutils._proto import AdbDeviceInfo
from adbutils.errors import AdbError

from edgeship.config import AdbServer
from edgeship.errors import DeviceError

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}
SERVER_START_TIMEOUT_S = 20.0
PROBE_TIMEOUT_S = 0.5


@dataclass
class ServerClient:
    """One adb server and the adbutils client that talks to it."""

    server: AdbServer
    client: AdbClient = field(repr=False)

    def listings(self) -> list[AdbDeviceInfo]:
        """Every transport the server knows, offline and unauthorized included."""
        try:
            return self.client.list(extended=True)
        except (AdbError, OSError) as exc:
            raise DeviceError(f"adb server {self.server} failed to list devices: {exc}") from None

    def device(self, serial: str) -> AdbDevice:
        return self.client.device(serial=serial)


def find_adb_binary() -> str:
    """The adb to start servers with: $ADBUTILS_ADB_PATH, `adb` on PATH, else the one inside adbutils."""
    explicit = os.environ.get("ADBUTILS_ADB_PATH")
    if explicit:
        return explicit
    on_path = shutil.which("adb")
    if on_path:
        return on_path
    bundled = Path(adbutils.__file__).parent / "binaries" / "adb"
    if bundled.is_file():
        return str(bundled)
    raise DeviceError("no adb binary found; install adb or set ADBUTILS_ADB_PATH")


def server_is_listening(server: AdbServer, timeout: float = PROBE_TIMEOUT_S) -> bool:
    try:
        with socket.create_connection((server.host, server.port), timeout=timeout):
            return True
    except OSError:
        return False


def start_local_server(server: AdbServer) -> None:
    """`adb -P PORT start-server`, the way adb starts its own server on first use."""
    adb = find_adb_binary()
    env = dict(os.environ)
    # adb prefers ADB_SERVER_SOCKET over -P; the port we were asked for must win.
    env.pop("ADB_SERVER_SOCKET", None)
    env["ANDROID_ADB_SERVER_PORT"] = str(server.port)
    try:
        completed = subprocess.run(
            [adb, "-P", str(server.port), "start-server"],
            env=env,
            capture_output=True,
            timeout=SERVER_START_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DeviceError(f"could not start an adb server on port {server.port} with {adb}: {exc}") from None
    if completed.returncode != 0 or not server_is_listening(server, timeout=2.0):
        detail = (completed.stderr or completed.stdout).decode(errors="replace").strip().splitlines()
        reason = detail[-1] if detail else f"exit {completed.returncode}"
        raise DeviceError(f"could not start an adb server on port {server.port} with {adb}: {reason}")


def connect_server(server: AdbServer, start: bool = True) -> ServerClient:
    if not server_is_listening(server):
        if start and server.host in LOCAL_HOSTS:
            start_local_server(server)
        else:
            raise DeviceError(f"adb server {server} does not answer; check the host and that adb runs there")
    host = "127.0.0.1" if server.host in {"localhost", "0.0.0.0"} else server.host
    return ServerClient(server=server, client=AdbClient(host=host, port=server.port))


def connect_servers(servers: list[AdbServer], start: bool = True) -> list[ServerClient]:
    """Clients for every server, starting the local one when none runs on its port."""
    return [connect_server(server, start=start) for server in servers]


def connect_reachable(
    servers: list[AdbServer], start: bool = True
) -> tuple[list[ServerClient], list[tuple[AdbServer, str]]]:
    """Clients for the servers that answer, and (server, reason) for those that do not.

    One lab host being down must not stop work on the phones of the others; only when no server answers
    is it an error.
    """
    clients: list[ServerClient] = []
    unreachable: list[tuple[AdbServer, str]] = []
    for server in servers:
        try:
            clients.append(connect_server(server, start=start))
        except DeviceError as exc:
            unreachable.append((server, exc.message))
    if not clients:
        if len(unreachable) == 1:
            raise DeviceError(unreachable[0][1])
        names = ", ".join(str(server) for server, _ in unreachable)
        raise DeviceError(f"no adb server answers ({names or 'none configured'})")
    return clients, unreachable
