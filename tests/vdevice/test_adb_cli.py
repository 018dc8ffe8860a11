"""The virtual device through the real adb CLI and server: adbutils' adb 36.x and Debian's adb 29.x."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from tests.fixtures.adb import free_port


def _digest(path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            sha.update(block)
    return sha.hexdigest()


def test_connect_and_devices_lists_the_model(any_adb_server, vdevice_factory):
    device = vdevice_factory(any_adb_server, profile="vbudget4g")
    listing = any_adb_server.run("devices", "-l").stdout
    line = next(line for line in listing.splitlines() if line.startswith(device.serial))
    # adb sanitizes the model: every non-alphanumeric character becomes '_'
    expected_model = "".join(c if c.isalnum() else "_" for c in device.profile.model)
    assert f"model:{expected_model}" in line
    assert f"device:{device.profile.device}" in line
    assert line.split()[1] == "device"


def test_shell_exit_codes_and_streams(any_adb_server, vdevice_factory):
    device = vdevice_factory(any_adb_server)
    run = any_adb_server.run
    assert run("-s", device.serial, "shell", "exit 3").returncode == 3
    assert run("-s", device.serial, "shell", "true").returncode == 0
    assert run("-s", device.serial, "shell", "kill -9 $$").returncode == 128 + 9
    result = run("-s", device.serial, "shell", "echo out; echo err >&2; exit 5")
    assert (result.returncode, result.stdout, result.stderr) == (5, "out\n", "err\n")
    model = run("-s", device.serial, "shell", "getprop ro.product.model").stdout.strip()
    assert model == device.profile.model


def test_shell_reads_stdin(any_adb_server, vdevice_factory):
    device = vdevice_factory(any_adb_server)
    result = any_adb_server.run("-s", device.serial, "shell", "cat; echo done", input="line one\nline two\n")
    assert result.stdout == "line one\nline two\ndone\n"


def _push_pull_roundtrip(server, device, source, tmp_path):
    target = f"/data/local/tmp/sub/{source.name}"
    pushed = server.run("-s", device.serial, "push", str(source), target)
    assert pushed.returncode == 0, pushed.stderr
    on_host = device.sandbox_root / "sub" / source.name
    assert _digest(on_host) == _digest(source)
    back = tmp_path / (source.name + ".back")
    pulled = server.run("-s", device.serial, "pull", target, str(back))
    assert pulled.returncode == 0, pulled.stderr
    assert _digest(back) == _digest(source)


def test_push_pull_small_files(any_adb_server, vdevice_factory, tmp_path):
    device = vdevice_factory(any_adb_server)
    for size in (0, 1, 65535, 65536, 65537, 3 * 1024 * 1024 + 17):
        source = tmp_path / f"f{size}.bin"
        source.write_bytes(os.urandom(size))
        _push_pull_roundtrip(any_adb_server, device, source, tmp_path)


@pytest.mark.e2e
def test_push_pull_100_mb(any_adb_server, vdevice_factory, tmp_path):
    device = vdevice_factory(any_adb_server)
    source = tmp_path / "random100.bin"
    with open(source, "wb") as handle:
        for _ in range(100):
            handle.write(os.urandom(1024 * 1024))
    _push_pull_roundtrip(any_adb_server, device, source, tmp_path)


def test_ls(any_adb_server, vdevice_factory):
    device = vdevice_factory(any_adb_server)
    (device.sandbox_root / "hello.txt").write_bytes(b"12345")
    lines = any_adb_server.run("-s", device.serial, "ls", "/data/local/tmp").stdout.splitlines()
    entries = {line.split()[-1]: line.split() for line in lines}
    assert {".", "..", "hello.txt"} <= set(entries)
    mode, size = int(entries["hello.txt"][0], 16), int(entries["hello.txt"][1], 16)
    assert size == 5
    assert mode & 0o170000 == 0o100000
    root_names = {
        line.split()[-1] for line in any_adb_server.run("-s", device.serial, "ls", "/").stdout.splitlines()
    }
    assert {"data", "sdcard"} <= root_names


class EchoServer:
    """A TCP echo server on the device's own loopback (its network namespace), like a service on a phone."""

    def __init__(self, device) -> None:
        with device.sandbox.launching():  # a socket belongs to the namespace it was made in
            self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(client,), daemon=True).start()

    @staticmethod
    def _echo(client: socket.socket) -> None:
        with client:
            while data := client.recv(65536):
                client.sendall(data)

    def close(self) -> None:
        self.sock.close()


def test_forward_reaches_a_device_port(any_adb_server, vdevice_factory):
    device = vdevice_factory(any_adb_server)
    echo = EchoServer(device)
    local = free_port()
    try:
        forwarded = any_adb_server.run("-s", device.serial, "forward", f"tcp:{local}", f"tcp:{echo.port}")
        assert forwarded.returncode == 0, forwarded.stderr
        payload = os.urandom(300_000)
        with socket.create_connection(("127.0.0.1", local), timeout=10) as conn:
            conn.sendall(payload)
            received = bytearray()
            while len(received) < len(payload):
                chunk = conn.recv(65536)
                assert chunk, "forwarded connection closed early"
                received += chunk
        assert bytes(received) == payload
    finally:
        any_adb_server.run("-s", device.serial, "forward", "--remove", f"tcp:{local}")
        echo.close()


