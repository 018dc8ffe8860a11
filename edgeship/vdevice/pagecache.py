"""A pushed file's page cache as a phone has it right after `adb push`: in the device's RAM, in small folios.

Page cache is charged to the memory cgroup of the process that first brings a page in. The sync service writes
pushed files from the daemon, on the host, so their pages would be charged to the daemon's cgroup and a runner
mapping a just-pushed file would find it resident for free. A SEND of ``MOVE_MIN_BYTES`` or more to a device
with a memory cgroup therefore ends, before its OKAY, with ``move_to_device``:

1. ``drop_page_cache``: fdatasync, then POSIX_FADV_DONTNEED: the daemon's pages are written out and dropped.
2. ``warm_in_device``: one read of the whole file by a process in the device (started like a shell command, so
   inside its sandbox and its memory cgroup): the pages come back charged to the device. The reader is handed
   the file as its stdin with POSIX_FADV_RANDOM set on it, and reads 4 MiB at a time: random mode turns
   readahead off, so the kernel brings exactly the pages each read asks for, as single 4 KiB folios.

Why not leave the pages cold after step 1: whoever reads the file first then brings it in, and a read in file
order (the push's own sha256sum check; a mapped pass front to back) goes through readahead, whose window is
the host block device's ``read_ahead_kb`` (8 MiB on this machine's virtio disk) and whose folios grow large;
this host's kernel (Linux 6.18, ext4) maps a large folio whole when a fault lands in it. Measured here: after
a front-to-back read of the pushed liblitert-lm.so (132 MB), the native runner's peak file-backed memory was
116 MB instead of 59 MB; one mapped byte per MiB of a cold 128 MiB file, touched in order, mapped 99 MiB of it
(8 MiB in 4 KiB folios). A phone right after `adb push` has none of that: adbd's writes sit in its own page
cache, warm, in 4 KiB folios (and its flash readahead is 128-512 KB). Warm and in 4 KiB folios, a runner's
faults map the pages 64 KiB around each fault (fault_around_bytes), whatever the host's readahead.

What a harness can rely on is in docs/contracts.md (a virtual device's memory): once `adb push` of a file
of 1 MiB or more has returned, the file is in the device's page cache, charged to its cgroup, as much of it
as the device's RAM holds. A file larger than what is free ends partly cached: the kernel reclaims as the
reader goes (the device's oldest page cache first, then the start of the file itself), as a phone's does.
Files below 1 MiB stay in the daemon's page cache (a disk flush per pushed script would cost more than their
pages weigh). Files a device's own processes write (`dd`, `cat >`) are charged to the device already, by the
writer, and stay warm; but their folios follow the write size where the filesystem has large folios (this
host's ext4 does), so a file written 1 MiB at a time is mapped in 1 MiB pieces, unlike on a phone. Measured
in a device, one mapped byte per MiB of a 64 MiB file: written by `dd bs=1M`, 63 MiB mapped; by `dd bs=64k`,
`dd bs=4k` or `cat >`, 4 MiB, as on a phone.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgeship.vdevice.device import VirtualDevice

MOVE_MIN_BYTES = 1024 * 1024
# The reader inside the device: its stdin is the file (random mode already set on it by the daemon).
# `dd` is in every device (toybox's, or the host's coreutils on its PATH); its 4 MiB buffer is the only RAM it
# adds. Reads of 4 MiB keep more of the disk busy than 1 MiB (here ~830 against ~610 MB/s) and, random mode
# being on, still bring in 4 KiB folios.
WARM_COMMAND = "exec dd bs=4194304 of=/dev/null"


def move_to_device(device: VirtualDevice, fd: int) -> bool:
    """The daemon's pages of the file open at ``fd`` out of its page cache, then into the device's."""
    started = time.monotonic()
    drop_page_cache(fd)
    warmed = warm_in_device(device, fd)
    if warmed:
        device.log.info(
            "page cache of a %d-byte push moved into the device in %.2f s",
            os.fstat(fd).st_size,
            time.monotonic() - started,
        )
    return warmed


def drop_page_cache(fd: int) -> None:
    """Write a file's dirty pages out, then drop them from the page cache (uncharging the writer's cgroup)."""
    os.fdatasync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def warm_in_device(device: VirtualDevice, fd: int) -> bool:
    """Read the file open at ``fd`` once from inside ``device``, in 4 KiB folios; False (logged) on failure.

    A failure leaves the file cold, which only changes how it is measured; the push itself has succeeded.
    """
    # A file of its own (offset 0, its own readahead state), opened through the fd: no path to resolve again
    # while the device may be renaming things. Random mode is a property of that open file, so the reader
    # inherits it with its stdin.
    reader_fd = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.posix_fadvise(reader_fd, 0, 0, os.POSIX_FADV_RANDOM)
        process = device.start_command(WARM_COMMAND, merge_stderr=True, stdin=reader_fd)
    except OSError as exc:
        device.log.warning("cannot start the page-cache reader in the device: %s", exc)
        return False
    finally:
        os.close(reader_fd)
    assert process.stdout is not None
    with process.stdout:
        output = process.stdout.read()
    code = device.processes.reap(process)
    if code != 0:
        message = output.decode(errors="replace").strip()[-300:]
        device.log.warning("the page-cache reader in the device failed (exit %d): %s", code, message)
        return False
    return True
