"""Framing helpers, checked against independent encodings."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeship.vdevice import packets


@given(st.binary(max_size=5000))
def test_checksum_is_the_byte_sum(data: bytes) -> None:
    assert packets.checksum(data) == sum(data) & 0xFFFFFFFF


@given(
    st.sampled_from([packets.A_CNXN, packets.A_OPEN, packets.A_WRTE]), st.integers(0, 2**32 - 1), st.binary()
)
def test_pack_then_parse(command: int, arg: int, data: bytes) -> None:
    raw = packets.pack(command, arg, 7, data)
    header = packets.parse_header(raw[:24], packets.MAX_PAYLOAD)
    assert (header.command, header.arg0, header.arg1, header.data_length) == (command, arg, 7, len(data))
    assert raw[24:] == data
    # magic bytes on the wire, per the protocol reference table
    assert struct.unpack("<I", raw[20:24])[0] == command ^ 0xFFFFFFFF


def test_known_magic_bytes() -> None:
    raw = packets.pack(packets.A_CNXN, 1, 2)
    assert raw[20:24] == bytes.fromhex("bcb1a7b1")


def test_bad_magic_and_oversized_payload_are_malformed() -> None:
    header = struct.pack("<6I", packets.A_WRTE, 1, 2, 0, 0, 0)
    with pytest.raises(packets.MalformedPacket):
        packets.parse_header(header, packets.MAX_PAYLOAD)
    big = struct.pack("<6I", packets.A_WRTE, 1, 2, 4097, 0, packets.A_WRTE ^ 0xFFFFFFFF)
    with pytest.raises(packets.MalformedPacket):
        packets.parse_header(big, 4096)


def test_banner_escapes_separators_and_round_trips() -> None:
    banner = packets.make_banner({"ro.product.model": "a:b;c=d"}, ["shell_v2", "cmd"])
    assert banner.startswith(b"device::")
    parsed = packets.parse_banner(banner)
    assert parsed["type"] == "device"
    assert parsed["ro.product.model"] == "a_b_c_d"
    assert parsed["features"] == "shell_v2,cmd"
