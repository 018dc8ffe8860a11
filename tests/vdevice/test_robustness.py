"""The daemon never dies, leaks no process and writes nothing outside its sandbox."""

from __future__ import annotations

import contextlib
import os
import random
import struct
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from adbutils.errors import AdbError, AdbTimeout
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeship.vdevice import VirtualDevice
from tests.vdevice.helpers import host_pids_with
from tests.vdevice.rawclient import OPEN, WRTE, RawHost, encode

COMMANDS = [
    int.from_bytes(tag, "little") for tag in (b"CNXN", b"OPEN", b"OKAY", b"CLSE", b"WRTE", b"AUTH", b"STLS")
]


def wait_until_gone(marker: str, timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = host_pids_with(marker)
        if not left:
            return []
        time.sleep(0.1)
    return host_pids_with(marker)


def wait_until_present(marker: str, timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = host_pids_with(marker)
        if found:
            return found
        time.sleep(0.05)
    return []


def serves(device: VirtualDevice) -> bool:
    host = RawHost(device.port)
    try:
        host.connect()
        local, reply = host.open("shell:echo alive")
        data, _ = host.read_stream(local)
        return reply.name == "OKAY" and data == b"alive\n"
    finally:
        host.close()


@pytest.fixture(scope="module")
def fuzz_device(tmp_path_factory):
    with VirtualDevice(name="fuzz", root=tmp_path_factory.mktemp("fuzz")) as vd:
        yield vd


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=1, max_size=600))
def test_random_bytes_do_not_kill_the_daemon(fuzz_device, garbage):
    host = RawHost(fuzz_device.port, timeout=5)
    with contextlib.suppress(OSError):
        host.sock.sendall(garbage)
    host.close()
    assert serves(fuzz_device)


packet = st.tuples(
    st.sampled_from(COMMANDS) | st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1) | st.integers(0, 8),
    st.integers(0, 2**32 - 1) | st.integers(0, 8),
    st.binary(max_size=300)
    | st.sampled_from([b"shell:true\0", b"sync:\0", b"tcp:1\0", b"STAT\x04\x00\x00\x00/xyz"]),
    st.booleans(),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(packet, max_size=12))
def test_random_packets_after_connect(fuzz_device, sequence):
    host = RawHost(fuzz_device.port, timeout=5)
    try:
        host.connect()
        for command, arg0, arg1, data, break_magic in sequence:
            raw = bytearray(encode(command, arg0, arg1, data))
            if break_magic:
                raw[20] ^= 0xFF
            host.sock.sendall(raw)
    except OSError:
        pass  # the device may drop a connection that sent garbage, like adbd
    finally:
        host.close()
    assert serves(fuzz_device)
    # whatever the garbage started ends with its connection
    deadline = time.monotonic() + 10
    while len(fuzz_device.processes) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(fuzz_device.processes) == 0


def test_client_disconnecting_mid_push(tmp_path):
    with VirtualDevice(name="midpush", root=tmp_path / "midpush") as device:
        host = RawHost(device.port)
        host.connect()
        local, reply = host.open("sync:")
        path = b"/data/local/tmp/partial.bin,33188"
        block = os.urandom(65536)
        host.send(WRTE, local, reply.arg0, b"SEND" + struct.pack("<I", len(path)) + path)
        host.receive()
        for _ in range(5):
            host.send(WRTE, local, reply.arg0, b"DATA" + struct.pack("<I", len(block)) + block)
            host.receive()
        host.close()  # gone without DONE
        deadline = time.monotonic() + 5
        while (device.sandbox_root / "partial.bin").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not (device.sandbox_root / "partial.bin").exists(), "the partial file is removed, like adbd"
        assert serves(device)


