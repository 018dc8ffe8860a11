"""A virtual device has its RAM: a memory cgroup of the profile's size, its own /proc/meminfo, real OOM kills.

Through the real CLI and a real adb server: `vdevice start`, `adb shell`, `adb push`, `edgeship devices`,
`vdevice set-ram`. The tests that need a memory cgroup skip, saying why, where the host cannot make one (not
root, no memory controller); CI runs as root, where they must run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
import textwrap
import time
from pathlib import Path

import pytest

from edgeship.vdevice import VirtualDevice, memory
from edgeship.vdevice.meminfo import render
from edgeship.vdevice.memory import MemoryLimitError, MemoryUnavailable, parse_size, v2_devices_parent
from tests.vdevice.helpers import host_pids_with, require_memory_cgroup

MIB = 1024 * 1024


def meminfo_of(text: str) -> dict[str, int]:
    """/proc/meminfo text → field → bytes."""
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if value.strip().endswith("kB"):
            fields[key] = int(value.split()[0]) * 1024
    return fields


def small_profile(tmp_path: Path, ram_bytes: int) -> Path:
    path = tmp_path / f"small{ram_bytes // MIB}.yaml"
    path.write_text(f"model: Small Phone\ndevice: small\nram_bytes: {ram_bytes}\n")
    return path


def adb_shell(adb_server, serial: str, command: str, timeout: float = 120):
    return adb_server.run("-s", serial, "shell", command, timeout=timeout)


# ---- what the device reports ---------------------------------------------------------------------------
@pytest.mark.e2e
def test_vbudget4g_has_4_gb_inside_and_in_edgeship_devices(edgeship_cli, adb_server):
    require_memory_cgroup()
    record = edgeship_cli.start("--name", "budget", "--profile", "vbudget4g")
    inside = meminfo_of(adb_shell(adb_server, record["serial"], "cat /proc/meminfo").stdout)
    assert inside["MemTotal"] == 4 * 1024**3
    assert 0 < inside["MemAvailable"] <= inside["MemTotal"] and inside["SwapTotal"] == 0
    listing = edgeship_cli("devices", "--adb", adb_server.address, "--json")
    assert listing.returncode == 0, listing.stderr
    facts = next(entry for entry in json.loads(listing.stdout) if entry["serial"] == record["serial"])
    assert facts["ram_total"] == 4 * 1024**3
    assert 0 < facts["ram_available"] <= facts["ram_total"]
    assert record["ram_limit_bytes"] == 4 * 1024**3 and record["memory_cgroup"]


def test_meminfo_follows_what_the_cgroup_uses(adb_server, vdevice_factory, tmp_path):
    require_memory_cgroup()
    device = vdevice_factory(adb_server, profile=str(small_profile(tmp_path, 256 * MIB)))
    client = adb_server.client().device(device.serial)
    before = meminfo_of(client.shell("cat /proc/meminfo"))
    hold = "import time; b = b'x' * (96 << 20); print('held', flush=True); time.sleep(60)"
    holder = client.shell(f'{sys.executable} -c "{hold}"', stream=True)
    try:
        assert holder.recv(5) == b"held\n"
        time.sleep(1.2)  # the file is rewritten every 0.5 s
        during = meminfo_of(client.shell("cat /proc/meminfo"))
        used = int(client.shell("cat /dev/memcg/memory.usage_in_bytes /dev/memcg/memory.current 2>/dev/null"))
    finally:
        holder.close()
    assert during["MemTotal"] == before["MemTotal"] == 256 * MIB
    assert before["MemFree"] - during["MemFree"] >= 90 * MIB
    assert abs((during["MemTotal"] - during["MemFree"]) - used) <= 16 * MIB
    assert during["AnonPages"] >= 90 * MIB
    assert during["MemFree"] <= during["MemAvailable"] <= during["MemTotal"]


# ---- the kernel's OOM killer ---------------------------------------------------------------------------
@pytest.mark.e2e
def test_a_program_past_the_ram_is_oom_killed_and_the_kernel_records_it(edgeship_cli, adb_server, tmp_path):
    require_memory_cgroup()
    record = edgeship_cli.start("--name", "tiny", "--profile", str(small_profile(tmp_path, 128 * MIB)))
    serial = record["serial"]
    oom_record = "cat /dev/memcg/memory.oom_control /dev/memcg/memory.events 2>/dev/null | grep '^oom_kill '"
    assert adb_shell(adb_server, serial, oom_record).stdout == "oom_kill 0\n"
    grow = adb_shell(adb_server, serial, f"{sys.executable} -c \"b = b'x' * (400 << 20); print('fits')\"")
    assert grow.returncode == 137 and "fits" not in grow.stdout  # SIGKILL, by the kernel
    assert adb_shell(adb_server, serial, oom_record).stdout == "oom_kill 1\n"
    # the device goes on: what fits still runs
    assert (
        adb_shell(adb_server, serial, f"{sys.executable} -c \"b = b'x' * (32 << 20); print('fits')\"").stdout
        == "fits\n"
    )


# ---- file pages reclaimed and faulted in again ---------------------------------------------------------
# Two sequential passes over a mapped file; per pass, the bytes the kernel read from storage for it
# (/proc/self/io read_bytes: mmap readahead makes most faults minor, so major faults say little) and the file
# pages the device's cgroup faulted in again after reclaiming them (memory.stat workingset_refault_file).
SCAN = textwrap.dedent(
    """
    import mmap, sys
    def read_bytes():
        return int(next(l for l in open("/proc/self/io") if l.startswith("read_bytes:")).split()[1])
    def refaults():
        stat = dict(line.split() for line in open("/dev/memcg/memory.stat"))
        return int(stat.get("total_workingset_refault_file", stat.get("workingset_refault_file", 0)))
    with open(sys.argv[1], "rb") as handle:
        pages = mmap.mmap(handle.fileno(), 0, prot=mmap.PROT_READ)
    for _ in range(2):
        read, refaulted = read_bytes(), refaults()
        sum(pages[offset] for offset in range(0, len(pages), 4096))
        print(read_bytes() - read, refaults() - refaulted)
    """
)


def scan_twice(adb_server, serial: str, name: str = "bundle.bin") -> list[tuple[int, int]]:
    """(bytes read from storage, pages refaulted) of each pass over the 256 MiB file /data/local/tmp/NAME."""
    output = adb_shell(adb_server, serial, f"{sys.executable} /data/local/tmp/scan.py /data/local/tmp/{name}")
    assert output.returncode == 0, output.stdout + output.stderr
    return [
        (int(read), int(refaulted))
        for read, refaulted in (line.split() for line in output.stdout.split("\n") if line)
    ]


def cached_file_bytes(adb_server, serial: str) -> int:
    """The device's page cache (its memory.stat, as the device reads it)."""
    stat = dict(
        line.split()
        for line in adb_shell(adb_server, serial, "cat /dev/memcg/memory.stat").stdout.splitlines()
    )
    return int(stat.get("total_cache", stat.get("file", 0)))


