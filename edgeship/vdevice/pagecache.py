"""A pushed file's page cache as a phone has it right after `adb push`: in the device's RAM, in small folios.

Page cache is charged to the memory cgroup of the process that first brings a page in. The sync service writes
pushed files from the daemon, on the host, so their pages would be charged to the daemon's cgroup and a runner
mapping a just-pushed file would find it resident for free. On a device with a memory cgroup, a SEND therefore
hands the file's pages over to the device (``PageCacheMover``) once it reaches ``MOVE_MIN_BYTES``:

- A reader starts in the device (like a shell command: inside its sandbox and its memory cgroup), handed the
  file as an open descriptor with POSIX_FADV_RANDOM set on it. For each 4 MiB piece it is given, it drops the
  piece from the page cache (POSIX_FADV_DONTNEED: the daemon's pages go, uncharging the daemon) and reads it
  back at once (charged to the device). Random mode turns readahead off, so the kernel brings exactly the
  pages each read asks for, as single 4 KiB folios.
- The daemon hands it the file window by window while the rest arrives: every 16 MiB it starts the writeback
  of the window just written (sync_file_range), waits for the previous one (a dirty page cannot be dropped)
  and passes it on. At DONE, fdatasync; the reader takes the rest, and the SEND's OKAY waits for it, so a
  profile right after a push finds the file warm. Dropping and reading back each piece in one go leaves no
  time for another reader in the device (the push's own hashing of the growing file) to bring the piece in
  through readahead first.

Why not leave the pages cold (dropped, as the daemon did before): whoever reads the file first then brings it
in, and a read in file order (the push's sha256sum check; a mapped pass front to back) goes through readahead,
whose window is the host block device's ``read_ahead_kb`` (8 MiB on this machine's virtio disk) and whose
folios grow large; this host's kernel (Linux 6.18, ext4) maps a large folio whole when a fault lands in it.
Measured here: after a front-to-back read of the pushed liblitert-lm.so (132 MB), the native runner's peak
file-backed memory was 116 MB instead of 59 MB; one mapped byte per MiB of a cold 128 MiB file, touched in
order, mapped 99 MiB of it (8 MiB in 4 KiB folios). A phone right after `adb push` has none of that: adbd's
writes sit in its own page cache, warm, in 4 KiB folios (and its flash readahead is 128-512 KB). Warm and in
4 KiB folios, a runner's faults map the pages 64 KiB around each fault (fault_around_bytes), whatever the
host's readahead.

What a harness can rely on is in docs/contracts.md (a virtual device's memory): once `adb push` of a file of
1 MiB or more has returned, the file is in the device's page cache, charged to its cgroup, as much of it as
the device's RAM holds. A file larger than what is free ends partly cached: the kernel reclaims as the reader
goes (the device's oldest page cache first, then the start of the file itself), as a phone's does. Files below
1 MiB stay in the daemon's page cache (a reader per pushed script would cost more than their pages weigh).
When the reader cannot do its work the file is left dropped (cold), never charged to the daemon. Files a
device's own processes write (`dd`, `cat >`) are charged to the device already, by the writer, and stay warm;
but their folios follow the write size where the filesystem has large folios (this host's ext4 does), so a
file written 1 MiB at a time is mapped in 1 MiB pieces, unlike on a phone. Measured in a device, one mapped
byte per MiB of a 64 MiB file: written by `dd bs=1M`, 63 MiB mapped; by `dd bs=64k`, `dd bs=4k` or `cat >`,
4 MiB, as on a phone.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgeship.vdevice.device import VirtualDevice

MOVE_MIN_BYTES = 1024 * 1024
# The reader drops and reads back this much at a time: 4 MiB reads keep more of the disk busy than 1 MiB (here
# ~830 against ~610 MB/s), and its buffer is the only RAM it adds to the interpreter's few MiB.
PIECE_BYTES = 4 * 1024 * 1024
# Handed over while the file arrives, a window at a time (a whole number of pieces).
WINDOW_BYTES = 4 * PIECE_BYTES
# The reader inside the device. argv: the descriptor of the file (random mode set on it), the piece size;
# stdin: one line per window, the offset it ends at; at end of stdin it takes the rest of the file.
READER = """
import os, sys
fd, piece = int(sys.argv[1]), int(sys.argv[2])
buffer = memoryview(bytearray(piece))
offset = 0
def take(end):
    global offset
    while end is None or offset < end:
        os.posix_fadvise(fd, offset, piece, os.POSIX_FADV_DONTNEED)
        count = os.preadv(fd, [buffer], offset)
        if not count:
            return
        offset += count
for line in sys.stdin:
    take(int(line))