def test_one_device_on_two_servers_at_once(adb_server, debian_adb_server, vdevice_factory):
    device = vdevice_factory(adb_server)
    debian_adb_server.connect(device.serial)
    try:
        assert device.connection_count() == 2
        for server in (adb_server, debian_adb_server):
            result = server.run("-s", device.serial, "shell", "echo $((6*7)); exit 9")
            assert (result.returncode, result.stdout) == (9, "42\n")
    finally:
        debian_adb_server.disconnect(device.serial)


def test_reboot_drops_and_the_server_reconnects(adb_server, vdevice_factory):
    device = vdevice_factory(adb_server)
    (device.sandbox_root / "survives").write_text("kept")
    shell_path = "/data/local/tmp/survives" if device.confined else str(device.sandbox_root / "survives")
    accepted = device.connections_accepted
    assert adb_server.run("-s", device.serial, "reboot").returncode == 0
    deadline = time.monotonic() + 30
    while device.connections_accepted == accepted and time.monotonic() < deadline:
        time.sleep(0.1)
    assert device.connections_accepted > accepted, "the connection dropped and the server reconnected"
    answer = ""
    while time.monotonic() < deadline:
        result = adb_server.run("-s", device.serial, "shell", f"cat {shell_path}", timeout=10)
        answer = result.stdout
        if answer == "kept":
            break
        time.sleep(0.3)
    assert answer == "kept"


def test_interactive_shell_on_a_terminal(any_adb_server, vdevice_factory):
    """`adb shell` with no command, typed at a terminal: a PTY on the device, Ctrl-C, exit status."""
    import pty
    import select

    device = vdevice_factory(any_adb_server)
    if not device.confined or shutil.which("mksh") is None:
        pytest.skip(
            "needs bubblewrap and mksh (packages 'bubblewrap', 'mksh') for a terminal with job control"
        )
    pid, fd = pty.fork()
    if pid == 0:  # the child becomes `adb shell` on a terminal
        os.execve(
            any_adb_server.adb_path,
            [any_adb_server.adb_path, "-P", str(any_adb_server.port), "-s", device.serial, "shell"],
            any_adb_server.env,
        )
    output = bytearray()

    def read_until(marker: bytes, start: int = 0, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while marker not in output[start:] and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                try:
                    output.extend(os.read(fd, 65536))
                except OSError:
                    break
        return marker in output[start:]

    prompt = f"{device.profile.device}:/ ".encode()
    try:
        # wait for each prompt: the shell flushes what is typed before it sets up its line editor
        assert read_until(prompt), bytes(output)
        os.write(fd, b"stty size; echo ready-$((40+2)); sleep 300\r")
        assert read_until(b"ready-42"), bytes(output)
        mark = len(output)
        os.write(fd, b"\x03")  # Ctrl-C reaches the sleep through the device's terminal
        assert read_until(prompt, start=mark), bytes(output)
        os.write(fd, b"echo after-$((6*7)); exit 7\r")
        assert read_until(b"after-42"), bytes(output)
        _, status = os.waitpid(pid, 0)
        pid = 0
        assert os.waitstatus_to_exitcode(status) == 7
    finally:
        os.close(fd)
        if pid:  # a failed test must not leave its `adb shell` behind
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def test_push_outside_the_sandbox_is_permission_denied(any_adb_server, vdevice_factory, tmp_path):
    device = vdevice_factory(any_adb_server)
    source = tmp_path / "small.txt"
    source.write_text("x")
    result = any_adb_server.run("-s", device.serial, "push", str(source), "/system/small.txt")
    assert result.returncode != 0
    assert "Permission denied" in result.stdout + result.stderr
    missing = any_adb_server.run("-s", device.serial, "pull", "/data/local/tmp/nope", str(tmp_path / "nope"))
    assert missing.returncode != 0
    assert "No such file or directory" in missing.stdout + missing.stderr


def test_exec_in_and_exec_out(any_adb_server, vdevice_factory):
    """`adb exec-in` closes its stream right after the last byte: the command still gets all of it."""
    device = vdevice_factory(any_adb_server)
    data = os.urandom(10 * 1024 * 1024 + 3)
    target = "/data/local/tmp/exec-in.bin" if device.confined else str(device.sandbox_root / "exec-in.bin")
    sent = subprocess.run(
        [
            any_adb_server.adb_path,
            "-P",
            str(any_adb_server.port),
            "-s",
            device.serial,
            "exec-in",
            f"cat > {target}",
        ],
        input=data,
        capture_output=True,
        env=any_adb_server.env,
        timeout=120,
    )
    assert sent.returncode == 0, sent.stderr
    on_host = device.sandbox_root / "exec-in.bin"
    deadline = time.monotonic() + 15  # like on a phone, the command may still be writing when adb returns
    while time.monotonic() < deadline and (not on_host.exists() or on_host.stat().st_size < len(data)):
        time.sleep(0.05)
    assert on_host.read_bytes() == data
    out = subprocess.run(
        [
            any_adb_server.adb_path,
            "-P",
            str(any_adb_server.port),
            "-s",
            device.serial,
            "exec-out",
            f"cat {target}",
        ],
        capture_output=True,
        env=any_adb_server.env,
        timeout=120,
    )
    assert out.stdout == data
