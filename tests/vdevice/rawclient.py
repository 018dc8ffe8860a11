"""A minimal adb *host* speaking straight to a virtual device, for protocol-level tests.

It is deliberately independent of edgeship.vdevice.packets (its own struct formats), so a framing bug in the
device cannot be hidden by the same bug here.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

CNXN, OPEN, OKAY, CLSE, WRTE = (
    int.from_bytes(tag, "little") for tag in (b"CNXN", b"OPEN", b"OKAY", b"CLSE", b"WRTE")
)


@dataclass
class Message:
    command: int
    arg0: int
    arg1: int
    data: bytes

    @property
    def name(self) -> str:
        return self.command.to_bytes(4, "little").decode("ascii", "replace")


def encode(command: int, arg0: int, arg1: int, data: bytes = b"") -> bytes:
    return (
        struct.pack("<6I", command, arg0, arg1, len(data), sum(data) & 0xFFFFFFFF, command ^ 0xFFFFFFFF)
        + data
    )


class RawHost:
    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.next_id = 100

    def close(self) -> None:
        self.sock.close()

    def send(self, command: int, arg0: int, arg1: int, data: bytes = b"") -> None:
        self.sock.sendall(encode(command, arg0, arg1, data))

    def _exact(self, size: int) -> bytes:
        out = bytearray()
        while len(out) < size:
            chunk = self.sock.recv(size - len(out))
            if not chunk:
                raise EOFError("device closed the connection")
            out += chunk
        return bytes(out)

    def receive(self) -> Message:
        command, arg0, arg1, length, check, magic = struct.unpack("<6I", self._exact(24))
        data = self._exact(length)
        assert magic == command ^ 0xFFFFFFFF, "bad magic from the device"
        assert check == sum(data) & 0xFFFFFFFF, "bad data_check from the device"
        return Message(command, arg0, arg1, data)

    def connect(self, max_payload: int = 1024 * 1024) -> Message:
        self.send(CNXN, 0x01000001, max_payload, b"host::features=shell_v2,cmd,stat_v2,ls_v2")
        reply = self.receive()
        assert reply.name == "CNXN", reply
        return reply

    def open(self, service: str) -> tuple[int, Message]:
        local = self.next_id
        self.next_id += 1
        self.send(OPEN, local, 0, service.encode() + b"\0")
        return local, self.receive()

    def read_stream(self, local: int) -> tuple[bytes, list[Message]]:
        """Collect WRTE data for ``local`` until the device closes it, acknowledging each packet."""
        data = bytearray()
        seen = []
        while True:
            message = self.receive()
            seen.append(message)
            if message.arg1 != local:
                continue
            if message.name == "WRTE":
                data += message.data
                self.send(OKAY, local, message.arg0)
            elif message.name == "CLSE":
                return bytes(data), seen