take(None)
"""

SYNC_FILE_RANGE_WAIT_BEFORE = 1
SYNC_FILE_RANGE_WRITE = 2
SYNC_FILE_RANGE_WAIT_AFTER = 4


class PageCacheMover:
    """One SEND's file: its pages leave the daemon's page cache for the device's as it is written.

    ``wrote(count)`` after each block written to ``fd``, ``finish()`` when the file is complete (before the
    OKAY); leaving the ``with`` block ends a reader still running (a failed SEND).
    """

    def __init__(self, device: VirtualDevice, fd: int) -> None:
        self.device = device
        self.fd = fd
        self.written = 0  # bytes written to the file so far
        self.flushing = 0  # [handed, flushing) is being written back
        self.handed = 0  # [0, handed) is the reader's
        self.reader: subprocess.Popen[bytes] | None = None
        self.failure: str | None = None  # why the reader could not do its work

    def __enter__(self) -> PageCacheMover:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self.reader is not None and self.reader.returncode is None:
            self.device.processes.kill(self.reader)

    def wrote(self, count: int) -> None:
        self.written += count
        if self.reader is None and self.failure is None and self.written >= MOVE_MIN_BYTES:
            self._start_reader()
        boundary = self.written - self.written % WINDOW_BYTES
        if boundary <= self.flushing:
            return
        if self.flushing > self.handed:
            _sync_file_range(self.fd, self.handed, self.flushing - self.handed, wait=True)
            self._hand_over(self.flushing)
        _sync_file_range(self.fd, self.flushing, boundary - self.flushing, wait=False)
        self.flushing = boundary

    def finish(self) -> None:
        """Every page written out; the reader takes the rest of the file and is waited for."""
        if self.written < MOVE_MIN_BYTES:
            return  # small files stay where they are
        started = time.monotonic()
        os.fdatasync(self.fd)
        output = b""
        if self.reader is not None:
            assert self.reader.stdin is not None and self.reader.stdout is not None
            with contextlib.suppress(OSError):
                self.reader.stdin.close()  # the rest of the file
            with self.reader.stdout:
                output = self.reader.stdout.read()
            code = self.device.processes.reap(self.reader)
            if code != 0 and self.failure is None:
                self.failure = f"exit {code}: {output.decode(errors='replace').strip()[-300:]}"
        if self.failure is not None:
            # Cold is honest; left in the daemon's page cache the device would get the file for free.
            os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_DONTNEED)
            self.device.log.warning(
                "page cache of a pushed file left cold: the reader failed (%s)", self.failure
            )
            return
        self.device.log.info(
            "page cache of a %d-byte push moved into the device (its OKAY waited %.2f s)",
            self.written,
            time.monotonic() - started,
        )

    def _start_reader(self) -> None:
        # A file of its own (offset 0, readahead state of its own), opened through the fd: no path to resolve
        # again while the device may be renaming things. Random mode belongs to that open file.
        reader_fd = os.open(f"/proc/self/fd/{self.fd}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.posix_fadvise(reader_fd, 0, 0, os.POSIX_FADV_RANDOM)
            command = (
                f"exec {shlex.quote(sys.executable)} -I -S -c {shlex.quote(READER)} {reader_fd} {PIECE_BYTES}"
            )
            self.reader = self.device.start_command(command, merge_stderr=True, pass_fds=(reader_fd,))
        except OSError as exc:
            self.failure = f"cannot start it: {exc}"
        finally:
            os.close(reader_fd)

    def _hand_over(self, end: int) -> None:
        """[handed, end) is written out: the reader's to drop and read back."""
        self.handed = end
        if self.reader is None or self.failure is not None:
            return
        assert self.reader.stdin is not None
        try:
            os.write(self.reader.stdin.fileno(), f"{end}\n".encode())
        except OSError as exc:  # it died: finish() says why
            self.failure = f"it stopped reading ({exc.strerror})"


def drop_page_cache(fd: int) -> None:
    """Write a file's dirty pages out, then drop them from the page cache (uncharging its cgroup)."""
    os.fdatasync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def _load_sync_file_range() -> Callable[..., int] | None:
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    return function


_SYNC_FILE_RANGE = _load_sync_file_range()


def _sync_file_range(fd: int, offset: int, length: int, wait: bool) -> None:
    """Start writing a range out (``wait`` False), or write it out and wait until it is on disk."""
    if _SYNC_FILE_RANGE is None:  # a libc without it: fdatasync does the waiting, nothing starts early
        if wait:
            os.fdatasync(fd)
        return
    flags = SYNC_FILE_RANGE_WRITE
    if wait:
        flags |= SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WAIT_AFTER
    if _SYNC_FILE_RANGE(fd, offset, length, flags) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))