def test_stream_close_and_connection_drop_kill_the_process_group(tmp_path):
    marker_a, marker_b, marker_c, marker_d = (str(random.randint(10**6, 10**7)) for _ in range(4))
    with VirtualDevice(name="leaks", root=tmp_path / "leaks") as device:
        host = RawHost(device.port)
        host.connect()
        # 1. the host closes the stream while a command and its background child run
        local, reply = host.open(f"shell:sleep {marker_a} & sleep {marker_a}")
        assert wait_until_present(marker_a)
        host.send(int.from_bytes(b"CLSE", "little"), local, reply.arg0)
        assert wait_until_gone(marker_a) == []
        # 2. a command that exits leaves a daemonised grandchild behind: it goes with the stream (with its
        # PID namespace; unconfined, a process that leaves its session escapes, as on any Linux host)
        daemonise = f"setsid sleep {marker_b} >/dev/null 2>&1 </dev/null & p=$!; "
        daemonise += "sleep 0.3; kill -0 $p && echo alive"
        local, reply = host.open(f"shell:{daemonise}")
        data, _ = host.read_stream(local)
        assert data == b"alive\n"
        if device.confined:
            assert wait_until_gone(marker_b) == []
        else:
            for pid in host_pids_with(marker_b):
                os.kill(pid, 9)
        # 3. an interactive shell on a terminal, running a job when the host closes the stream
        local, reply = host.open("shell,v2,pty:")
        command = f"sleep {marker_d} & sleep {marker_d}\n".encode()
        host.send(WRTE, local, reply.arg0, struct.pack("<BI", 0, len(command)) + command)
        assert wait_until_present(marker_d)
        host.send(int.from_bytes(b"CLSE", "little"), local, reply.arg0)
        assert wait_until_gone(marker_d) == []
        # 4. the TCP connection drops while a command runs
        host.send(OPEN, 500, 0, f"shell,v2:sleep {marker_c}\0".encode())
        assert wait_until_present(marker_c)
        host.close()
        assert wait_until_gone(marker_c) == []
        assert serves(device)
        assert len(device.processes) == 0


def test_a_hung_up_command_runs_its_hup_trap(tmp_path):
    """adbd SIGHUPs a command when the host goes and a trap may tidy up (the push's assembly script removes
    its attempt folder so). Main hung up bubblewrap too: it died at once and took the device's PID namespace
    with it, SIGKILLing the command in the middle of its trap."""
    marker = str(random.randint(10**6, 10**7))
    with VirtualDevice(name="hup", root=tmp_path / "hup") as device:
        host = RawHost(device.port)
        host.connect()
        trap = "trap 'sleep 0.2; echo tidied > /data/local/tmp/hup; exit 0' HUP"
        local, reply = host.open(f"shell,v2:{trap}; while :; do sleep {marker}; done")
        assert wait_until_present(marker)
        host.send(int.from_bytes(b"CLSE", "little"), local, reply.arg0)
        assert wait_until_gone(marker) == []
        deadline = time.monotonic() + 5
        while not (device.sandbox_root / "hup").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (device.sandbox_root / "hup").read_text() == "tidied\n"
        host.close()


def test_adbutils_timeout_kills_the_command(adb_server, vdevice):
    marker = str(random.randint(10**6, 10**7))
    device = adb_server.client().device(vdevice.serial)
    with pytest.raises((AdbTimeout, AdbError)):
        device.shell(f"sleep {marker}", timeout=1)
    assert wait_until_gone(marker) == []


def test_concurrent_shells_and_pushes(adb_server, vdevice, tmp_path):
    device = adb_server.client().device(vdevice.serial)
    payloads = {i: os.urandom(2_000_000 + i) for i in range(4)}
    for i, data in payloads.items():
        (tmp_path / f"p{i}").write_bytes(data)

    def push(i: int) -> bool:
        device.sync.push(str(tmp_path / f"p{i}"), f"/data/local/tmp/conc/p{i}")
        return device.sync.read_bytes(f"/data/local/tmp/conc/p{i}") == payloads[i]

    def shell(i: int) -> bool:
        result = device.shell2(f"sleep 0.{i}; echo shell-{i}; exit {i}", v2=True)
        return result.returncode == i and result.stdout == f"shell-{i}\n"

    with ThreadPoolExecutor(max_workers=8) as pool:
        jobs = [pool.submit(push, i) for i in payloads] + [pool.submit(shell, i) for i in range(6)]
        assert all(job.result(timeout=120) for job in jobs)


def test_concurrent_pushes_of_one_path_all_succeed(adb_server, vdevice, tmp_path):
    """adbd lets two pushes of one path both succeed (the last one's bytes stay); two `edgeship push` runs
    write the store marker at once. Main's device removed the old file, then created the new one with O_EXCL,
    and a SEND that lost the race in between failed with "couldn't create file: File exists"."""
    from concurrent.futures import ThreadPoolExecutor

    device = adb_server.client().device(vdevice.serial)
    sources = []
    for index in range(4):
        source = tmp_path / f"marker-{index}"
        source.write_bytes(bytes([index]) * 100)
        sources.append(source)
    with ThreadPoolExecutor(4) as pool:
        for _ in range(25):
            list(pool.map(lambda source: device.sync.push(str(source), "/data/local/tmp/marker"), sources))
    assert (vdevice.sandbox_root / "marker").read_bytes() in {source.read_bytes() for source in sources}


