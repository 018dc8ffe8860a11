"""What a virtual device can read, reach and write on its host: each point of issue 14's review, tried.

The review found a device that read the host's adb key and /etc/shadow, reached the host's adb server, relayed
`adb forward` from the host's network, let sync writes escape through a folder swapped for a symlink, ran
unconfined by default, and had no bounds on symlink data, connections, streams, handshakes or its log. Each
test here does what was seen and checks it no longer works.
"""

from __future__ import annotations

import io
import json
import os
import socket
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import adbutils
import pytest
from adbutils.errors import AdbError, AdbTimeout

from edgeship.errors import DeviceError
from edgeship.vdevice import VirtualDevice, sandbox
from tests.fixtures.adb import BUNDLED_ADB
from tests.vdevice.rawclient import CNXN, WRTE, RawHost

S_IFLNK = 0o120000


def device_shell(adb_server, serial: str, command: str) -> str:
    result = adb_server.run("-s", serial, "shell", command, timeout=60)
    return result.stdout + result.stderr


def runtime_ancestors() -> set[str]:
    """The folders above the paths the sandbox binds for the Python runner (not / and not /usr)."""
    return {
        str(parent)
        for path in sandbox.python_runtime_paths()
        for parent in Path(path).parents
        if str(parent) not in ("/", "/usr")
    }


def runtime_children(folder: str) -> set[str]:
    """What the device may list in `folder`: the next step toward each bound runtime path."""
    return {
        Path(path).relative_to(folder).parts[0]
        for path in sandbox.python_runtime_paths()
        if path.startswith(folder.rstrip("/") + "/")
    }


# ---- the system view -----------------------------------------------------------------------------------
def test_the_host_keys_and_private_folders_are_not_visible(adb_server, vdevice, tmp_path):
    adb_key = Path.home() / ".android" / "adbkey"  # the adb servers here made it: trusted by every phone
    assert adb_key.is_file()
    host_marker = tmp_path / "host-only"
    host_marker.write_text("host\n")
    checks = {
        f"wc -c {adb_key}": "No such file",
        "cat /etc/shadow": "No such file",
        "ls /home": "No such file",
        "ls /run": "No such file",
        "ls /etc/ssh /etc/ssl/private": "No such file",
        f"cat {host_marker}": "No such file",
    }
    for command, expected in checks.items():
        assert expected in device_shell(adb_server, vdevice.serial, command), command
    # Each folder above a path the Python runner needs shows only the way to it (wherever this checkout and
    # its Python live: /work, /root/.pyenv, a CI clone's /check/...), and a home folder is not there at all.
    for folder in {*runtime_ancestors(), "/root"}:
        listing = device_shell(adb_server, vdevice.serial, f"ls -a {folder}")
        if folder in runtime_ancestors():
            assert set(listing.split()) == {".", "..", *runtime_children(folder)}, (folder, listing)
        else:
            assert "No such file" in listing, (folder, listing)
    # the kernel's knobs stay read-only for the device's root (it dropped caches host-wide before)
    for knob in ("/proc/sys/vm/drop_caches", "/proc/sys/kernel/core_pattern"):
        assert "Read-only" in device_shell(adb_server, vdevice.serial, f"echo 1 > {knob}"), knob
    # and the device shows what a phone shows at the top
    assert device_shell(adb_server, vdevice.serial, "readlink /etc").strip() == "/system/etc"


