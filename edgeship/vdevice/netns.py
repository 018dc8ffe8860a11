"""The device's own network namespace: a loopback of its own and nothing else.

A phone's processes reach its own loopback (``adb forward`` targets, local servers), not the host's: with the
host's network a command inside one virtual device could reach the host's adb server (port 5037, or its
abstract unix socket, which lives in the network namespace too) and from there drive every phone of a lab.

The namespace is created by one short-lived thread (``unshare(CLONE_NEWNET)`` changes only the calling
thread), which brings its ``lo`` up and keeps it alive by a file descriptor held by the daemon. Everything the
device runs is forked from a thread that has entered it for the moment (``entered``): a forked child inherits
the namespaces of the thread that forked it. The daemon's ``tcp:`` and ``localabstract:`` services create
their sockets the same way, so `adb forward` reaches what listens inside the device, never the host. Creating
a namespace needs CAP_SYS_ADMIN (root); without it the sandbox asks bubblewrap for a fresh one per command
(``--unshare-net``) and the socket services are refused.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import functools
import os
import socket
import struct
import threading
from collections.abc import Iterator

CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
_IFREQ = struct.Struct("16sH14x")


class NetworkUnavailable(Exception):
    """No namespace could be made here (not root, or namespaces disabled); the message says why."""


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _bring_loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = _IFREQ.pack(b"lo", 0)
        flags = _IFREQ.unpack(fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, _IFREQ.pack(b"lo", flags | IFF_UP))


class DeviceNetwork:
    """A network namespace held open by an fd; ``entered()`` runs a block of the calling thread inside it."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._host_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)

    @classmethod
    def create(cls) -> DeviceNetwork:
        outcome: dict[str, object] = {}

        def make() -> None:  # runs in a thread of its own: unshare moves only that thread
            libc = _libc()
            if libc.unshare(CLONE_NEWNET) != 0:
                outcome["error"] = os.strerror(ctypes.get_errno())
                return
            try:
                outcome["fd"] = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
                _bring_loopback_up()
            except OSError as exc:
                outcome["error"] = str(exc)

        thread = threading.Thread(target=make, name="vdevice-netns")
        thread.start()
        thread.join()
        fd = outcome.get("fd")
        if "error" in outcome:
            if isinstance(fd, int):
                os.close(fd)
            raise NetworkUnavailable(f"cannot create a network namespace: {outcome['error']}")
        assert isinstance(fd, int)
        return cls(fd)

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """The calling thread inside the device's namespace for the block (then back in the host's)."""
        libc = _libc()
        if libc.setns(self.fd, CLONE_NEWNET) != 0:
            raise OSError(
                ctypes.get_errno(), f"setns into the device's network: {os.strerror(ctypes.get_errno())}"
            )
        try:
            yield
        finally:
            if libc.setns(self._host_fd, CLONE_NEWNET) != 0:
                # Only this (service) thread stays inside: what it opens later is the device's, never the
                # host's.
                raise OSError(ctypes.get_errno(), "setns back into the host's network failed")

    def close(self) -> None:
        for fd in (self.fd, self._host_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
