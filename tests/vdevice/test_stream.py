"""Stream.copy_to on its own: a failed write must not desynchronise the sync framing."""

from __future__ import annotations

import errno
import os
from typing import Any

import pytest

from edgeship.vdevice.transport import Stream


class _Connection:
    max_payload = 4096

    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...]] = []

    def send_packet(self, *packet: Any) -> None:
        self.sent.append(packet)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_disk_full_consumes_the_whole_block_then_raises() -> None:
    stream = Stream(_Connection(), 1, 2, "sync:")  # type: ignore[arg-type]
    block = os.urandom(3000)
    # The block spans two WRTE payloads; what follows it must still be readable after the failure.
    stream._deliver(bytearray(block[:1000]))
    stream._deliver(bytearray(block[1000:] + b"DONE\0\0\0\0"))
    fd = os.open("/dev/full", os.O_WRONLY)
    try:
        with pytest.raises(OSError) as failure:
            stream.copy_to(fd, len(block))
    finally:
        os.close(fd)
    assert failure.value.errno == errno.ENOSPC
    assert stream.read_exact(8) == b"DONE\0\0\0\0"


def test_copy_to_writes_every_byte(tmp_path: Any) -> None:
    stream = Stream(_Connection(), 1, 2, "sync:")  # type: ignore[arg-type]
    block = os.urandom(5000)
    for start in range(0, len(block), 1500):
        stream._deliver(bytearray(block[start : start + 1500]))
    target = tmp_path / "out"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT)
    try:
        stream.copy_to(fd, len(block))
    finally:
        os.close(fd)
    assert target.read_bytes() == block