def test_only_the_python_runtime_and_the_package_are_visible_read_only(
    adb_server, vdevice_factory, tmp_path, monkeypatch
):
    # A CI clone keeps its venv under /tmp: a prefix anywhere is bound read-only, other sys.path entries not.
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / "marker").write_text("prefix\n")
    elsewhere = tmp_path / "checkout"
    elsewhere.mkdir()
    (elsewhere / "secret.py").write_text("SECRET = 1\n")
    monkeypatch.setattr(sys, "prefix", str(venv))
    monkeypatch.syspath_prepend(str(elsewhere))
    device = vdevice_factory(adb_server)
    package = Path(sandbox.__file__).resolve().parents[1]
    assert device_shell(adb_server, device.serial, f"cat {venv}/marker") == "prefix\n"
    refused = device_shell(
        adb_server, device.serial, f"touch {venv}/new 2>/dev/null && echo wrote || echo refused"
    )
    assert refused == "refused\n"
    assert "No such file" in device_shell(adb_server, device.serial, f"cat {elsewhere}/secret.py")
    assert (
        device_shell(adb_server, device.serial, f"test -f {package}/vdevice/sandbox.py && echo seen")
        == "seen\n"
    )
    # the package folder itself, not the checkout around it (only what the runtime needs: a venv made inside
    # the checkout, as CI makes it, is there too)
    listing = device_shell(adb_server, device.serial, f"ls -a {package.parent}").split()
    assert "edgeship" in runtime_children(str(package.parent))
    assert set(listing) == {".", "..", *runtime_children(str(package.parent))}, listing
    scratch = f"/tmp/edgeship-scratch-{os.getpid()}"
    assert device_shell(adb_server, device.serial, f"touch {scratch} && echo made") == "made\n"
    assert not os.path.exists(scratch)  # /tmp itself stays private
    assert not (venv / "new").exists()


# ---- the network ---------------------------------------------------------------------------------------
def test_the_device_has_its_own_network(adb_server, vdevice):
    interfaces = device_shell(adb_server, vdevice.serial, "cat /proc/net/dev").splitlines()[2:]
    assert [line.split(":")[0].strip() for line in interfaces] == ["lo"]
    # What the review did: the venv's adb, run inside the device, against the host's adb server.
    attack = device_shell(
        adb_server, vdevice.serial, f"timeout 20 {BUNDLED_ADB} -P {adb_server.port} devices"
    )
    assert vdevice.serial not in attack, attack
    # Nothing of the host's loopback (the adb server's port) and no host abstract socket is reachable.
    probe = textwrap.dedent(
        f"""
        import socket
        for family, address in ((socket.AF_INET, ("127.0.0.1", {adb_server.port})),
                                (socket.AF_UNIX, "\\0edgeship-host-{os.getpid()}")):
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.connect(address)
                print("reached", address)
            except OSError as exc:
                print("refused", type(exc).__name__)
        """
    )
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as host_socket:
        host_socket.bind(f"\0edgeship-host-{os.getpid()}")
        host_socket.listen(1)
        result = device_shell(adb_server, vdevice.serial, f"{sys.executable} -c '{probe}'")
    assert result.split("\n")[:2] == ["refused ConnectionRefusedError", "refused ConnectionRefusedError"], (
        result
    )


def test_socket_services_never_connect_from_the_host(vdevice):
    with socket.create_server(("127.0.0.1", 0)) as host_server, socket.socket(socket.AF_UNIX) as host_unix:
        host_unix.bind(f"\0edgeship-host-{os.getpid()}")
        host_unix.listen(1)
        host = RawHost(vdevice.port)
        try:
            host.connect()
            for service in (
                f"tcp:{host_server.getsockname()[1]}",
                f"localabstract:edgeship-host-{os.getpid()}",
            ):
                _, reply = host.open(service)
                assert (reply.name, reply.arg0) == ("CLSE", 0), service
        finally:
            host.close()


def test_forward_reaches_a_server_the_device_runs(adb_server, vdevice):
    # A server the device's own shell starts, on its own loopback (the host's port 8080 is another one).
    server = "import socket; s = socket.create_server(('127.0.0.1', 8080)); print('up', flush=True); "
    server += "c, _ = s.accept(); c.sendall(c.recv(100).upper())"
    device = adb_server.client().device(vdevice.serial)
    running = device.shell(f'{sys.executable} -c "{server}"', stream=True)
    try:
        assert running.recv(3) == b"up\n"
        local = device.forward_port(8080)
        with socket.create_connection(("127.0.0.1", local), timeout=10) as conn:
            conn.sendall(b"ping")
            assert conn.recv(4) == b"PING"
    finally:
        running.close()


