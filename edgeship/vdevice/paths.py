"""Device paths for the sync service: resolved as the device sees them, opened without leaving its folders.

The sync service runs in the daemon, on the host, while the device's own processes can rename folders and
create symlinks under /data/local/tmp and /sdcard at any moment. A path resolved once and reopened by name
(lstat, then ``open``) can therefore be redirected between the two calls: a folder swapped for a symlink to a
host folder makes the host's kernel follow it. So every file operation here is relative to a file descriptor:

1. ``resolve`` follows the device's own symlinks as *device* paths (an absolute target is a device path,
   ``..`` stays below ``/``), reading each component with ``fstatat``/``readlinkat`` relative to its parent's
   fd. The result is a root (``/data/local/tmp`` or ``/sdcard``) and components that held no symlink when
   looked at.
2. The I/O then opens those components beneath the root's fd with ``openat2(RESOLVE_BENEATH |
   RESOLVE_NO_SYMLINKS)``, or, where the kernel has no openat2, walks them one by one with
   ``O_NOFOLLOW | O_DIRECTORY``. A component swapped for a symlink in between makes the operation fail (ELOOP,
   ENOTDIR): never follow. Creations (files, symlinks, folders) are done with ``*at`` calls in a parent
   directory reached that way, so they land inside the sandbox folder whatever the device does meanwhile (a
   directory fd cannot be moved out of the sandbox's bind mount by the device: rename across mounts fails).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DATA_LOCAL_TMP = "/data/local/tmp"
SDCARD = "/sdcard"
# Directories above the sandbox roots that a device shows (adb push does a STAT of its target's parent).
VIRTUAL_DIRECTORIES = {"/": ["data", "sdcard"], "/data": ["local"], "/data/local": ["tmp"]}
MAX_SYMLINK_HOPS = 40
PATH_MAX = 4096

# openat2(2): <linux/openat2.h>. The syscall number is the same on every architecture (the generic table).
SYS_OPENAT2 = 437
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
_DIRECTORY_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class SandboxPathError(Exception):
    """A device path that cannot be used; ``errno`` is the Linux error adbd would report."""

    def __init__(self, error: int, path: str) -> None:
        super().__init__(f"{path}: {os.strerror(error)}")
        self.errno = error
        self.path = path


@dataclass(frozen=True)
class Location:
    """A device path after following its symlinks: components below a sandbox root, or a virtual directory."""

    device_path: str
    root: str | None  # DATA_LOCAL_TMP or SDCARD; None for the virtual directories above them
    parts: tuple[str, ...] = ()
    host_path: Path | None = None  # where it is on the host (for messages and tests; never opened by name)

    @property
    def is_virtual_directory(self) -> bool:
        return self.root is None

    @property
    def is_root(self) -> bool:
        return self.root is not None and not self.parts


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


class _Openat2:
    """``openat2`` through libc's ``syscall``; ``available`` turns False for good on a kernel without it."""

    def __init__(self) -> None:
        self.available = True
        try:
            self._syscall = ctypes.CDLL(None, use_errno=True).syscall
        except (OSError, AttributeError):
            self.available = False

    def open(self, dir_fd: int, path: str, flags: int, mode: int) -> int | None:
        """The new fd, or None when openat2 cannot be used here (then the caller walks the components)."""
        if not self.available:
            return None
        how = _OpenHow(flags, mode if flags & os.O_CREAT else 0, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)
        fd = self._syscall(
            ctypes.c_long(SYS_OPENAT2),
            ctypes.c_int(dir_fd),
            os.fsencode(path),
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
        if fd >= 0:
            return int(fd)
        error = ctypes.get_errno()
        if error == errno.ENOSYS:
            self.available = False  # kernels before 5.6
            return None
        if error == errno.EPERM:
            return None  # a seccomp filter that denies openat2 (older container runtimes): walk instead
        raise OSError(error, os.strerror(error), path)


OPENAT2 = _Openat2()


class DeviceFiles:
    """The device's writable folders, opened once; every lookup and I/O is relative to their descriptors."""

    def __init__(self, roots: dict[str, Path]) -> None:
        self._folders = dict(roots)
        self._fds: dict[str, int] = {}
        self._lock = threading.Lock()

    # ---- root descriptors ---------------------------------------------------------------------------
    def root_fd(self, root: str) -> int:
        with self._lock:
            fd = self._fds.get(root)
            if fd is None:
                fd = os.open(self._folders[root], os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
                self._fds[root] = fd
            return fd

    def open_roots(self) -> None:
        for root in self._folders:
            self.root_fd(root)

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()

    def host_folders(self) -> list[Path]:
        return list(self._folders.values())

    # ---- resolution ---------------------------------------------------------------------------------
    def resolve(self, device_path: str, follow_last: bool = True) -> Location:
        """Follow the device path's symlinks as the device would; raise SandboxPathError outside the roots.

        ENOENT for paths outside the sandbox roots and the virtual directories, ELOOP for symlink loops,
        ENAMETOOLONG beyond PATH_MAX, ENOTDIR when a component is a file.
        """
        if len(device_path.encode("utf-8", "surrogateescape")) > PATH_MAX:
            raise SandboxPathError(errno.ENAMETOOLONG, device_path)
        if "\0" in device_path:
            raise SandboxPathError(errno.EINVAL, device_path)
        pending = _components(device_path)
        pending.reverse()  # a stack: the next component is at the end
        done: list[str] = []
        hops = 0
        while pending:
            part = pending.pop()
            if part == "..":
                if done:
                    done.pop()
                continue
            done.append(part)
            split = self._split(done)
            if split is None:
                if "/" + "/".join(done) in VIRTUAL_DIRECTORIES:
                    continue
                raise SandboxPathError(errno.ENOENT, device_path)
            root, parts = split
            if not parts or (not pending and not follow_last):
                continue  # a root is a mount point, never a link
            target = self._link_target(root, parts, device_path, more_follows=bool(pending))
            if target is None:
                continue
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                raise SandboxPathError(errno.ELOOP, device_path)
            done.pop()
            if target.startswith("/"):
                done = []  # an absolute target is a device path, like on the device
            pending.extend(reversed(_components(target)))
        final = "/" + "/".join(done)
        split = self._split(done)
        if split is None:
            if final in VIRTUAL_DIRECTORIES:
                return Location(final, None)
            raise SandboxPathError(errno.ENOENT, device_path)
        root, parts = split
        return Location(final, root, parts, self._folders[root].joinpath(*parts))

    def _split(self, done: list[str]) -> tuple[str, tuple[str, ...]] | None:
        path = "/" + "/".join(done)
        for root in self._folders:
            if path == root:
                return root, ()
            if path.startswith(root + "/"):
                return root, tuple(path[len(root) + 1 :].split("/"))
        return None

    def _link_target(
        self, root: str, parts: tuple[str, ...], device_path: str, more_follows: bool
    ) -> str | None:
        """The target when the last component is a symlink; None when it is anything else or missing."""
        try:
            with self.directory(root, parts[:-1]) as parent:
                info = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
                if stat.S_ISLNK(info.st_mode):
                    return os.fsdecode(os.readlink(parts[-1], dir_fd=parent))
        except FileNotFoundError:
            return None  # nothing below a missing component can be a symlink: the rest maps lexically
        except NotADirectoryError:
            raise SandboxPathError(errno.ENOTDIR, device_path) from None
        except OSError as exc:
            raise SandboxPathError(exc.errno or errno.EIO, device_path) from None
        if more_follows and not stat.S_ISDIR(info.st_mode):
            raise SandboxPathError(errno.ENOTDIR, device_path)
        return None

    # ---- opening beneath a root ---------------------------------------------------------------------
    def open(self, location: Location, flags: int, mode: int = 0) -> int:
        """Open ``location`` (every component, the last included, must not be a symlink)."""
        assert location.root is not None
        return self.open_parts(location.root, location.parts, flags, mode)

    def open_parts(self, root: str, parts: tuple[str, ...], flags: int, mode: int = 0) -> int:
        flags |= os.O_CLOEXEC | os.O_NOFOLLOW
        root_fd = self.root_fd(root)
        fd = OPENAT2.open(root_fd, "/".join(parts) or ".", flags, mode)
        if fd is not None:
            return fd
        return self._walk_open(root_fd, parts, flags, mode)

    @staticmethod
    def _walk_open(root_fd: int, parts: tuple[str, ...], flags: int, mode: int) -> int:
        """The fallback of openat2: one component at a time, never following a symlink."""
        if not parts:
            return os.open(".", flags & ~os.O_NOFOLLOW, mode, dir_fd=root_fd)
        current = root_fd
        try:
            for part in parts[:-1]:
                following = os.open(part, _DIRECTORY_FLAGS, dir_fd=current)
                if current != root_fd:
                    os.close(current)
                current = following
            fd = os.open(parts[-1], flags, mode, dir_fd=current)
            if flags & os.O_PATH and stat.S_ISLNK(os.fstat(fd).st_mode):
                os.close(fd)  # O_PATH|O_NOFOLLOW opens a symlink itself; the caller wanted what it names
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), parts[-1])
            return fd
        finally:
            if current != root_fd:
                os.close(current)

    @contextlib.contextmanager
    def directory(self, root: str, parts: tuple[str, ...], create: bool = False) -> Iterator[int]:
        """An fd of the folder ``parts`` below ``root`` (``create``: mkdir -p, each level in its parent)."""
        if not create:
            fd = self.open_parts(root, parts, os.O_PATH | os.O_DIRECTORY)
        else:
            fd = self._make_directories(root, parts)
        try:
            yield fd
        finally:
            os.close(fd)

    def _make_directories(self, root: str, parts: tuple[str, ...]) -> int:
        current = os.dup(self.root_fd(root))
        try:
            for part in parts:
                # adbd's secure_mkdirs: 0775 folders (before the umask), like `adb push` onto a phone.
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o775, dir_fd=current)
                following = os.open(part, _DIRECTORY_FLAGS, dir_fd=current)
                os.close(current)
                current = following
        except BaseException:
            os.close(current)
            raise
        return current


def _components(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]
