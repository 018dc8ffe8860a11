"""Sync path resolution: device paths map into the sandbox folders and never leave them."""

from __future__ import annotations

import errno
import os

import pytest

from edgeship.vdevice.paths import SandboxPathError
from edgeship.vdevice.sandbox import Sandbox


@pytest.fixture
def sandbox(tmp_path):
    box = Sandbox(tmp_path / "device", {"ro.product.model": "X"})
    box.data_dir.mkdir(parents=True)
    box.sdcard_dir.mkdir(parents=True)
    return box


def test_roots_and_virtual_directories(sandbox) -> None:
    assert sandbox.resolve("/data/local/tmp").host_path == sandbox.data_dir
    assert sandbox.resolve("/data/local/tmp/a/b.bin").host_path == sandbox.data_dir / "a" / "b.bin"
    assert sandbox.resolve("/sdcard/x").host_path == sandbox.sdcard_dir / "x"
    for virtual in ("/", "/data", "/data/local", "/data/local/", "//data/./local"):
        assert sandbox.resolve(virtual).is_virtual_directory, virtual


@pytest.mark.parametrize(
    "path", ["/etc/passwd", "/data/local/tmp/../../../etc/passwd", "/data/local/tmp/../x", "/system/bin/sh"]
)
def test_paths_outside_are_refused(sandbox, path) -> None:
    with pytest.raises(SandboxPathError) as caught:
        sandbox.resolve(path)
    assert caught.value.errno == errno.ENOENT


def test_dotdot_that_stays_inside_is_fine(sandbox) -> None:
    (sandbox.data_dir / "a").mkdir()
    assert sandbox.resolve("/data/local/tmp/a/../b").host_path == sandbox.data_dir / "b"
    assert sandbox.resolve("/sdcard/../data/local/tmp/c").host_path == sandbox.data_dir / "c"


def test_symlinks_are_followed_as_device_paths(sandbox, tmp_path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(str(outside), sandbox.data_dir / "escape")  # a host path: on the device it does not exist
    os.symlink("/etc", sandbox.data_dir / "etc")
    os.symlink("../../../..", sandbox.data_dir / "up")
    os.symlink("/sdcard", sandbox.data_dir / "card")
    os.symlink("loop", sandbox.data_dir / "loop")
    for path in ("/data/local/tmp/escape/x", "/data/local/tmp/etc/passwd", "/data/local/tmp/up/etc"):
        with pytest.raises(SandboxPathError):
            sandbox.resolve(path)
    assert sandbox.resolve("/data/local/tmp/card/f").host_path == sandbox.sdcard_dir / "f"
    with pytest.raises(SandboxPathError) as caught:
        sandbox.resolve("/data/local/tmp/loop")
    assert caught.value.errno == errno.ELOOP
    # not following the last component: the link itself, inside the sandbox
    assert (
        sandbox.resolve("/data/local/tmp/escape", follow_last=False).host_path == sandbox.data_dir / "escape"
    )