# ---- sync I/O that cannot leave the sandbox ------------------------------------------------------------
SWAPPER = """
import ctypes, os, sys, time
data, outside, stop_after = sys.argv[1], sys.argv[2], time.monotonic() + float(sys.argv[3])
os.chdir(data)
os.rename("race.real", "race")
os.symlink(outside, "race.link")
renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
AT_FDCWD, RENAME_EXCHANGE = -100, 2
print("swapping", flush=True)
while time.monotonic() < stop_after:  # race: a folder, then a symlink to the host folder, atomically
    if renameat2(AT_FDCWD, b"race", AT_FDCWD, b"race.link", RENAME_EXCHANGE) != 0:
        sys.exit(f"renameat2: {os.strerror(ctypes.get_errno())}")
"""


@pytest.fixture
def racing_device(edgeship_cli, adb_server, tmp_path):
    """A daemon device (its own process: real parallelism) whose /data/local/tmp/race flips folder ⇄ symlink.

    The swapper does to the device's folder what any process inside the device can do to its own
    /data/local/tmp (exchange a folder and a symlink whose target is a host path, with renameat2); it runs on
    the host side only to swap as fast as the race needs. ``outside`` is the host folder the symlink names.
    """
    record = edgeship_cli.start("--name", "racer", "--profile", "vbudget4g")
    data = Path(record["root"]) / "data-local-tmp"
    outside = tmp_path / "outside"
    outside.mkdir()
    for index in range(20):  # what RECV should read: the device's own files, moved with their folder
        (outside / f"f{index}").write_text("HOST SECRET")
        (data / "race.real").mkdir(exist_ok=True)
        (data / "race.real" / f"f{index}").write_text("device data")
    swapper = subprocess.Popen(
        [sys.executable, "-c", SWAPPER, str(data), str(outside), "120"], stdout=subprocess.PIPE, text=True
    )
    assert swapper.stdout is not None and swapper.stdout.readline() == "swapping\n"
    try:
        # a timeout: a device that stops answering mid-race fails the test instead of hanging it
        client = adbutils.AdbClient(host="127.0.0.1", port=adb_server.port, socket_timeout=10)
        yield client.device(record["serial"]), data, outside
    finally:
        swapper.kill()
        swapper.wait()


TRIES = 300


@pytest.mark.e2e
def test_send_through_a_swapped_folder_stays_inside(racing_device):
    device, _, outside = racing_device
    for index in range(TRIES):
        for path in (f"race/f{index}", f"race/d{index}/f"):  # the file, and a folder SEND makes on the way
            try:
                device.sync.push(io.BytesIO(b"device data"), f"/data/local/tmp/{path}")
            except AdbTimeout:
                raise
            except AdbError:
                pass  # refused mid-swap (the folder was the symlink): fine, if nothing lands outside
        assert len(list(outside.iterdir())) == 20, f"after {index + 1} tries a push landed in the host folder"


@pytest.mark.e2e
def test_symlink_send_through_a_swapped_folder_stays_inside(racing_device):
    device, _, outside = racing_device
    for index in range(TRIES):
        # adbutils pushes files only: a SEND with a symlink mode, as `adb push` of a symlink sends it.
        connection = device.open_transport()
        connection.send_command("sync:")
        connection.check_okay()
        spec = f"/data/local/tmp/race/l{index},{S_IFLNK | 0o777}".encode()
        target = b"/data/local/tmp/elsewhere"
        request = b"SEND" + struct.pack("<I", len(spec)) + spec
        request += b"DATA" + struct.pack("<I", len(target)) + target + b"DONE" + struct.pack("<I", 0)
        connection.conn.sendall(request)
        connection.conn.recv(8)
        connection.close()
        assert len(list(outside.iterdir())) == 20, (
            f"after {index + 1} tries a symlink landed in the host folder"
        )


@pytest.mark.e2e
def test_recv_through_a_swapped_folder_reads_only_the_device(racing_device):
    device, _, _ = racing_device
    seen = set()
    for index in range(TRIES):
        try:
            seen.add(device.sync.read_bytes(f"/data/local/tmp/race/f{index % 20}"))
        except AdbTimeout:
            raise
        except AdbError:
            pass  # refused mid-swap
        assert b"HOST SECRET" not in seen, f"after {index + 1} tries a pull read the host folder"
    assert seen == {b"device data"}, "some pulls went through while the folder was in place"


