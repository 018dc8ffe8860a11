"""``sync:``: file transfer (STAT, LIST, SEND, RECV, QUIT and the v2 STA2/LST2/LIS2).

The sync stream is a byte stream across WRTE boundaries (the host coalesces SEND+DATA+DONE into one
packet and splits others), so requests are read with ``Stream.read_exact``. Like adbd, the loop ends after
QUIT, end of stream, or any failure reported with FAIL. Paths go through the sandbox resolver, so nothing
outside /data/local/tmp and /sdcard can be read or written.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import struct
from pathlib import Path
from typing import TYPE_CHECKING

from edgeship.vdevice.sandbox import VIRTUAL_DIRECTORIES, ResolvedPath, SandboxPathError
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
        self.sandbox = device.sandbox
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

    # ---- stat and list ------------------------------------------------------------------------------
    def _stat(self, path: str, follow: bool) -> os.stat_result:
        resolved = self.sandbox.resolve(path, follow_last=follow)
        if resolved.host_path is None:
            return _fake_stat(VIRTUAL_DIRECTORY_MODE)
        return os.stat(resolved.host_path, follow_symlinks=follow)

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
            resolved = self.sandbox.resolve(path, follow_last=True)
        except SandboxPathError:
            return []
        if resolved.host_path is None:
            names = [".", "..", *VIRTUAL_DIRECTORIES[resolved.device_path]]
            return [(name, _fake_stat(VIRTUAL_DIRECTORY_MODE)) for name in names]
        entries = []
        try:
            names = [".", "..", *sorted(os.listdir(resolved.host_path))]
        except OSError:
            return []
        for name in names:
            try:
                if name == ".." and resolved.host_path in self.sandbox.roots():
                    info = _fake_stat(VIRTUAL_DIRECTORY_MODE)  # the host folder above is not the device's
                else:
                    info = os.lstat(resolved.host_path / name)
            except OSError:
                continue  # adbd skips entries whose lstat fails
            entries.append((name, info))
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
            resolved = self.sandbox.resolve(path, follow_last=False)
        except SandboxPathError as exc:
            self._discard_and_fail(f"couldn't create file: {_write_error(exc.errno)}")
            return
        if resolved.host_path is None:
            self._discard_and_fail("couldn't create file: Is a directory")
            return
        if stat.S_ISLNK(mode):
            self._receive_symlink(resolved)
        else:
            self._receive_file(resolved, mode)

    def _prepare_target(self, resolved: ResolvedPath) -> Path:
        host = resolved.host_path
        assert host is not None
        parent_device = resolved.device_path.rsplit("/", 1)[0] or "/"
        parent = self.sandbox.resolve(parent_device, follow_last=True)
        if parent.host_path is None or not self.sandbox.contains(parent.host_path):
            raise SandboxPathError(errno.EACCES, resolved.device_path)
        target = parent.host_path / host.name
        if target in self.sandbox.roots():
            raise SandboxPathError(errno.EISDIR, resolved.device_path)
        # secure_mkdirs: the missing parents, created inside the sandbox only (resolve checked the path).
        os.makedirs(parent.host_path, mode=0o775, exist_ok=True)
        try:
            info = os.lstat(target)
        except FileNotFoundError:
            return target
        if stat.S_ISDIR(info.st_mode):
            raise SandboxPathError(errno.EISDIR, resolved.device_path)
        os.unlink(target)  # adbd replaces an existing file or symlink
        return target

    def _receive_file(self, resolved: ResolvedPath, mode: int) -> None:
        try:
            target = self._prepare_target(resolved)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except SandboxPathError as exc:
            self._discard_and_fail(f"couldn't create file: {_write_error(exc.errno)}")
            return
        except OSError as exc:
            self._discard_and_fail(f"couldn't create file: {os.strerror(exc.errno or errno.EIO)}")
            return
        completed = False
        try:
            mtime = self._receive_data(fd)
            # adbd copies the user bits to group and other: 0644 arrives as 0666, 0755 as 0777.
            permissions = mode & 0o777
            permissions |= ((permissions >> 6) & 0o7) * 0o011
            os.fchmod(fd, permissions)
            os.close(fd)
            fd = -1
            os.utime(target, (mtime, mtime), follow_symlinks=False)
            completed = True
        except SyncProtocolError as exc:
            self.fail(str(exc.strerror))
        except OSError as exc:
            if fd >= 0:
                os.close(fd)
                fd = -1
            _unlink_quietly(target)
            self._discard_and_fail(f"write failed: {os.strerror(exc.errno or errno.EIO)}")
            return
        finally:
            if fd >= 0:
                os.close(fd)
            if not completed:
                _unlink_quietly(target)
        self.stream.write(b"OKAY" + bytes(4))

    def _receive_data(self, fd: int | None) -> int:
        """Copy DATA blocks to ``fd`` until DONE; returns DONE's mtime."""
        while True:
            request_id, length = REQUEST.unpack(self.stream.read_exact(REQUEST.size))
            if request_id == b"DATA":
                if length > SYNC_DATA_MAX:
                    raise SyncProtocolError("data block too large")
                self.stream.copy_to(fd, length)
            elif request_id == b"DONE":
                return length
            else:
                raise SyncProtocolError(f"invalid data message {request_id!r}")

    def _receive_symlink(self, resolved: ResolvedPath) -> None:
        target_bytes = bytearray()
        while True:
            request_id, length = REQUEST.unpack(self.stream.read_exact(REQUEST.size))
            if request_id == b"DATA" and length <= SYNC_DATA_MAX:
                target_bytes += self.stream.read_exact(length)
            elif request_id == b"DONE":
                break
            else:
                self.fail("invalid data message")
        try:
            link = self._prepare_target(resolved)
            # A link may point anywhere: every later use goes through the resolver (and bwrap).
            os.symlink(bytes(target_bytes).rstrip(b"\0"), link)
        except SandboxPathError as exc:
            self.fail(f"couldn't create symlink: {_write_error(exc.errno)}")
        except OSError as exc:
            self.fail(f"couldn't create symlink: {os.strerror(exc.errno or errno.EIO)}")
        self.stream.write(b"OKAY" + bytes(4))

    def _discard_and_fail(self, message: str) -> None:
        # adbd keeps reading (and dropping) DATA until DONE, so the client gets the FAIL after its DONE.
        with contextlib.suppress(SyncProtocolError):
            self._receive_data(None)
        self.fail(message)

    # ---- recv (pull) --------------------------------------------------------------------------------
    def do_recv(self, path: str) -> None:
        try:
            resolved = self.sandbox.resolve(path, follow_last=True)
            if resolved.host_path is None:
                raise SandboxPathError(errno.EISDIR, path)
            fd = os.open(resolved.host_path, os.O_RDONLY | os.O_CLOEXEC)
        except SandboxPathError as exc:
            self.fail(f"open failed: {os.strerror(exc.errno)}")
            return
        except OSError as exc:
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


def _write_error(error: int) -> str:
    # Outside the sandbox the device answers like a phone's read-only system: permission denied.
    return os.strerror(errno.EACCES if error == errno.ENOENT else error)


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


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
