"""Protocol-level behaviour, spoken by an independent raw host (tests/vdevice/rawclient.py)."""

from __future__ import annotations

import socket
import struct

import pytest

from edgeship.vdevice import VirtualDevice
from tests.vdevice.rawclient import CLSE, OKAY, WRTE, RawHost


@pytest.fixture
def device(tmp_path):
    with VirtualDevice(name="raw", root=tmp_path / "raw") as vd:
        yield vd


def test_banner_and_max_payload(device):
    host = RawHost(device.port)
    reply = host.connect(max_payload=4096)
    assert reply.arg0 == 0x01000001
    text = reply.data.decode()
    assert text.startswith("device::")
    assert f"ro.product.model={device.profile.model}" in text
    assert "features=shell_v2,cmd,stat_v2,ls_v2,fixed_push_mkdir" in text
    host.close()


def test_unknown_service_is_refused_with_clse_zero(device):
    host = RawHost(device.port)
    host.connect()
    local, reply = host.open("frobnicate:now")
    assert (reply.name, reply.arg0, reply.arg1) == ("CLSE", 0, local)
    local, reply = host.open("shell:echo still-serving")
    assert reply.name == "OKAY"
    data, _ = host.read_stream(local)
    assert data == b"still-serving\n"
    host.close()


def test_one_outstanding_write_per_stream(device):
    host = RawHost(device.port)
    host.connect(max_payload=4096)
    local, reply = host.open("exec:head -c 100000 /dev/zero")
    assert reply.name == "OKAY"
    device_id = reply.arg0
    first = host.receive()
    assert first.name == "WRTE" and len(first.data) <= 4096
    host.sock.settimeout(0.7)
    with pytest.raises(socket.timeout):
        host.receive()  # no second WRTE until we acknowledge the first
    host.sock.settimeout(10)
    total = len(first.data)
    host.send(OKAY, local, device_id)
    while True:
        message = host.receive()
        if message.command == CLSE:
            break
        assert message.command == WRTE and len(message.data) <= 4096
        total += len(message.data)
        host.send(OKAY, local, device_id)
    assert total == 100000
    host.close()


def test_shell_v2_packets_and_exit_code(device):
    host = RawHost(device.port)
    host.connect()
    local, reply = host.open("shell,v2,raw:cat; echo err >&2; exit 7")
    device_id = reply.arg0
    stdin = b"from stdin\n"
    host.send(WRTE, local, device_id, struct.pack("<BI", 0, len(stdin)) + stdin + struct.pack("<BI", 4, 0))
    data, _ = host.read_stream(local)
    packets = []
    while data:
        kind, length = struct.unpack("<BI", data[:5])
        packets.append((kind, data[5 : 5 + length]))
        data = data[5 + length :]
    stdout = b"".join(body for kind, body in packets if kind == 1)
    stderr = b"".join(body for kind, body in packets if kind == 2)
    assert (stdout, stderr) == (stdin, b"err\n")
    assert packets[-1] == (3, bytes([7]))
    host.close()


def test_sync_stream_split_across_writes(device):
    """SEND+DATA+DONE cut at arbitrary places must still produce the file (the host may split anywhere)."""
    host = RawHost(device.port)
    host.connect()
    local, reply = host.open("sync:")
    device_id = reply.arg0
    path = b"/data/local/tmp/split.bin,33188"
    body = bytes(range(256)) * 250  # one DATA block: at most 64 KiB
    stream = b"SEND" + struct.pack("<I", len(path)) + path
    stream += b"DATA" + struct.pack("<I", len(body)) + body + b"DONE" + struct.pack("<I", 1_700_000_000)
    for start in range(0, len(stream), 997):
        host.send(WRTE, local, device_id, stream[start : start + 997])
        ack = host.receive()
        assert ack.name == "OKAY", ack
    reply = host.receive()
    assert reply.name == "WRTE" and reply.data == b"OKAY\0\0\0\0"
    target = device.sandbox_root / "split.bin"
    assert target.read_bytes() == body
    assert int(target.stat().st_mtime) == 1_700_000_000
    host.close()


def test_localabstract_and_refused_tcp(device):
    name = f"edgeship-test-{device.port}"
    with device.sandbox.launching():  # abstract sockets live in a network namespace: the device's own
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind("\0" + name)
    server.listen(1)
    host = RawHost(device.port)
    try:
        host.connect()
        local, reply = host.open(f"localabstract:{name}")
        assert reply.name == "OKAY"
        peer, _ = server.accept()
        host.send(WRTE, local, reply.arg0, b"ping")
        assert host.receive().name == "OKAY"
        assert peer.recv(4) == b"ping"
        peer.sendall(b"pong")
        message = host.receive()
        assert (message.name, message.data) == ("WRTE", b"pong")
        peer.close()
        closed = host.receive()  # the device side ended: the stream closes
        assert (closed.name, closed.arg1) == ("CLSE", local)
        # nothing listens on this port: refused like adbd, CLSE(0, id)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            unused = probe.getsockname()[1]
        local, reply = host.open(f"tcp:{unused}")
        assert (reply.name, reply.arg0) == ("CLSE", 0)
    finally:
        host.close()
        server.close()