@pytest.mark.e2e
def test_mapped_file_pages_are_reclaimed_under_the_limit_and_set_ram(edgeship_cli, adb_server, tmp_path):
    require_memory_cgroup()
    record = edgeship_cli.start("--name", "pager", "--profile", str(small_profile(tmp_path, 96 * MIB)))
    serial, name = record["serial"], record["name"]
    bundle = tmp_path / "bundle.bin"
    with open(bundle, "wb") as handle:
        for _ in range(256):
            handle.write(b"\1" * MIB)
    pushed = adb_server.run("-s", serial, "push", str(bundle), "/data/local/tmp/bundle.bin")
    assert pushed.returncode == 0, pushed.stderr
    # the push leaves what fits of the file in the device's page cache, charged to it: never more than its RAM
    cached = cached_file_bytes(adb_server, serial)
    assert 48 * MIB <= cached <= 96 * MIB, cached / MIB
    peak = int(adb_shell(adb_server, serial, "cat /dev/memcg/memory.max_usage_in_bytes").stdout)
    assert peak <= 96 * MIB
    (tmp_path / "scan.py").write_text(SCAN)
    assert adb_server.run("-s", serial, "push", str(tmp_path / "scan.py"), "/data/local/tmp/").returncode == 0

    # 256 MiB mapped in a 96 MiB device: most of it comes from storage, and the second pass reads from storage
    # again what the limit made the kernel reclaim
    (first, _), (again, refaulted) = scan_twice(adb_server, serial)
    assert first >= 128 * MIB, "more of the file was cached than the device's RAM holds"
    assert again >= 128 * MIB and refaulted >= 128 * MIB // 4096, (again, refaulted)
    peak = int(adb_shell(adb_server, serial, "cat /dev/memcg/memory.max_usage_in_bytes").stdout)
    assert peak <= 96 * MIB

    # with 1 GiB the file stays resident: the second pass is served from the page cache
    grown = edgeship_cli("vdevice", "set-ram", name, "1G", "--json")
    assert grown.returncode == 0, grown.stderr
    assert json.loads(grown.stdout)["ram_bytes"] == 1024 * MIB
    _, (resident, refaulted) = scan_twice(adb_server, serial)
    assert resident <= 16 * MIB and refaulted <= 16 * MIB // 4096, (resident, refaulted)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        total = meminfo_of(adb_shell(adb_server, serial, "cat /proc/meminfo").stdout)["MemTotal"]
        if total == 1024 * MIB:
            break
        time.sleep(0.2)
    assert total == 1024 * MIB
    # where it fits, a file is resident as soon as its push returns: even the first pass reads no storage
    pushed = adb_server.run("-s", serial, "push", str(bundle), "/data/local/tmp/again.bin")
    assert pushed.returncode == 0, pushed.stderr
    (first, _), _ = scan_twice(adb_server, serial, "again.bin")
    assert first <= 16 * MIB, first

    # reset: back to the profile's RAM (lowering reclaims the page cache at once)
    assert edgeship_cli("vdevice", "set-ram", serial, "reset").returncode == 0
    listed = json.loads(edgeship_cli("vdevice", "list", "--json").stdout)
    assert [entry["ram_limit_bytes"] for entry in listed] == [96 * MIB]


