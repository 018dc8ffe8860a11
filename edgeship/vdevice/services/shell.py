"""``shell:``, ``shell,v2,...:`` and ``exec:``: commands in the sandbox.

Without a protocol (``shell:cmd``/``exec:``) adbd gives the command a raw PTY, so stdout and stderr arrive
merged and there is no exit code; here a pipe with stderr joined to stdout does the same (and is
binary-safe). With ``v2`` the stream carries shell-protocol packets ``[id:u8][len:u32][data]``: stdin 0,
stdout 1, stderr 2, exit 3, close-stdin 4, window-size 5. An interactive shell (``pty`` in the arguments, or
no command and no ``raw``) gets a real PTY, as `adb shell` without a command expects.
"""

from __future__ import annotations

import contextlib
import os
import struct
import subprocess
import threading
from typing import IO, TYPE_CHECKING

from edgeship.vdevice.transport import Stream, StreamClosed

if TYPE_CHECKING:
    from edgeship.vdevice.device import VirtualDevice
    from edgeship.vdevice.transport import ServiceHandler

ID_STDIN, ID_STDOUT, ID_STDERR, ID_EXIT, ID_CLOSE_STDIN, ID_WINDOW_SIZE = 0, 1, 2, 3, 4, 5
PACKET_HEADER = struct.Struct("<BI")
READ_SIZE = 1024 * 1024
# How long an exec: command may go on taking its input after the host closed the stream.
EXEC_DRAIN_S = 5.0


def open_shell(device: VirtualDevice, name: str) -> ServiceHandler:
    head, _, command = name.partition(":")
    arguments = head.split(",")[1:]
    v2 = "v2" in arguments
    # adbd's default: a PTY for an interactive shell, raw for a command; the client may ask either.
    terminal = "pty" in arguments or (not command and "raw" not in arguments)
    if terminal:
        term = next((arg[len("TERM=") :] for arg in arguments if arg.startswith("TERM=")), "xterm")
        return lambda stream: run_terminal(device, stream, command, v2, term)
    if v2:
        return lambda stream: run_v2(device, stream, command)
    return lambda stream: run_raw(device, stream, command)


def open_exec(device: VirtualDevice, command: str) -> ServiceHandler:
    # exec: has no terminal on adbd either (a socketpair): when the host closes, the command reads EOF
    # and may finish, which is what `adb exec-in 'cat > file' < file` relies on.
    return lambda stream: run_raw(device, stream, command, hang_up_on_close=False)


def _start(
    device: VirtualDevice, stream: Stream, command: str, merge_stderr: bool, hang_up_on_close: bool = True
) -> subprocess.Popen[bytes]:
    process = device.start_command(command, merge_stderr=merge_stderr)
    if hang_up_on_close:
        # The host closed the stream or the connection dropped: kill the whole group (adbd sends SIGHUP).
        stream.on_close(lambda: device.processes.kill_in_background(process))
    device.log.info("stream %d runs %r as pid %d", stream.local_id, command[:200], process.pid)
    return process


def _finish_then_kill(
    device: VirtualDevice, process: subprocess.Popen[bytes], stdin_pump: threading.Thread
) -> None:
    """After the host closed an exec: stream: let the command take its last input, then end its group."""

    def later() -> None:
        stdin_pump.join(EXEC_DRAIN_S)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(EXEC_DRAIN_S)
        device.processes.kill(process)

    threading.Thread(target=later, name=f"drain-{process.pid}", daemon=True).start()


def _pump_stdin_raw(stream: Stream, process: subprocess.Popen[bytes]) -> None:
    stdin = process.stdin
    assert stdin is not None
    try:
        while (data := stream.read_some()) is not None:
            os.write(stdin.fileno(), data)
    except (OSError, StreamClosed):
        pass
    finally:
        _close_quietly(stdin)


def run_raw(device: VirtualDevice, stream: Stream, command: str, hang_up_on_close: bool = True) -> None:
    process = _start(device, stream, command, merge_stderr=True, hang_up_on_close=hang_up_on_close)
    assert process.stdout is not None
    stdin_pump = threading.Thread(target=_pump_stdin_raw, args=(stream, process), daemon=True)
    stdin_pump.start()
    if not hang_up_on_close:
        stream.on_close(lambda: _finish_then_kill(device, process, stdin_pump))
    try:
        fd = process.stdout.fileno()
        while data := os.read(fd, min(READ_SIZE, stream.max_payload)):
            stream.write(data)
    except StreamClosed:
        pass  # the output has nowhere to go; the close callback ends the command
    finally:
        _close_quietly(process.stdout)
        if stream.closed and hang_up_on_close:
            device.processes.kill(process)
        else:
            device.processes.reap(process)  # bounded: _finish_then_kill kills a command that lingers


