"""The virtual device through adbutils (which talks to the real adb server)."""

from __future__ import annotations

import os
import socket
import stat

import pytest
from adbutils import Network
from adbutils.errors import AdbError

from tests.vdevice.test_adb_cli import EchoServer


@pytest.fixture
def device(adb_server, vdevice):
    return adb_server.client().device(vdevice.serial)


def test_shell_and_shell2(device):
    assert device.shell("echo hello; echo err >&2") == "hello\nerr"
    v1 = device.shell2("echo x; false")
    assert (v1.returncode, v1.output) == (1, "x\n")
    v2 = device.shell2("echo out; echo err >&2; exit 4", v2=True)
    assert (v2.returncode, v2.stdout, v2.stderr) == (4, "out\n", "err\n")
    assert device.shell(["echo", "a b;c"]) == "a b;c"  # list arguments are shlex-quoted by adbutils


def _open_service(device, service: str):
    conn = device.open_transport()  # a transport to the device, then the device service on it
    conn.send_command(service)
    conn.check_okay()
    return conn


def test_exec_is_binary_safe(device):
    conn = _open_service(device, "exec:printf 'a\\0b\\377'")
    data = conn.read_until_close(encoding=None)
    assert data == b"a\0b\xff"


def test_props(device, vdevice):
    profile = vdevice.profile
    assert device.prop.model == profile.model
    assert device.prop.name == profile.product
    assert device.prop.device == profile.device
    assert device.getprop("ro.soc.model") == profile.soc_model
    assert device.getprop("ro.build.version.sdk") == str(profile.sdk)
    assert device.getprop("ro.does.not.exist") == ""
    listing = device.shell("getprop")
    assert f"[ro.product.model]: [{profile.model}]" in listing.splitlines()


def test_sync_push_pull_stat_list(device, vdevice, tmp_path):
    payload = os.urandom(1_000_003)
    source = tmp_path / "payload.bin"
    source.write_bytes(payload)
    device.sync.push(str(source), "/data/local/tmp/deep/er/payload.bin", mode=0o755)
    on_host = vdevice.sandbox_root / "deep" / "er" / "payload.bin"
    assert on_host.read_bytes() == payload
    assert stat.S_IMODE(on_host.stat().st_mode) == 0o777  # adbd widens the user bits to group and other
    info = device.sync.stat("/data/local/tmp/deep/er/payload.bin")
    assert info.size == len(payload)
    assert stat.S_ISREG(info.mode)
    assert not device.sync.exists("/data/local/tmp/missing")
    assert device.sync.read_bytes("/data/local/tmp/deep/er/payload.bin") == payload
    back = tmp_path / "back.bin"
    device.sync.pull("/data/local/tmp/deep/er/payload.bin", str(back))
    assert back.read_bytes() == payload
    names = {entry.path for entry in device.sync.list("/data/local/tmp")}
    assert {".", "..", "deep"} <= names
    # pushing to a directory puts the file inside it, like adb
    device.sync.push(str(source), "/data/local/tmp/deep")
    assert (vdevice.sandbox_root / "deep" / "payload.bin").read_bytes() == payload
    assert device.sync.stat("/data/local/tmp").mode & stat.S_IFDIR
    assert device.sync.stat("/data/local").mode & stat.S_IFDIR


def test_sync_errors(device):
    with pytest.raises(AdbError):
        device.sync.read_bytes("/data/local/tmp/no-such-file")
    with pytest.raises(AdbError):
        device.sync.push(b"x", "/system/forbidden.txt")


def test_root_and_unknown_services(device):
    assert "already running as root" in device.root()
    with pytest.raises(AdbError, match="closed"):
        _open_service(device, "no-such-service:")


def test_forward_and_create_connection(adb_server, device, vdevice):
    echo = EchoServer(vdevice)
    try:
        local = device.forward_port(echo.port)
        with socket.create_connection(("127.0.0.1", local), timeout=10) as conn:
            conn.sendall(b"ping")
            assert conn.recv(4) == b"ping"
        direct = device.create_connection(Network.TCP, echo.port)
        with direct:
            direct.sendall(b"pong")
            assert direct.recv(4) == b"pong"
        assert any(item.remote == f"tcp:{echo.port}" for item in device.forward_list())
    finally:
        echo.close()