def test_set_ram_errors_are_one_line(edgeship_cli, tmp_path):
    require_memory_cgroup()
    edgeship_cli.start(
        "--name", "limits", "--no-connect", "--profile", str(small_profile(tmp_path, 64 * MIB))
    )
    for size, code, words in (("lots", 2, "not a size"), ("1M", 5, "below"), ("64M", 5, "no running")):
        device = "nobody" if words == "no running" else "limits"
        result = edgeship_cli("vdevice", "set-ram", device, size)
        assert result.returncode == code and words in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


# ---- membership, lifetime ------------------------------------------------------------------------------
def sleepers() -> list[int]:
    """Host pids of the three sleeps (toybox's setsid and nohup keep their own name: `setsid sleep 4711`)."""
    found = []
    for pid in host_pids_with("sleep 471"):
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"-c\0" not in cmdline and re.search(rb"sleep\x00471[123]\x00$", cmdline):
                found.append(pid)
    return found


def test_every_process_the_shell_starts_is_in_the_cgroup_and_the_cgroup_goes_at_stop(adb_server, vdevice):
    require_memory_cgroup()
    cgroup = vdevice.memory.path
    client = adb_server.client().device(vdevice.serial)
    # a new session, a double fork under nohup, a plain background job: all stay members
    command = "setsid sleep 4711 & (nohup sleep 4712 >/dev/null 2>&1 &); sleep 4713 & echo started; wait"
    running = client.shell(command, stream=True)
    try:
        assert running.recv(8) == b"started\n"
        deadline = time.monotonic() + 10
        while len(sleepers()) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        pids = sleepers()
        assert len(pids) == 3
        members = {int(pid) for pid in (cgroup / "cgroup.procs").read_text().split()}
        assert set(pids) <= members
        assert client.shell("cat /proc/self/cgroup").count(cgroup.name) == 1
    finally:
        running.close()
    vdevice.stop()
    assert not cgroup.exists()


def test_without_a_memory_cgroup_the_device_warns_and_has_the_host_s_ram(tmp_path, monkeypatch, caplog):
    def unavailable(_name: str, _limit: int) -> memory.MemoryCgroup:
        raise MemoryUnavailable("a memory cgroup needs root")

    monkeypatch.setattr(memory.MemoryCgroup, "create", unavailable)
    with caplog.at_level(logging.WARNING), VirtualDevice(name="hostram", root=tmp_path / "d") as device:
        assert device.memory is None
        warnings = [r.getMessage() for r in caplog.records if "memory cgroup" in r.getMessage()]
        assert warnings == ["no memory cgroup (a memory cgroup needs root): the device has the host's RAM"]
        from tests.vdevice.test_userland import shell

        host = meminfo_of(Path("/proc/meminfo").read_text())["MemTotal"]
        assert meminfo_of(shell(device, "cat /proc/meminfo"))["MemTotal"] == host