def _pump_output(stream: Stream, fd: int, packet_id: int) -> None:
    limit = max(1, stream.max_payload - PACKET_HEADER.size)
    try:
        while data := os.read(fd, min(READ_SIZE, limit)):
            stream.write(PACKET_HEADER.pack(packet_id, len(data)) + data)
    except (OSError, StreamClosed):
        pass


def _pump_stdin_v2(stream: Stream, process: subprocess.Popen[bytes]) -> None:
    stdin = process.stdin
    assert stdin is not None
    try:
        while True:
            packet_id, length = PACKET_HEADER.unpack(stream.read_exact(PACKET_HEADER.size))
            data = stream.read_exact(length) if length else b""
            if packet_id == ID_STDIN and data and not stdin.closed:
                try:
                    os.write(stdin.fileno(), data)
                except OSError:
                    _close_quietly(stdin)  # the command stopped reading; later stdin is dropped
            elif packet_id == ID_CLOSE_STDIN:
                _close_quietly(stdin)
            # ID_WINDOW_SIZE and unknown ids: nothing to do without a PTY.
    except (OSError, StreamClosed):
        pass
    finally:
        _close_quietly(stdin)


def run_v2(device: VirtualDevice, stream: Stream, command: str) -> None:
    process = _start(device, stream, command, merge_stderr=False)
    assert process.stdout is not None and process.stderr is not None
    threading.Thread(target=_pump_stdin_v2, args=(stream, process), daemon=True).start()
    stderr_thread = threading.Thread(
        target=_pump_output, args=(stream, process.stderr.fileno(), ID_STDERR), daemon=True
    )
    stderr_thread.start()
    try:
        _pump_output(stream, process.stdout.fileno(), ID_STDOUT)
        stderr_thread.join()
    finally:
        _close_quietly(process.stdout)
        _close_quietly(process.stderr)
    if stream.closed:
        device.processes.kill(process)
        return
    code = device.processes.reap(process)
    # WaitForExit: WEXITSTATUS, or 0x80 | signal when killed (bwrap already reports 128+signal itself).
    exit_code = (128 + -code) if code < 0 else code
    stream.write(PACKET_HEADER.pack(ID_EXIT, 1) + bytes([exit_code & 0xFF]))


def _set_window_size(fd: int, rows: int, columns: int, x_pixels: int = 0, y_pixels: int = 0) -> None:
    import fcntl
    import termios

    with contextlib.suppress(OSError):
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, x_pixels, y_pixels))


def _pump_terminal_input(stream: Stream, master: int, v2: bool) -> None:
    try:
        if not v2:
            while (data := stream.read_some()) is not None:
                os.write(master, data)
            return
        while True:
            packet_id, length = PACKET_HEADER.unpack(stream.read_exact(PACKET_HEADER.size))
            data = stream.read_exact(length) if length else b""
            if packet_id == ID_STDIN and data:
                os.write(master, data)
            elif packet_id == ID_WINDOW_SIZE:
                # "%dx%d,%dx%d": rows x columns, x pixels x y pixels
                with contextlib.suppress(ValueError):
                    cells, _, pixels = data.decode("ascii").partition(",")
                    rows, columns = (int(n) for n in cells.split("x"))
                    x_pixels, y_pixels = (int(n) for n in pixels.split("x")) if pixels else (0, 0)
                    _set_window_size(master, rows, columns, x_pixels, y_pixels)
            # close-stdin means nothing on a terminal (adbd: raw only)
    except (OSError, StreamClosed):
        pass


def run_terminal(device: VirtualDevice, stream: Stream, command: str, v2: bool, term: str) -> None:
    import pty

    master, slave = pty.openpty()
    _set_window_size(master, 24, 80)
    try:
        process = device.start_command(command, merge_stderr=True, terminal=slave, term=term)
    finally:
        os.close(slave)  # the child has its copy; EIO on the master then means every holder is gone
    stream.on_close(lambda: device.processes.kill_in_background(process))
    device.log.info("stream %d runs %r on a terminal as pid %d", stream.local_id, command[:200], process.pid)
    threading.Thread(target=_pump_terminal_input, args=(stream, master, v2), daemon=True).start()
    try:
        limit = max(1, stream.max_payload - PACKET_HEADER.size)
        while True:
            try:
                data = os.read(master, min(READ_SIZE, limit))
            except OSError:  # EIO: the terminal's last user exited
                break
            if not data:
                break
            stream.write(PACKET_HEADER.pack(ID_STDOUT, len(data)) + data if v2 else data)
    except StreamClosed:
        pass
    finally:
        os.close(master)
    if stream.closed:
        device.processes.kill(process)
        return
    code = device.processes.reap(process)
    if v2:
        exit_code = (128 + -code) if code < 0 else code
        stream.write(PACKET_HEADER.pack(ID_EXIT, 1) + bytes([exit_code & 0xFF]))


def _close_quietly(pipe: IO[bytes]) -> None:
    with contextlib.suppress(OSError):
        pipe.close()
