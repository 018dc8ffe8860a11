"""The virtual device through real adb servers (adbutils' 36.x and Debian's 29.x)."""

from __future__ import annotations


def test_connect_shell_exit_code(any_adb_server, vdevice_factory):
    device = vdevice_factory(any_adb_server)
    listing = any_adb_server.run("devices", "-l").stdout
    assert device.serial in listing
    assert "model:Virtual_Flagship_12G" in listing
    result = any_adb_server.run("-s", device.serial, "shell", "echo hi; exit 3")
    assert result.returncode == 3
    assert result.stdout == "hi\n"