# ---- units ---------------------------------------------------------------------------------------------
def test_sizes_are_binary_units():
    assert parse_size("4G") == 4 * 1024**3
    assert parse_size("512M") == parse_size("512MiB") == parse_size("512mb") == 512 * MIB
    assert parse_size("1.5G") == 1536 * MIB
    assert parse_size("4096") == 4096
    for bad in ("", "G", "4X", "-1G", "four"):
        with pytest.raises(MemoryLimitError):
            parse_size(bad)


def test_render_is_the_kernel_layout_and_stays_inside_the_device():
    counters = {"file": 40 * MIB, "active_file": 10 * MIB, "inactive_file": 30 * MIB, "anon": 20 * MIB}
    text = render(limit=128 * MIB, usage=60 * MIB, counters=counters, host_total=64 * 1024 * MIB)
    assert text.splitlines()[0] == "MemTotal:         131072 kB"
    fields = meminfo_of(text)
    assert fields["MemFree"] == 68 * MIB and fields["MemAvailable"] == 108 * MIB
    assert fields["Cached"] == 40 * MIB and fields["AnonPages"] == 20 * MIB
    # a limit above the host's RAM is the host's RAM; usage above the limit never makes free negative
    fields = meminfo_of(render(limit=1 << 40, usage=2 << 40, counters={}, host_total=8 * 1024 * MIB))
    assert fields["MemTotal"] == 8 * 1024 * MIB and fields["MemFree"] == 0


# ---- cgroup v2 (this machine has v1: the v2 decisions and file names are checked on a folder) -------------
def test_v2_device_cgroups_go_where_v2_allows_them(tmp_path):
    root = tmp_path / "unified"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpu io memory pids\n")
    (root / "cgroup.subtree_control").write_text("")
    # the root cgroup may hold processes and hand memory down: devices go below it, memory enabled for them
    assert v2_devices_parent(root, root) == root
    assert (root / "cgroup.subtree_control").read_text() == "+memory"
    # a service's cgroup holds the daemon: v2 allows no processes where memory is handed down, so beside it
    own = root / "system.slice" / "ci.service"
    own.mkdir(parents=True)
    (own / "memory.max").write_text("max\n")
    (own / "cgroup.controllers").write_text("memory pids\n")
    assert v2_devices_parent(own, root) == own.parent
    (own / "cgroup.controllers").write_text("pids\n")
    with pytest.raises(MemoryUnavailable, match="not delegated"):
        v2_devices_parent(own, root)
    # a cgroup namespace's root (a container) that holds the daemon: nowhere to go
    (own / "cgroup.controllers").write_text("memory pids\n")
    with pytest.raises(MemoryUnavailable, match="holds processes"):
        v2_devices_parent(own, own)


def test_v2_and_v1_file_names(tmp_path):
    v2 = tmp_path / "v2"
    v2.mkdir()
    for name, text in {
        "memory.max": "max\n",
        "memory.current": "1234\n",
        "memory.swap.max": "max\n",
        "memory.events": "low 0\nhigh 0\nmax 7\noom 2\noom_kill 1\n",
        "memory.stat": "anon 100\nfile 200\nactive_file 50\ninactive_file 150\nworkingset_refault_file 9\n",
    }.items():
        (v2 / name).write_text(text)
    cgroup = memory.MemoryCgroup(v2, 2)
    cgroup.set_limit(64 * MIB)
    assert (v2 / "memory.max").read_text() == str(64 * MIB) and (v2 / "memory.swap.max").read_text() == "0"
    assert cgroup.limit() == 64 * MIB and cgroup.usage() == 1234 and cgroup.oom_kills() == 1
    assert cgroup.counters() == {
        "anon": 100,
        "file": 200,
        "active_file": 50,
        "inactive_file": 150,
        "refault_file": 9,
    }
    v1 = tmp_path / "v1"
    v1.mkdir()
    (v1 / "memory.limit_in_bytes").write_text(str(128 * MIB))
    (v1 / "memory.memsw.limit_in_bytes").write_text(str(128 * MIB))
    (v1 / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
    cgroup = memory.MemoryCgroup(v1, 1)
    cgroup.set_limit(256 * MIB)  # growing: memsw first (the kernel wants memsw >= memory at every step)
    assert (v1 / "memory.limit_in_bytes").read_text() == (v1 / "memory.memsw.limit_in_bytes").read_text()
    assert cgroup.limit() == 256 * MIB and cgroup.oom_kills() == 3
    with pytest.raises(MemoryLimitError, match="below"):
        cgroup.set_limit(MIB)