def test_several_devices_on_one_server(adb_server, vdevice_factory):
    devices = [
        vdevice_factory(adb_server, name=f"multi{i}", profile=p)
        for i, p in enumerate(["vflagship", "vbudget4g", "vflagship"])
    ]
    client = adb_server.client()
    serials = {info.serial for info in client.list()}
    assert {d.serial for d in devices} <= serials
    for index, vd in enumerate(devices):
        handle = client.device(vd.serial)
        assert handle.prop.model == vd.profile.model
        handle.sync.push(f"device {index}".encode(), "/data/local/tmp/who")
    for index, vd in enumerate(devices):
        assert (vd.sandbox_root / "who").read_text() == f"device {index}"
        # unconfined (no bubblewrap) the shell sees host paths, not /data/local/tmp
        who = "/data/local/tmp/who" if vd.confined else str(vd.sandbox_root / "who")
        assert client.device(vd.serial).shell(f"cat {who}") == f"device {index}"


def test_shell_cannot_write_outside_the_sandbox(adb_server, vdevice, tmp_path):
    if not vdevice.confined:
        pytest.skip("bubblewrap (package 'bubblewrap') is not installed: the shell runs unconfined")
    device = adb_server.client().device(vdevice.serial)
    outside = tmp_path / "outside"
    outside.mkdir()
    marker = f"edgeship-escape-{random.randint(10**6, 10**7)}"
    attempts = [
        f"echo x > {outside}/a",
        f"touch /etc/{marker}",
        f"mkdir /{marker}",
        f"echo x > /tmp/{marker}",  # private tmpfs: allowed, but must not reach the host's /tmp
        f"ln -s {outside} /data/local/tmp/link && echo x > /data/local/tmp/link/b",
        "mount -o remount,rw / 2>&1",
    ]
    for command in attempts:
        device.shell2(command, v2=True)
    assert list(outside.iterdir()) == []
    assert not Path(f"/etc/{marker}").exists()
    assert not Path(f"/{marker}").exists()
    assert not Path(f"/tmp/{marker}").exists()
    # while inside /data/local/tmp the shell writes land in the sandbox folder
    assert (
        device.shell2("echo inside > /data/local/tmp/ok && cat /data/local/tmp/ok", v2=True).stdout
        == "inside\n"
    )
    assert (vdevice.sandbox_root / "ok").read_text() == "inside\n"
    # the profiler reads these
    assert "MemTotal" in device.shell("cat /proc/meminfo")
    assert device.shell2("cat /proc/self/smaps_rollup >/dev/null", v2=True).returncode == 0


def test_sync_cannot_leave_the_sandbox(adb_server, vdevice, tmp_path):
    device = adb_server.client().device(vdevice.serial)
    outside = tmp_path / "outside-sync"
    outside.mkdir()
    (outside / "secret").write_text("host secret")
    os.symlink(str(outside), vdevice.sandbox_root / "hostlink")
    os.symlink("../../../..", vdevice.sandbox_root / "uplink")
    targets = [
        "/data/local/tmp/../../../" + str(outside).lstrip("/") + "/dotdot",
        "/data/local/tmp/hostlink/via-symlink",
        "/data/local/tmp/uplink/" + str(outside).lstrip("/") + "/via-up",
        str(outside / "direct"),
        "/etc/edgeship-sync-escape",
    ]
    for target in targets:
        with pytest.raises(AdbError):
            device.sync.push(b"payload", target)
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert not Path("/etc/edgeship-sync-escape").exists()
    for source in (
        "/data/local/tmp/hostlink/secret",
        "/data/local/tmp/../../../" + str(outside / "secret"),
        "/etc/passwd",
    ):
        with pytest.raises(AdbError):
            device.sync.read_bytes(source)
    assert not device.sync.exists("/etc/passwd")
    assert [e.path for e in device.sync.list("/data/local/tmp/hostlink")] == []


