"""``shell:``, ``shell,v2,...:`` and ``exec:``: commands in the sandbox.

Without a protocol (``shell:``/``exec:``) adbd gives the command a raw PTY, so stdout and stderr arrive
merged and there is no exit code; here a pipe with stderr joined to stdout does the same. With ``v2`` the
stream carries shell-protocol packets ``[id:u8][len:u32][data]``: stdin 0, stdout 1, stderr 2, exit 3,
close-stdin 4, window-size 5.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import subprocess
import threading
from typing import IO, TYPE_CHECKING

from edgeship.vdevice.transport import Stream, StreamClosed

if TYPE_CHECKING:
    from edgeship.vdevice.device import VirtualDevice
    from edgeship.vdevice.transport import ServiceHandler

log = logging.getLogger("edgeship.vdevice")

ID_STDIN, ID_STDOUT, ID_STDERR, ID_EXIT, ID_CLOSE_STDIN, ID_WINDOW_SIZE = 0, 1, 2, 3, 4, 5
PACKET_HEADER = struct.Struct("<BI")
READ_SIZE = 1024 * 1024


def open_shell(device: VirtualDevice, name: str) -> ServiceHandler:
    head, _, command = name.partition(":")
    arguments = head.split(",")[1:]
    if "v2" in arguments:
        return lambda stream: run_v2(device, stream, command)
    return lambda stream: run_raw(device, stream, command)


def open_exec(device: VirtualDevice, command: str) -> ServiceHandler:
    return lambda stream: run_raw(device, stream, command)


def _start(
    device: VirtualDevice, stream: Stream, command: str, merge_stderr: bool
) -> subprocess.Popen[bytes]:
    process = device.start_command(command, merge_stderr=merge_stderr)
    # The host closed the stream or the connection dropped: kill the whole group (adbd sends SIGHUP).
    stream.on_close(lambda: device.processes.kill_in_background(process))
    log.info("stream %d runs %r as pid %d", stream.local_id, command[:200], process.pid)
    return process


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


def run_raw(device: VirtualDevice, stream: Stream, command: str) -> None:
    process = _start(device, stream, command, merge_stderr=True)
    assert process.stdout is not None
    threading.Thread(target=_pump_stdin_raw, args=(stream, process), daemon=True).start()
    try:
        fd = process.stdout.fileno()
        while data := os.read(fd, min(READ_SIZE, stream.max_payload)):
            stream.write(data)
    finally:
        _close_quietly(process.stdout)
        if stream.closed:
            device.processes.kill(process)
        else:
            device.processes.reap(process)


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


def _close_quietly(pipe: IO[bytes]) -> None:
    with contextlib.suppress(OSError):
        pipe.close()
