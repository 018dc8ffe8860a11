"""ADB transport framing: the 24-byte message header, command tags, checksums.

A message is six little-endian u32 (command, arg0, arg1, data_length, data_check, magic) then the payload.
``data_check`` is the unsigned byte sum of the payload (receivers stopped checking it in 2017, but clients
that talk to adbd directly, like adb-shell, still verify it, so it is always filled in).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

try:  # numpy sums 1 MiB in ~0.1 ms; a Python sum() takes ~20 ms and would cap pull speed.
    import numpy as _np
except ImportError:  # pragma: no cover - numpy is a dependency of edgeship, but vdevice stands alone
    _np = None

HEADER = struct.Struct("<6I")
HEADER_SIZE = HEADER.size


def _tag(text: str) -> int:
    return int.from_bytes(text.encode("ascii"), "little")


A_SYNC = _tag("SYNC")
A_CNXN = _tag("CNXN")
A_AUTH = _tag("AUTH")
A_OPEN = _tag("OPEN")
A_OKAY = _tag("OKAY")
A_CLSE = _tag("CLSE")
A_WRTE = _tag("WRTE")
A_STLS = _tag("STLS")

COMMAND_NAMES = {
    A_SYNC: "SYNC",
    A_CNXN: "CNXN",
    A_AUTH: "AUTH",
    A_OPEN: "OPEN",
    A_OKAY: "OKAY",
    A_CLSE: "CLSE",
    A_WRTE: "WRTE",
    A_STLS: "STLS",
}

A_VERSION_MIN = 0x01000000
A_VERSION_SKIP_CHECKSUM = 0x01000001
A_VERSION = 0x01000001
MAX_PAYLOAD_V1 = 4 * 1024
MAX_PAYLOAD = 1024 * 1024


class MalformedPacket(Exception):
    """The peer sent something that is not an adb message; adbd drops the connection on these."""


def checksum(payload: bytes | bytearray | memoryview) -> int:
    """The unsigned byte sum of ``payload`` (what adb calls data_check)."""
    if not payload:
        return 0
    if _np is not None and len(payload) > 256:
        return int(_np.frombuffer(payload, dtype=_np.uint8).sum(dtype=_np.uint64)) & 0xFFFFFFFF
    return sum(bytes(payload)) & 0xFFFFFFFF


def pack_header(command: int, arg0: int, arg1: int, payload: bytes | bytearray | memoryview = b"") -> bytes:
    return HEADER.pack(
        command,
        arg0 & 0xFFFFFFFF,
        arg1 & 0xFFFFFFFF,
        len(payload),
        checksum(payload),
        command ^ 0xFFFFFFFF,
    )


def pack(command: int, arg0: int, arg1: int, payload: bytes = b"") -> bytes:
    """One whole message (header + payload) as bytes."""
    return pack_header(command, arg0, arg1, payload) + bytes(payload)


@dataclass(frozen=True)
class Header:
    command: int
    arg0: int
    arg1: int
    data_length: int
    data_check: int

    @property
    def name(self) -> str:
        return COMMAND_NAMES.get(self.command, f"0x{self.command:08x}")


def parse_header(raw: bytes | bytearray | memoryview, max_payload: int) -> Header:
    """Validate a 24-byte header the way adbd's check_header does: magic and length only."""
    command, arg0, arg1, length, check, magic = HEADER.unpack(raw)
    if magic != command ^ 0xFFFFFFFF:
        raise MalformedPacket(f"bad magic 0x{magic:08x} for command 0x{command:08x}")
    if length > max_payload:
        raise MalformedPacket(f"payload of {length} bytes exceeds the maximum {max_payload}")
    return Header(command, arg0, arg1, length, check)


def parse_banner(payload: bytes) -> dict[str, str]:
    """Split a CNXN identity string "type:serial:k=v;k=v" into its properties (plus 'type')."""
    text = payload.rstrip(b"\0").decode("utf-8", "replace")
    parts = text.split(":", 2)
    props: dict[str, str] = {"type": parts[0]}
    if len(parts) == 3:
        for item in parts[2].split(";"):
            key, sep, value = item.partition("=")
            if sep:
                props[key] = value
    return props


def make_banner(properties: dict[str, str], features: list[str]) -> bytes:
    """adbd's identity: "device::ro.product.name=..;ro.product.model=..;ro.product.device=..;features=..".

    The host splits on ':' ';' '=', so those characters are replaced in values.
    """
    clean = {k: _banner_safe(v) for k, v in properties.items()}
    body = "".join(f"{k}={v};" for k, v in clean.items()) + "features=" + ",".join(features)
    banner = ("device::" + body).encode("utf-8")
    if len(banner) > MAX_PAYLOAD_V1:
        raise ValueError("device banner longer than 4096 bytes")
    return banner


def _banner_safe(value: str) -> str:
    return value.replace(":", "_").replace(";", "_").replace("=", "_")