def test_threads_and_file_descriptors_do_not_pile_up(tmp_path):
    with VirtualDevice(name="threads", root=tmp_path / "threads") as device:
        assert serves(device)
        time.sleep(0.3)
        threads_before = threading.active_count()
        fds_before = len(os.listdir("/proc/self/fd"))
        for index in range(15):
            assert serves(device)
            host = RawHost(device.port)
            host.connect()
            local, _ = host.open("shell,v2,pty:echo on-a-terminal")
            host.read_stream(local)
            local, reply = host.open("sync:")
            request = b"/data/local/tmp/x"
            host.send(
                WRTE, local, reply.arg0, b"STAT" + struct.pack("<I", len(request)) + request + b"QUIT\0\0\0\0"
            )
            host.read_stream(local)
            if index % 3 == 0:
                host.send(OPEN, 900, 0, b"shell:sleep 30\0")  # dropped with the connection
                time.sleep(0.05)
            host.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (
            threading.active_count() > threads_before or len(os.listdir("/proc/self/fd")) > fds_before
        ):
            time.sleep(0.1)
        assert threading.active_count() <= threads_before
        assert len(os.listdir("/proc/self/fd")) <= fds_before
        assert len(device.processes) == 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.sampled_from(
            [b"STAT", b"LIST", b"SEND", b"RECV", b"STA2", b"LIS2", b"DATA", b"DONE", b"QUIT", b"XXXX"]
        ),
        min_size=1,
        max_size=6,
    ),
    st.lists(
        st.sampled_from(
            ["/data/local/tmp/f", "/data/local/tmp/../../..", "/", "/etc/passwd", "/sdcard/x,0", ""]
        )
        | st.text(max_size=40),
        min_size=6,
        max_size=6,
    ),
    st.binary(max_size=200),
)
def test_random_sync_requests(fuzz_device, ids, paths, tail):
    host = RawHost(fuzz_device.port, timeout=5)
    try:
        host.connect()
        local, reply = host.open("sync:")
        stream = bytearray()
        for request_id, path in zip(ids, paths, strict=False):
            encoded = path.encode("utf-8", "surrogateescape")
            stream += request_id + struct.pack("<I", len(encoded)) + encoded
        stream += tail
        host.send(WRTE, local, reply.arg0, bytes(stream))
        host.sock.settimeout(0.1)  # read what the device answers until it closes the stream or goes quiet
        with contextlib.suppress(OSError, EOFError):
            while host.receive().name != "CLSE":
                pass
    except OSError:
        pass
    finally:
        host.close()
    assert serves(fuzz_device)
    assert not Path("/etc/passwd,0").exists()
    written = {p.name for p in fuzz_device.sandbox_root.parent.iterdir()}
    # proc/ holds the device's meminfo, written by the daemon
    assert written <= {"data-local-tmp", "sdcard", "system", "proc"}, (
        "nothing appears beside the sandbox folders"
    )


def test_host_flooding_writes_without_okay_is_dropped(fuzz_device):
    host = RawHost(fuzz_device.port, timeout=5)
    host.connect()
    local, reply = host.open("shell:sleep 5")  # a command that reads no stdin
    with contextlib.suppress(OSError):
        for _ in range(200):
            host.send(WRTE, local, reply.arg0, b"x" * 1000)
    with pytest.raises((EOFError, OSError)):
        while True:
            host.receive()  # the device drops the connection instead of queueing forever
    host.close()
    assert serves(fuzz_device)


def test_adb_push_killed_midway(adb_server, vdevice_factory, tmp_path):
    """The real client dies during a push: the partial file goes away and the device keeps serving."""
    # 48 MB over a 16 MB/s cable: ~3 s of transfer, so the kill lands mid-way whatever the box's load.
    vdevice = vdevice_factory(adb_server, link_mb_per_s=16)
    source = tmp_path / "big.bin"
    size = 48 * 1024 * 1024
    with open(source, "wb") as handle:
        for _ in range(size // (1024 * 1024)):
            handle.write(os.urandom(1024 * 1024))
    partial = vdevice.sandbox_root / "big.bin"
    push = subprocess.Popen(
        [
            adb_server.adb_path,
            "-P",
            str(adb_server.port),
            "-s",
            vdevice.serial,
            "push",
            str(source),
            "/data/local/tmp/",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=adb_server.env,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (partial.exists() and partial.stat().st_size > 0):
            time.sleep(0.005)
        assert partial.exists(), "the push never started"
        arrived = partial.stat().st_size
        push.kill()
    finally:
        push.wait()
    assert 0 < arrived < size and push.returncode != 0, "the kill landed mid-transfer"
    deadline = time.monotonic() + 10
    while partial.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not partial.exists(), "the partial file is removed, like adbd"
    device = adb_server.client().device(vdevice.serial)
    device.sync.push(b"after", "/data/local/tmp/after.txt")
    assert (vdevice.sandbox_root / "after.txt").read_bytes() == b"after"


def test_exec_command_is_ended_after_the_host_closes(tmp_path):
    """exec: lets a command finish its input after CLSE (adb exec-in), but never lets it linger."""
    marker = str(random.randint(10**6, 10**7))
    with VirtualDevice(name="execclose", root=tmp_path / "execclose") as device:
        host = RawHost(device.port)
        host.connect()
        local, reply = host.open(f"exec:sleep {marker}")
        assert wait_until_present(marker)
        host.send(int.from_bytes(b"CLSE", "little"), local, reply.arg0)
        assert wait_until_gone(marker, timeout=4 * 5.0) == []
        host.close()
        assert serves(device)
