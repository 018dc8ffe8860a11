"""A pushed file is in the device's page cache, charged to its RAM, in small folios: a phone after `adb push`.

Through a real adb server: `adb push`, then a process in the device looks at the file (mincore: resident?; a
mapped pass: read from storage? how much does it map?) while the host reads the device's memory cgroup. The
last test is the measurement that motivated it: the native runner's liblitert-lm.so, pushed by `edgeship
profile`, is mapped as on a phone whatever the host's readahead (and far larger here when its pages are cold).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from edgeship.vdevice import VirtualDevice, pagecache
from edgeship.vdevice.pagecache import drop_page_cache
from tests.vdevice.helpers import require_memory_cgroup

MIB = 1024 * 1024
FILE_MIB = 64

# Run in the device on a file: how much of it is resident before it is touched (mincore), then one mapped
# byte per MiB: the file-backed memory that mapped (RssFile) and what the kernel read from storage for it.
LOOK = textwrap.dedent(
    """
    import ctypes, json, mmap, os, sys
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t] + [ctypes.c_int] * 3 + [ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    def status(key):
        return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith(key))
    def read_bytes():
        return int(next(line for line in open("/proc/self/io") if line.startswith("read_bytes:")).split()[1])
    fd = os.open(sys.argv[1], os.O_RDONLY)
    size = os.fstat(fd).st_size
    address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    assert address not in (None, 2**64 - 1), ctypes.get_errno()
    vector = ctypes.create_string_buffer((size + mmap.PAGESIZE - 1) // mmap.PAGESIZE)
    assert libc.mincore(address, size, vector) == 0, ctypes.get_errno()
    resident = sum(byte & 1 for byte in vector.raw) * mmap.PAGESIZE
    rss, read = status("RssFile:"), read_bytes()
    for offset in range(0, size, 1 << 20):
        ctypes.string_at(address + offset, 1)
    mapped = status("RssFile:") - rss
    print(json.dumps({"size": size, "resident": resident, "mapped": mapped, "read": read_bytes() - read}))
    """
)


def make_file(path: Path, mib: int) -> Path:
    with open(path, "wb") as handle:
        for index in range(mib):
            handle.write(bytes([index % 251 + 1]) * MIB)
    return path


def look(adb_server: Any, serial: str, tmp_path: Path, device_path: str) -> dict[str, int]:
    """What a process in the device sees of ``device_path`` (see LOOK)."""
    script = tmp_path / "look.py"
    script.write_text(LOOK)
    assert adb_server.run("-s", serial, "push", str(script), "/data/local/tmp/look.py").returncode == 0
    result = adb_server.run("-s", serial, "shell", f"{sys.executable} /data/local/tmp/look.py {device_path}")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def push(adb_server: Any, serial: str, source: Path, device_path: str) -> None:
    result = adb_server.run("-s", serial, "push", str(source), device_path)
    assert result.returncode == 0, result.stderr


def test_a_pushed_file_is_in_the_device_s_page_cache_charged_to_it_in_small_folios(
    adb_server, vdevice, tmp_path
):
    require_memory_cgroup()
    source = make_file(tmp_path / "bundle.bin", FILE_MIB)
    before = vdevice.memory.counters()["file"]
    push(adb_server, vdevice.serial, source, "/data/local/tmp/bundle.bin")
    charged = vdevice.memory.counters()["file"] - before
    # the device's cgroup pays for the file (a page is charged to one cgroup: the daemon's holds none of it)
    assert FILE_MIB * MIB * 0.95 <= charged <= (FILE_MIB + 4) * MIB, charged / MIB
    seen = look(adb_server, vdevice.serial, tmp_path, "/data/local/tmp/bundle.bin")
    assert seen["size"] == FILE_MIB * MIB and seen["resident"] == seen["size"]
    # a mapped pass right after the push reads nothing from storage
    assert seen["read"] <= MIB, seen
    # 4 KiB folios: each touch maps its 64 KiB fault-around window (64 touches: ~4 MiB), not a large folio of
    # the host's readahead window (8 MiB here: the whole file)
    assert seen["mapped"] <= 16 * MIB, seen


def test_a_file_the_device_writes_itself_is_charged_to_it(adb_server, vdevice):
    require_memory_cgroup()
    before = vdevice.memory.counters()["file"]
    command = "dd if=/dev/zero of=/data/local/tmp/written.bin bs=65536 count=512 2>/dev/null && sync"
    assert adb_server.run("-s", vdevice.serial, "shell", command).returncode == 0
    charged = vdevice.memory.counters()["file"] - before
    assert 30 * MIB <= charged <= 40 * MIB, charged / MIB


def test_when_the_reader_fails_the_pushed_file_is_left_cold_never_free(
    adb_server, vdevice, tmp_path, monkeypatch
):
    require_memory_cgroup()
    monkeypatch.setattr(pagecache, "READER", "raise SystemExit('no reading today')")
    source = make_file(tmp_path / "f.bin", 24)
    before = vdevice.memory.counters()["file"]
    push(adb_server, vdevice.serial, source, "/data/local/tmp/f.bin")  # the push itself succeeds
    assert vdevice.memory.counters()["file"] - before <= MIB  # dropped: the device pays when it reads
    seen = look(adb_server, vdevice.serial, tmp_path, "/data/local/tmp/f.bin")
    assert seen["resident"] <= MIB, seen  # and nobody else holds it for it
    assert (vdevice.sandbox_root / "f.bin").read_bytes() == source.read_bytes()
    log = vdevice.log_file.read_text()
    assert "page cache of a pushed file left cold: the reader failed (exit 1: no reading today)" in log


def test_without_a_memory_cgroup_a_push_leaves_the_page_cache_where_it_is(adb_server, tmp_path):
    root = tmp_path / "hostram"
    device = VirtualDevice(name="hostram", root=root, log_file=root / "device.log", memory_limit=False)
    with device:
        adb_server.connect(device.serial)
        try:
            push(adb_server, device.serial, make_file(tmp_path / "f.bin", 4), "/data/local/tmp/f.bin")
            seen = look(adb_server, device.serial, tmp_path, "/data/local/tmp/f.bin")
        finally:
            adb_server.disconnect(device.serial)
    assert seen["resident"] == seen["size"] == 4 * MIB  # the daemon's writes, neither dropped nor re-read
    assert "moved into the device" not in (root / "device.log").read_text()


# ---- what motivated it: the native runner's library --------------------------------------------------------
def profile_peak_file(adb_server: Any, build: Path, serial: str, runs: Path) -> list[int]:
    """peak_file of each run of `edgeship profile` (native runner, the x86_64 default)."""
    env = {**os.environ, **adb_server.env}
    result = subprocess.run(
        [
            sys.executable, "-m", "edgeship", "profile", str(build), "--device", serial, "--prefill", "32",
            "--decode", "64", "--iterations", "2", "--warmup", "0", "-o", str(runs), "--json",
        ],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    [entry] = json.loads(result.stdout)
    profile = json.loads(Path(entry["profile"]).read_text())
    assert profile["runner"]["version"].startswith("native-"), profile["runner"]
    return [iteration["memory"]["peak_file"] for iteration in profile["iterations"]]


@pytest.mark.e2e
def test_the_native_runner_maps_its_just_pushed_library_as_on_a_phone(
    adb_server, vdevice, tiny_gemma4_build, tmp_path
):
    require_memory_cgroup()
    warm = profile_peak_file(adb_server, tiny_gemma4_build, vdevice.serial, tmp_path / "warm")
    [library] = (vdevice.sandbox_root / "edgeship" / "bin").glob("*/liblitert-lm.so")
    size = library.stat().st_size
    # every file-backed page of the runner (library, bundle, libc…) well below the library alone: the runner
    # touches about half of it and maps 4 KiB pages around its faults
    assert max(warm) <= 0.7 * size, (warm, size)

    # the same runs with the library as the daemon used to leave it: dropped, then read front to back in the
    # device (the push's sha256sum check does that): readahead brings it in the host's windows, large folios
    fd = os.open(library, os.O_RDONLY)
    try:
        drop_page_cache(fd)
    finally:
        os.close(fd)
    device_path = "/data/local/tmp/" + str(library.relative_to(vdevice.sandbox_root))
    checked = adb_server.run("-s", vdevice.serial, "shell", f"sha256sum {shlex.quote(device_path)}")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    readahead = profile_peak_file(adb_server, tiny_gemma4_build, vdevice.serial, tmp_path / "readahead")
    # never better that way; where the host's readahead is large (8 MiB here), far worse
    assert min(readahead) >= max(warm) - 4 * MIB, (warm, readahead)
    if read_ahead_kb(library) >= 1024:
        assert min(readahead) >= max(warm) + 16 * MIB, (warm, readahead)


def read_ahead_kb(path: Path) -> int:
    """The readahead of the block device holding ``path`` (0 when sysfs does not say)."""
    device = os.stat(path).st_dev
    queue = Path(f"/sys/dev/block/{os.major(device)}:{os.minor(device)}")
    for candidate in (queue / "queue" / "read_ahead_kb", queue / ".." / "queue" / "read_ahead_kb"):
        if candidate.exists():
            return int(candidate.read_text())
    return 0
