"""What the device's shell looks like: Android's userland (mksh, toybox) and getprop, or the fallbacks."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from edgeship.vdevice import VirtualDevice
from tests.vdevice.rawclient import RawHost


def shell(device: VirtualDevice, command: str) -> str:
    host = RawHost(device.port)
    try:
        host.connect()
        local, reply = host.open(f"shell:{command}")
        assert reply.name == "OKAY"
        data, _ = host.read_stream(local)
        return data.decode()
    finally:
        host.close()


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    with VirtualDevice(name="userland", profile="vbudget4g", root=tmp_path_factory.mktemp("userland")) as vd:
        yield vd


def test_mksh_is_the_shell(device):
    if shutil.which("mksh") is None:
        pytest.skip("mksh is not installed (Debian package 'mksh')")
    assert "MIRBSD KSH" in shell(device, "echo $KSH_VERSION")


def test_toybox_applets_come_first_on_path(device):
    toybox = shutil.which("toybox")
    if toybox is None:
        pytest.skip("toybox is not installed (Debian package 'toybox')")
    applets = subprocess.run([toybox], capture_output=True, text=True, check=True).stdout.split()
    assert "ls" in applets
    bin_dir = "/system/bin" if device.confined else str(device.sandbox.bin_dir)
    assert shell(device, "command -v ls").strip() == f"{bin_dir}/ls"
    assert shell(device, "echo $PATH").startswith(bin_dir + ":")
    assert "python" not in applets and shell(device, "command -v python3").strip()  # the host's PATH follows


def test_getprop_lists_like_android(device):
    listing = shell(device, "getprop").splitlines()
    props = device.profile.system_properties(device.serialno)
    assert listing == [f"[{key}]: [{value}]" for key, value in props.items()]
    assert shell(device, "getprop ro.product.model") == device.profile.model + "\n"
    assert shell(device, "getprop no.such.prop fallback") == "fallback\n"


def test_confined_view_of_the_filesystem(device):
    if not device.confined:
        pytest.skip("bubblewrap (package 'bubblewrap') is not installed")
    assert shell(device, "cd /data/local/tmp && pwd") == "/data/local/tmp\n"
    assert shell(device, "test -w /sdcard && echo yes") == "yes\n"
    assert shell(device, "touch /usr/x 2>/dev/null || echo read-only") == "read-only\n"
    assert shell(device, "hostname") == "localhost\n"


def test_unconfined_when_asked_still_works(tmp_path):
    with VirtualDevice(name="loose", root=tmp_path / "loose", confine=False) as device:
        assert not device.confined
        assert shell(device, "pwd").strip() == str(device.sandbox_root)
        assert shell(device, "getprop ro.product.model").strip() == device.profile.model


@pytest.mark.parametrize("applet", ["sha256sum", "md5sum", "sha1sum"])
def test_digest_applets_match_hashlib(device, applet):
    import hashlib

    payload = os.urandom(300_000)
    (device.sandbox_root / "blob").write_bytes(payload)
    expected = hashlib.new(applet.removesuffix("sum"), payload).hexdigest()
    assert shell(device, f"{applet} /data/local/tmp/blob") == f"{expected}  /data/local/tmp/blob\n"
    assert shell(device, f"cat /data/local/tmp/blob | {applet}") == f"{expected}  -\n"
    assert shell(device, f"{applet} /data/local/tmp/missing 2>/dev/null; echo rc=$?") == "rc=1\n"
    check = shell(device, f"cd /data/local/tmp && {applet} blob > blob.sum && {applet} -c blob.sum")
    assert check == "blob: OK\n"