@pytest.mark.parametrize("with_openat2", [True, False], ids=["openat2", "component-walk"])
def test_a_symlink_swapped_in_after_resolution_is_never_followed(tmp_path, monkeypatch, with_openat2):
    # The race, stopped at its worst moment: resolved while `race` was a folder, opened once it is a symlink.
    from edgeship.vdevice import paths

    if not with_openat2:
        monkeypatch.setattr(paths.OPENAT2, "available", False)
    data = tmp_path / "data"
    (data / "race").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host")
    files = paths.DeviceFiles({paths.DATA_LOCAL_TMP: data, paths.SDCARD: tmp_path / "sdcard"})
    location = files.resolve("/data/local/tmp/race/secret")
    assert location.parts == ("race", "secret")
    (data / "race").rmdir()
    (data / "race").symlink_to(outside)
    with pytest.raises(OSError):
        files.open(location, os.O_RDONLY)
    with pytest.raises(OSError), files.directory(paths.DATA_LOCAL_TMP, ("race",), create=True):
        pass
    # and a symlink inside the sandbox is still followed as the device would (as a device path)
    (data / "race").unlink()
    (data / "card").symlink_to("/sdcard")
    (tmp_path / "sdcard").mkdir()
    assert files.resolve("/data/local/tmp/card/x").host_path == tmp_path / "sdcard" / "x"
    files.close()


# ---- unconfined only when asked ------------------------------------------------------------------------
def test_a_device_without_working_bubblewrap_refuses_to_start(edgeship_cli, tmp_path):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    fake = fake_bin / "bwrap"  # what a host without user namespaces answers
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    path = {"PATH": f"{fake_bin}:{os.environ['PATH']}"}
    refused = edgeship_cli("vdevice", "start", "--name", "nobwrap", "--no-connect", extra_env=path)
    assert refused.returncode == 5
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    assert (
        "bubblewrap" in lines[0] and "apt-get install bubblewrap" in lines[0] and "--unconfined" in lines[0]
    )
    assert json.loads(edgeship_cli("vdevice", "list", "--json").stdout) == []

    record = edgeship_cli.start("--name", "loose", "--no-connect", "--unconfined", extra_env=path)
    assert record["confined"] is False


def test_the_python_api_refuses_too(tmp_path, monkeypatch):
    monkeypatch.setattr(sandbox, "find_bwrap", lambda: None)
    with pytest.raises(DeviceError, match=r"not installed.*--unconfined"):
        VirtualDevice(name="nobwrap", root=tmp_path / "d").start()
    with VirtualDevice(name="loose", root=tmp_path / "loose", confine=False) as device:
        assert not device.confined


# ---- bounds ----------------------------------------------------------------------------------------------
def _sync_stream(host: RawHost) -> tuple[int, int]:
    host.connect()
    local, reply = host.open("sync:")
    assert reply.name == "OKAY"
    return local, reply.arg0


def test_a_huge_symlink_target_is_refused_early(tmp_path):
    with VirtualDevice(name="biglink", root=tmp_path / "d") as device:
        host = RawHost(device.port)
        local, remote = _sync_stream(host)
        spec = f"/data/local/tmp/link,{S_IFLNK | 0o777}".encode()
        host.send(WRTE, local, remote, b"SEND" + struct.pack("<I", len(spec)) + spec)
        assert host.receive().name == "OKAY"
        block = b"DATA" + struct.pack("<I", 65536) + b"a" * 65536
        replies = []
        for _ in range(64):  # 4 MiB of link target, where PATH_MAX is 4096 bytes
            try:
                host.send(WRTE, local, remote, block)
                message = host.receive()
            except (EOFError, OSError):
                break
            replies.append(message)
            if message.name in ("WRTE", "CLSE"):
                break
        failure = next(message for message in replies if message.name == "WRTE")
        assert failure.data.startswith(b"FAIL") and b"longer than 4096" in failure.data
        assert len(replies) <= 3, "the device kept collecting the target"
        assert not (device.sandbox_root / "link").exists()
        host.close()


