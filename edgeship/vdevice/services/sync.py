"""``sync:``: file transfer (STAT, LIST, SEND, RECV, QUIT and the v2 STA2/LST2/LIS2).

The sync stream is a byte stream across WRTE boundaries (the host coalesces SEND+DATA+DONE into one packet and
splits others), so requests are read with ``Stream.read_exact``. Like adbd, the loop ends after QUIT, end of
stream, or any failure reported with FAIL. Paths go through ``paths.DeviceFiles``: resolved as the device sees
them and opened relative to the sandbox folders' descriptors, never by a host path name, so nothing outside
/data/local/tmp and /sdcard can be read or written even while the device swaps folders and symlinks.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING

from edgeship.vdevice.pagecache import PageCacheMover
from edgeship.vdevice.paths import PATH_MAX, VIRTUAL_DIRECTORIES, Location, SandboxPathError
from edgeship.vdevice.transport import Stream, StreamClosed

if TYPE_CHECKING:
    from edgeship.vdevice.device import VirtualDevice
    from edgeship.vdevice.transport import ServiceHandler

REQUEST = struct.Struct("<4sI")
STAT_V1 = struct.Struct("<4sIII")
STAT_V2 = struct.Struct("<4sIQQIIIIQqqq")
DENT_V1 = struct.Struct("<4sIIII")
DENT_V2 = struct.Struct("<4sIQQIIIIQqqqI")
MAX_PATH = 1024
SYNC_DATA_MAX = 64 * 1024
# What a virtual directory above the sandbox looks like: root-owned, like /data on a phone.
VIRTUAL_DIRECTORY_MODE = stat.S_IFDIR | 0o771


class SyncFailure(Exception):
    """Ends the sync session after a FAIL message, like adbd."""


def open_sync(device: VirtualDevice) -> ServiceHandler:
    return lambda stream: SyncSession(device, stream).run()


def _fake_stat(mode: int) -> os.stat_result:
    return os.stat_result((mode, 0, 0, 2, 0, 0, 4096, 0, 0, 0))


class SyncSession:
    def __init__(self, device: VirtualDevice, stream: Stream) -> None:
        self.device = device
        self.files = device.sandbox.files
        self.stream = stream

    def run(self) -> None:
        handlers = {
            b"STAT": self.do_stat,
            b"STA2": self.do_sta2,
            b"LST2": self.do_lst2,
            b"LIST": self.do_list,
            b"LIS2": self.do_lis2,
            b"SEND": self.do_send,
            b"RECV": self.do_recv,
        }
        try:
            while True:
                try:
                    raw = self.stream.read_exact(REQUEST.size)
                except StreamClosed:
                    return  # adbutils never sends QUIT: it just closes
                request_id, length = REQUEST.unpack(raw)
                if request_id == b"QUIT":
                    return
                handler = handlers.get(request_id)
                if handler is not None:
                    if length > MAX_PATH:
                        self.fail("path too long")
                    handler(self.stream.read_exact(length).decode("utf-8", "surrogateescape"))
                else:
                    self.fail(f"unknown command {int.from_bytes(request_id, 'little'):08x}")
        except SyncFailure:
            return

    # ---- replies ------------------------------------------------------------------------------------
    def fail(self, message: str) -> None:
        self.device.log.info("sync on stream %d: FAIL %s", self.stream.local_id, message)
        data = message.encode("utf-8", "replace")
        self.stream.write(b"FAIL" + struct.pack("<I", len(data)) + data)
        raise SyncFailure(message)

    # ---- stat and list ------------------------------------------------------------------------------------
    def _stat(self, path: str, follow: bool) -> os.stat_result:
        location = self.files.resolve(path, follow_last=follow)
        if location.root is None:
            return _fake_stat(VIRTUAL_DIRECTORY_MODE)
        if follow or location.is_root:
            fd = self.files.open(location, os.O_PATH)
            try:
                return os.fstat(fd)
            finally:
                os.close(fd)
        with self.files.directory(location.root, location.parts[:-1]) as parent:
            return os.stat(location.parts[-1], dir_fd=parent, follow_symlinks=False)

    def do_stat(self, path: str) -> None:
        try:
            info = self._stat(path, follow=False)
            reply = STAT_V1.pack(
                b"STAT", info.st_mode, info.st_size & 0xFFFFFFFF, int(info.st_mtime) & 0xFFFFFFFF
            )
        except (OSError, SandboxPathError):
            reply = STAT_V1.pack(b"STAT", 0, 0, 0)
        self.stream.write(reply)

    def _stat_v2(self, request_id: bytes, path: str, follow: bool) -> None:
        try:
            info = self._stat(path, follow=follow)
            reply = STAT_V2.pack(request_id, 0, *_stat_v2_fields(info))
        except SandboxPathError as exc:
            reply = STAT_V2.pack(request_id, exc.errno, *([0] * 10))
        except OSError as exc:
            reply = STAT_V2.pack(request_id, exc.errno or errno.EIO, *([0] * 10))
        self.stream.write(reply)

    def do_sta2(self, path: str) -> None:
        self._stat_v2(b"STA2", path, follow=True)

    def do_lst2(self, path: str) -> None:
        self._stat_v2(b"LST2", path, follow=False)

    def _entries(self, path: str) -> list[tuple[str, os.stat_result]]:
        try:
            location = self.files.resolve(path, follow_last=True)
        except SandboxPathError:
            return []
        if location.root is None:
            names = [".", "..", *VIRTUAL_DIRECTORIES[location.device_path]]
            return [(name, _fake_stat(VIRTUAL_DIRECTORY_MODE)) for name in names]
        try:
            fd = self.files.open(location, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return []
        try:
            entries = [(".", os.fstat(fd))]
            if location.is_root:
                entries.append(
                    ("..", _fake_stat(VIRTUAL_DIRECTORY_MODE))
                )  # the host folder above is not the device's
            else:
                entries.append(("..", os.stat("..", dir_fd=fd)))
            for name in sorted(os.listdir(fd)):
                try:
                    entries.append((name, os.stat(name, dir_fd=fd, follow_symlinks=False)))
                except OSError:
                    continue  # adbd skips entries whose lstat fails
        finally:
            os.close(fd)
        return entries

    def do_list(self, path: str) -> None:
        out = bytearray()
        for name, info in self._entries(path):
            encoded = name.encode("utf-8", "surrogateescape")
            out += DENT_V1.pack(
                b"DENT",
                info.st_mode,
                info.st_size & 0xFFFFFFFF,
                int(info.st_mtime) & 0xFFFFFFFF,
                len(encoded),
            )
            out += encoded
        out += DENT_V1.pack(b"DONE", 0, 0, 0, 0)
        self.stream.write(out)

    def do_lis2(self, path: str) -> None:
        out = bytearray()
        for name, info in self._entries(path):
            encoded = name.encode("utf-8", "surrogateescape")
            out += DENT_V2.pack(b"DNT2", 0, *_stat_v2_fields(info), len(encoded))
            out += encoded
        # DONE padded to a whole 76-byte entry: a 72-byte one makes `adb ls` hang.
        out += b"DONE" + bytes(DENT_V2.size - 4)
        self.stream.write(out)

    # ---- send (push) --------------------------------------------------------------------------------
    def do_send(self, spec: str) -> None:
        path, comma, mode_text = spec.rpartition(",")
        if not comma:
            path, mode_text = spec, ""
        mode = _parse_mode(mode_text)
        try:
            location = self.files.resolve(path, follow_last=False)
        except SandboxPathError as exc:
            self._discard_and_fail(f"couldn't create file: {_write_error(exc)}")
            return
        if location.root is None or location.is_root:
            self._discard_and_fail("couldn't create file: Is a directory")
            return
        if stat.S_ISLNK(mode):
            self._receive_symlink(location)
        else:
            self._receive_file(location, mode)

    @contextlib.contextmanager
    def _target_folder(self, location: Location) -> Iterator[int]:
        """The fd of the folder to hold ``location`` (mkdir -p'ed), an old entry of that name removed."""
        assert location.root is not None
        with self.files.directory(location.root, location.parts[:-1], create=True) as parent:
            name = location.parts[-1]
            try:
                info: os.stat_result | None = os.stat(name, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                info = None
            if info is not None and stat.S_ISDIR(info.st_mode):
                raise SandboxPathError(errno.EISDIR, location.device_path)
            if info is not None:  # adbd replaces an existing file or symlink
                with contextlib.suppress(FileNotFoundError):  # a concurrent SEND of it took it first
                    os.unlink(name, dir_fd=parent)
            yield parent

    def _receive_file(self, location: Location, mode: int) -> None:
        name = location.parts[-1]
        with contextlib.ExitStack() as stack:
            try:
                parent = stack.enter_context(self._target_folder(location))
                fd = _create_replacing(parent, name)
            except (SandboxPathError, OSError) as exc:
                self._discard_and_fail(f"couldn't create file: {_write_error(exc)}")
                return
            try:
                self._write_file(fd, mode)
            except BaseException:
                _unlink_quietly(parent, name)  # a partial file is removed, like adbd does
                raise
            finally:
                os.close(fd)
        self.stream.write(b"OKAY" + bytes(4))

    def _write_file(self, fd: int, mode: int) -> None:
        with contextlib.ExitStack() as stack:
            # Pages written here are charged to the daemon's cgroup: on a device with RAM of its own they move
            # into its page cache as the file arrives, the OKAY waiting for the last of them, as adbd's writes
            # sit in a phone's page cache (see pagecache).
            mover = None
            if self.device.memory is not None:
                mover = stack.enter_context(PageCacheMover(self.device, fd))
            try:
                mtime = self._receive_data(fd, mover)
            except SyncProtocolError as exc:
                self.fail(str(exc.strerror))
            except OSError as exc:  # the disk is full: drain to DONE, then FAIL, like adbd
                self._discard_and_fail(f"write failed: {os.strerror(exc.errno or errno.EIO)}")
            try:
                self._finish_file(fd, mode, mtime)
                if mover is not None:
                    mover.finish()
            except OSError as exc:  # DONE has been read: FAIL at once (draining would wait for nothing)
                self.fail(f"write failed: {os.strerror(exc.errno or errno.EIO)}")

    def _finish_file(self, fd: int, mode: int, mtime: int) -> None:
        # adbd copies the user bits to group and other: 0644 arrives as 0666, 0755 as 0777.
        permissions = mode & 0o777
        permissions |= ((permissions >> 6) & 0o7) * 0o011
        os.fchmod(fd, permissions)
        os.utime(fd, (mtime, mtime))

    def _receive_data(self, fd: int | None, mover: PageCacheMover | None = None) -> int:
        """Copy DATA blocks to ``fd`` (telling ``mover`` of each) until DONE; returns DONE's mtime."""
        while True:
            request_id, length = REQUEST.unpack(self.stream.read_exact(REQUEST.size))
            if request_id == b"DATA":
                if length > SYNC_DATA_MAX:
                    raise SyncProtocolError("data block too large")
                self.stream.copy_to(fd, length)
                if mover is not None:
                    mover.wrote(length)
            elif request_id == b"DONE":
                return length
            else:
                raise SyncProtocolError(f"invalid data message {request_id!r}")

    def _receive_symlink(self, location: Location) -> None:
        target_bytes = bytearray()
        while True:
            request_id, length = REQUEST.unpack(self.stream.read_exact(REQUEST.size))
            if request_id == b"DATA" and length <= SYNC_DATA_MAX:
                if len(target_bytes) + length > PATH_MAX:
                    # A link target is a path: never collect more than PATH_MAX of it (adbd takes one block).
                    self.fail(f"couldn't create symlink: target longer than {PATH_MAX} bytes")
                target_bytes += self.stream.read_exact(length)
            elif request_id == b"DONE":
                break
            else:
                self.fail("invalid data message")
        try:
            with self._target_folder(location) as parent:
                # A link may point anywhere: every later use goes through the resolver (and bwrap).
                os.symlink(bytes(target_bytes).rstrip(b"\0"), location.parts[-1], dir_fd=parent)
        except (SandboxPathError, OSError) as exc:
            self.fail(f"couldn't create symlink: {_write_error(exc)}")
        self.stream.write(b"OKAY" + bytes(4))

    def _discard_and_fail(self, message: str) -> None:
        # adbd keeps reading (and dropping) DATA until DONE, so the client gets the FAIL after its DONE.
        with contextlib.suppress(SyncProtocolError):
            self._receive_data(None)
        self.fail(message)

    # ---- recv (pull) --------------------------------------------------------------------------------
    def do_recv(self, path: str) -> None:
        try:
            location = self.files.resolve(path, follow_last=True)
            if location.root is None:
                raise SandboxPathError(errno.EISDIR, path)
            fd = self.files.open(location, os.O_RDONLY)
        except (SandboxPathError, OSError) as exc:
            self.fail(f"open failed: {os.strerror(exc.errno or errno.EIO)}")
            return
        try:
            self._send_file(fd)
        finally:
            os.close(fd)

    def _send_file(self, fd: int) -> None:
        # Fill one WRTE-sized buffer with as many 64 KiB DATA blocks as fit, then send it in one packet.
        block = SYNC_DATA_MAX
        per_packet = max(1, self.stream.max_payload // (block + REQUEST.size))
        buffer = bytearray(per_packet * (block + REQUEST.size) + REQUEST.size)
        view = memoryview(buffer)
        while True:
            position = 0
            end_of_file = False
            for _ in range(per_packet):
                try:
                    count = os.readv(fd, [view[position + REQUEST.size : position + REQUEST.size + block]])
                except IsADirectoryError:
                    self.fail("read failed: Is a directory")
                if count == 0:
                    end_of_file = True
                    break
                REQUEST.pack_into(buffer, position, b"DATA", count)
                position += REQUEST.size + count
            if end_of_file:
                REQUEST.pack_into(buffer, position, b"DONE", 0)
                position += REQUEST.size
                self.stream.write(view[:position])
                return
            self.stream.write(view[:position])


class SyncProtocolError(OSError):
    """The client broke the SEND framing; reported as FAIL and the session ends."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EPROTO, message)


def _parse_mode(text: str) -> int:
    """strtoul(text, 0): decimal, 0x hex, or leading-0 octal; files default to 0644."""
    text = text.strip()
    try:
        if text.lower().startswith("0x"):
            return int(text, 16)
        if text.startswith("0") and len(text) > 1:
            return int(text, 8)
        return int(text or "33188", 10)
    except ValueError:
        return stat.S_IFREG | 0o644


def _write_error(exc: SandboxPathError | OSError) -> str:
    error = exc.errno or errno.EIO
    if isinstance(exc, SandboxPathError) and error == errno.ENOENT:
        # Outside the sandbox the device answers like a phone's read-only system: permission denied.
        error = errno.EACCES
    return os.strerror(error)


def _stat_v2_fields(info: os.stat_result) -> tuple[int, ...]:
    return (
        info.st_dev & 0xFFFFFFFFFFFFFFFF,
        info.st_ino & 0xFFFFFFFFFFFFFFFF,
        info.st_mode,
        info.st_nlink & 0xFFFFFFFF,
        info.st_uid & 0xFFFFFFFF,
        info.st_gid & 0xFFFFFFFF,
        info.st_size,
        int(info.st_atime),
        int(info.st_mtime),
        int(info.st_ctime),
    )


def _create_replacing(folder_fd: int, name: str, tries: int = 8) -> int:
    """A new file ``name`` in the folder, replacing one a concurrent SEND of the same path created meanwhile
    (adbd lets two pushes of one path both succeed, the last one's bytes staying; two edgeship pushes write
    the store marker at once). O_EXCL with O_NOFOLLOW: never through a symlink planted in between."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(tries - 1):
        try:
            return os.open(name, flags, 0o600, dir_fd=folder_fd)
        except FileExistsError:
            try:
                info = os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # gone again: try once more
            if stat.S_ISDIR(info.st_mode):
                raise
            _unlink_quietly(folder_fd, name)
    return os.open(name, flags, 0o600, dir_fd=folder_fd)


def _unlink_quietly(folder_fd: int, name: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name, dir_fd=folder_fd)
