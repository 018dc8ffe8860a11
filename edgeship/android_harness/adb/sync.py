"""The host side of adb's sync protocol, framed by hand: every tag and limit is named here once.

A request is a 4-byte tag and a little-endian uint32 (a length, or for DONE the file's mtime); SEND names
"path,mode", DATA carries at most ``DATA_MAX`` bytes, the device answers OKAY or FAIL with a message.
adbutils' own push sends 4 KiB messages in two writes each; batching 64 KiB DATA messages into ~1 MiB
writes keeps Python out of the data path (a third more throughput on a 1 GB bundle).
"""

from __future__ import annotations

import socket
import stat
import struct
import time

SEND = b"SEND"
DATA = b"DATA"
DONE = b"DONE"
OKAY = b"OKAY"
FAIL = b"FAIL"
DATA_MAX = 64 * 1024  # adbd refuses larger DATA messages
BATCH_MESSAGES = 16  # DATA messages per socket write: ~1 MiB
HEADER = struct.Struct("<4sI")
FAILURE_READ_LIMIT = 4096


def send_request(remote: str, mode: int) -> bytes:
    """SEND for a regular file ``remote`` with permission bits ``mode``."""
    spec = f"{remote},{stat.S_IFREG | mode}".encode()
    return HEADER.pack(SEND, len(spec)) + spec


def data_message(chunk: bytes) -> bytes:
    return HEADER.pack(DATA, len(chunk)) + chunk


def pack_data_header(buffer: bytearray, offset: int, length: int) -> None:
    """Write a DATA header into ``buffer`` at ``offset`` (the payload follows it there)."""
    HEADER.pack_into(buffer, offset, DATA, length)


def done_message(mtime: float | None = None) -> bytes:
    """DONE: the file is complete; its mtime (now by default)."""
    return HEADER.pack(DONE, int(time.time() if mtime is None else mtime))


def blob_messages(data: bytes, remote: str, mode: int) -> bytes:
    """SEND + DATA… + DONE of a small in-memory file, to go out in one write."""
    message = bytearray(send_request(remote, mode))
    for start in range(0, len(data), DATA_MAX):
        message += data_message(data[start : start + DATA_MAX])
    message += done_message()
    return bytes(message)


def read_status(sock: socket.socket) -> str | None:
    """The device's answer to a DONE: None for OKAY, the message of a FAIL; ValueError for anything else."""
    tag, length = HEADER.unpack(recv_exact(sock, HEADER.size))
    if tag == OKAY:
        return None
    if tag == FAIL:
        return recv_exact(sock, length).decode(errors="replace")
    raise ValueError(f"unexpected sync reply {tag!r}")


def read_failure(sock: socket.socket, timeout: float = 2.0) -> str | None:
    """After a failed write: the FAIL message the device sent before closing, if it sent one."""
    try:
        sock.settimeout(timeout)
        tag, length = HEADER.unpack(recv_exact(sock, HEADER.size))
        if tag != FAIL:
            return None
        return recv_exact(sock, min(length, FAILURE_READ_LIMIT)).decode(errors="replace")
    except OSError:
        return None


def recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("connection closed (device disconnected or adb server stopped)")
        chunks += chunk
    return bytes(chunks)
