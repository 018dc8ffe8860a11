"""Socket specs (``tcp:``, ``localabstract:``...) and the small named services (``root:``, ``reboot:``...)."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import TYPE_CHECKING

from edgeship.vdevice.sandbox import DeviceNetworkRefused
from edgeship.vdevice.transport import Stream, StreamClosed

if TYPE_CHECKING:
    from edgeship.vdevice.device import VirtualDevice
    from edgeship.vdevice.transport import ServiceHandler

CONNECT_TIMEOUT_S = 5.0

# Replies adbd gives on a device that already runs adbd as root (userdebug, ro.secure=0).
TEXT_SERVICES = {
    "root:": "adbd is already running as root\n",
    "unroot:": "adbd not running as root\n",
    "remount:": "remount is not supported on a virtual device\n",
    "disable-verity:": "verity cannot be disabled/enabled - USER build\n",
    "enable-verity:": "verity cannot be disabled/enabled - USER build\n",
}


def open_socket_spec(device: VirtualDevice, name: str) -> ServiceHandler | None:
    """tcp:PORT[:HOST] and localabstract/localreserved/local:NAME; connect now, refuse on failure.

    The socket is made inside the device's network namespace (``Sandbox.connect``), so `adb forward` reaches
    what listens on the device's own loopback or abstract sockets, and never anything of the host's.
    """
    if name.startswith("tcp:"):
        port_text, _, host = name[len("tcp:") :].partition(":")
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            return None
        family, address = socket.AF_INET, (host or "127.0.0.1", int(port_text))
    elif name.startswith(("localabstract:", "localreserved:", "local:")):
        socket_name = name.split(":", 1)[1]
        if not socket_name:
            return None
        family, address = socket.AF_UNIX, "\0" + socket_name
    else:
        return None
    try:
        sock = device.sandbox.connect(family, address, CONNECT_TIMEOUT_S)
    except DeviceNetworkRefused as exc:
        device.log.warning("service %r refused: %s", name[:200], exc)
        return None
    except OSError as exc:
        device.log.info("service %r refused: %s", name[:200], exc)
        return None
    sock.settimeout(None)
    return lambda stream: _relay(stream, sock)


def _relay(stream: Stream, sock: socket.socket) -> None:
    """Copy bytes both ways until either side ends."""
    stream.on_close(lambda: _shutdown(sock))

    def to_socket() -> None:
        try:
            while (data := stream.read_some()) is not None:
                sock.sendall(data)
        except OSError:
            pass
        finally:
            _shutdown(sock, socket.SHUT_WR)

    threading.Thread(target=to_socket, daemon=True).start()
    try:
        while data := sock.recv(min(256 * 1024, stream.max_payload)):
            stream.write(data)
    except (OSError, StreamClosed):
        pass
    finally:
        _shutdown(sock)
        sock.close()


def _shutdown(sock: socket.socket, how: int = socket.SHUT_RDWR) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(how)


def open_named(device: VirtualDevice, name: str) -> ServiceHandler | None:
    if name in TEXT_SERVICES:
        text = TEXT_SERVICES[name]
        return lambda stream: stream.write(text.encode())
    if name.startswith("tcpip:"):
        port = name[len("tcpip:") :]
        if not port.isdigit():
            return None
        return lambda stream: stream.write(f"restarting in TCP mode port: {port}\n".encode())
    if name == "usb:":
        return lambda stream: stream.write(b"error: a virtual device has no USB\n")
    if name.startswith("reboot:") or name == "reboot":
        return lambda stream: _reboot(device, stream)
    return None


def _reboot(device: VirtualDevice, stream: Stream) -> None:
    # A reboot drops every connection and kills every command; the adb server reconnects by itself.
    stream.close()
    device.reboot()