def test_a_silent_client_is_dropped_after_the_handshake_timeout(tmp_path):
    key = tmp_path / "adbkey"
    subprocess.run([BUNDLED_ADB, "keygen", str(key)], check=True, capture_output=True)
    with VirtualDevice(name="silent", root=tmp_path / "d", handshake_timeout=1.0, auth="allow") as device:
        silent = socket.create_connection(("127.0.0.1", device.port), timeout=10)
        started = time.monotonic()
        assert silent.recv(1) == b"", "a client that never sends CNXN is disconnected"
        assert 0.5 < time.monotonic() - started < 8
        # one that sends CNXN but never answers the AUTH token goes the same way
        host = RawHost(device.port)
        host.send(CNXN, 0x01000001, 1 << 20, b"host::features=shell_v2")
        assert host.receive().name == "AUTH"
        with pytest.raises(EOFError):
            host.receive()
        host.close()
        silent.close()
        # a client that completes the handshake stays: the timeout is for handshakes only
        host = RawHost(device.port)
        host.send(CNXN, 0x01000001, 1 << 20, b"host::features=shell_v2")
        assert host.receive().name == "AUTH"
        host.send(int.from_bytes(b"AUTH", "little"), 3, 0, Path(f"{key}.pub").read_bytes().strip() + b"\0")
        assert host.receive().name == "CNXN"
        time.sleep(1.5)
        local, reply = host.open("shell:echo still")
        assert reply.name == "OKAY" and host.read_stream(local)[0] == b"still\n"
        host.close()


def test_streams_are_capped_per_connection_and_per_device(tmp_path):
    from edgeship.vdevice.device import MAX_STREAMS
    from edgeship.vdevice.transport import MAX_STREAMS_PER_CONNECTION

    with VirtualDevice(name="streams", root=tmp_path / "d") as device:
        hosts = [RawHost(device.port) for _ in range(3)]
        opened = []
        for host in hosts:
            host.connect()
            replies = [host.open("sync:")[1].name for _ in range(MAX_STREAMS_PER_CONNECTION + 10)]
            opened.append(replies.count("OKAY"))
            assert set(replies) <= {"OKAY", "CLSE"}
        assert opened[0] == MAX_STREAMS_PER_CONNECTION
        assert sum(opened) == MAX_STREAMS
        hosts[0].close()  # its streams end: their share of the budget comes back
        deadline = time.monotonic() + 10
        while device.streams_open > MAX_STREAMS - MAX_STREAMS_PER_CONNECTION and time.monotonic() < deadline:
            time.sleep(0.05)
        fresh = RawHost(device.port)
        fresh.connect()
        assert fresh.open("sync:")[1].name == "OKAY"
        for host in [*hosts[1:], fresh]:
            host.close()


def _thread_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


@pytest.mark.e2e
def test_eight_hundred_idle_connections(edgeship_cli, adb_server):
    from edgeship.vdevice.device import MAX_CONNECTIONS

    record = edgeship_cli.start("--name", "idle", "--no-connect")
    baseline = _thread_count(record["pid"])
    idle = [socket.create_connection(("127.0.0.1", record["port"]), timeout=30) for _ in range(800)]
    time.sleep(1.0)
    assert _thread_count(record["pid"]) <= baseline + MAX_CONNECTIONS + 4
    # the idle ones are dropped after the handshake timeout; the device then serves an adb server again
    deadline = time.monotonic() + 30
    for sock in idle:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            ended = sock.recv(1) == b""
        except ConnectionResetError:
            ended = True  # refused at once (beyond the cap): closed while nothing was read yet
        assert ended
        sock.close()
    adb_server.connect(record["serial"])
    assert device_shell(adb_server, record["serial"], "echo served") == "served\n"
    adb_server.disconnect(record["serial"])


def test_the_daemon_log_rotates(edgeship_cli):
    limit = 20_000
    record = edgeship_cli.start(
        "--name", "chatty", "--no-connect", extra_env={"EDGESHIP_VDEVICE_LOG_MAX_BYTES": str(limit)}
    )
    log = Path(record["log"])
    for _ in range(150):  # each connection logs a few lines
        host = RawHost(record["port"])
        host.connect()
        host.close()
    deadline = time.monotonic() + 10
    while not log.with_name(log.name + ".1").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert log.with_name(log.name + ".1").exists()
    assert log.stat().st_size <= limit
    assert not log.with_name(log.name + ".4").exists()
