"""The device's filesystem and how its commands are confined.

Host layout under the device root::

    data-local-tmp/   the device's /data/local/tmp
    sdcard/           the device's /sdcard
    system/bin/       toybox applet links, sh (mksh), getprop; mounted at /system/bin
    system/build.prop the properties getprop answers with

Commands run under bubblewrap: every top-level host folder read-only, a tmpfs root (so /data, /sdcard and
/system can exist without touching the host), the two sandbox folders bound read-write, a private /tmp (the
host Python environment the device runs with stays visible read-only when it lives under /tmp), a fresh /proc
and /dev, all capabilities dropped and a private PID namespace, so when the command's shell
exits or is killed nothing it started survives. Sync paths are resolved here too, component by component,
so ``..`` and symlinks cannot reach outside the two sandbox folders.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from edgeship.errors import DeviceError

log = logging.getLogger("edgeship.vdevice")

DATA_LOCAL_TMP = "/data/local/tmp"
SDCARD = "/sdcard"
# Directories above the sandbox roots that a device shows (adb push does a STAT of its target's parent).
VIRTUAL_DIRECTORIES = {"/": ["data", "sdcard"], "/data": ["local"], "/data/local": ["tmp"]}
MAX_SYMLINK_HOPS = 40
DIGEST_APPLETS = ("md5sum", "sha1sum", "sha224sum", "sha256sum", "sha384sum", "sha512sum")
# Applets that would act on the host's kernel if the sandbox ever ran unconfined.
UNSAFE_APPLETS = {
    "reboot",
    "halt",
    "poweroff",
    "insmod",
    "rmmod",
    "modprobe",
    "swapon",
    "swapoff",
    "mount",
    "umount",
    "losetup",
    "hwclock",
    "devmem",
    "switch_root",
    "pivot_root",
    "sysctl",
    "vconfig",
}
_SKIPPED_HOST_ENTRIES = {"proc", "dev", "sys", "tmp", "data", "sdcard", "system", "lost+found"}


# Interactive shells: a prompt like a phone's ("vflagship:/data/local/tmp # ").
MKSHRC = """# edgeship virtual device: interactive shell settings
: "${HOSTNAME:=$(getprop ro.product.device)}"
export HOSTNAME
if [ "$(id -u)" = 0 ]; then _sign='#'; else _sign='$'; fi
PS1='$HOSTNAME:${PWD:-?} '"$_sign "
"""


class SandboxPathError(Exception):
    """A device path that cannot be used; ``errno`` is the Linux error adbd would report."""

    def __init__(self, error: int, path: str) -> None:
        super().__init__(f"{path}: {os.strerror(error)}")
        self.errno = error
        self.path = path


@dataclass(frozen=True)
class ResolvedPath:
    """A device path after following symlinks: a host path inside a sandbox folder, or a virtual dir."""

    device_path: str
    host_path: Path | None  # None for the virtual directories above the sandbox roots

    @property
    def is_virtual_directory(self) -> bool:
        return self.host_path is None


def find_shell() -> str:
    return shutil.which("mksh") or "/bin/sh"


def _host_runtime_under_private_tmp() -> list[str]:
    """Folders of the Python environment this device runs with that live under the host's /tmp.

    The device's /tmp is private, but its shell keeps the host's tools callable (python among them), and a
    checkout or venv under /tmp (a CI clone) would vanish behind that private /tmp. They are bound read-only
    at their own paths: visible, never writable.
    """
    candidates = {sys.prefix, sys.exec_prefix, sys.base_prefix, str(Path(__file__).resolve().parents[2])}
    candidates.update(entry for entry in sys.path if entry and os.path.isdir(entry))
    under_tmp = sorted(
        os.path.realpath(path) for path in candidates if os.path.realpath(path).startswith("/tmp/")
    )
    outermost: list[str] = []
    for path in under_tmp:
        if not any(path == kept or path.startswith(kept + "/") for kept in outermost):
            outermost.append(path)
    return outermost


def find_toybox() -> str | None:
    return shutil.which("toybox")


def find_bwrap() -> str | None:
    return shutil.which("bwrap")


class Sandbox:
    """The folders of one virtual device and the way its commands are started."""

    def __init__(
        self,
        root: Path,
        properties: dict[str, str],
        confine: bool | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.log = logger or log
        self.root = Path(root).resolve()
        self.data_dir = self.root / "data-local-tmp"
        self.sdcard_dir = self.root / "sdcard"
        self.system_dir = self.root / "system"
        self.bin_dir = self.system_dir / "bin"
        self.properties = properties
        self.shell_path = find_shell()
        self.bwrap_path = find_bwrap() if confine is not False else None
        self.confined = False
        self._want_confined = confine
        self._roots = {DATA_LOCAL_TMP: self.data_dir, SDCARD: self.sdcard_dir}
        self._bwrap_prefix: list[str] = []

    # ---- setup -------------------------------------------------------------------------------------
    def prepare(self) -> None:
        for folder in (self.data_dir, self.sdcard_dir, self.bin_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self._write_properties()
        self._make_bin_dir()
        self.confined = False
        if self.bwrap_path:
            self._bwrap_prefix = self._bwrap_arguments()
            self.confined = self._bwrap_works()
        if not self.confined:
            if self._want_confined:
                raise DeviceError(
                    "bubblewrap (bwrap) is required for a confined device but is missing or does not work; "
                    "install the 'bubblewrap' package"
                )
            self.log.warning(
                "bwrap %s: shell commands run UNCONFINED in %s; install the 'bubblewrap' package",
                "is not installed" if not self.bwrap_path else "does not work here",
                self.data_dir,
            )

    def _write_properties(self) -> None:
        # One property a line: a newline inside a value would forge another property.
        lines = [f"{key}={value}".replace("\n", " ") + "\n" for key, value in self.properties.items()]
        (self.system_dir / "build.prop").write_text("".join(lines))

    def _make_bin_dir(self) -> None:
        for entry in self.bin_dir.iterdir():
            if entry.is_symlink() or entry.is_file():
                entry.unlink()
        toybox = find_toybox()
        if toybox:
            listing = subprocess.run([toybox], capture_output=True, text=True, check=False).stdout
            for applet in listing.split():
                if applet in UNSAFE_APPLETS or "/" in applet or applet.startswith("."):
                    continue
                (self.bin_dir / applet).symlink_to(toybox)
        self._link_fast_digests()
        for name in ("sh", "mksh"):
            target = self.bin_dir / name
            if target.is_symlink() or target.exists():
                target.unlink()
            target.symlink_to(self.shell_path)
        getprop = self.bin_dir / "getprop"
        if getprop.is_symlink() or getprop.exists():
            getprop.unlink()
        getprop.write_text(self._getprop_script())
        getprop.chmod(0o755)
        etc = self.system_dir / "etc"
        etc.mkdir(exist_ok=True)
        (etc / "mkshrc").write_text(MKSHRC)

    def _link_fast_digests(self) -> None:
        # Android's toybox links BoringSSL, so its sha256sum runs at GB/s on a phone (ARMv8 SHA instructions);
        # Debian's toybox has a plain C digest (~100 MB/s) and coreutils' one ~350 MB/s here, either of which
        # would make on-device verification look far slower than a phone's. OpenSSL uses the CPU's SHA
        # instructions like BoringSSL does, so a small applet on top of it stands in (same output format);
        # coreutils serves option forms (-c, -b…) and machines without openssl.
        openssl = shutil.which("openssl", path="/usr/bin:/bin")
        for applet in DIGEST_APPLETS:
            coreutils_tool = shutil.which(applet, path="/usr/bin:/bin")
            if coreutils_tool is None:
                continue
            target = self.bin_dir / applet
            if target.is_symlink() or target.exists():
                target.unlink()
            if openssl is None:
                target.symlink_to(coreutils_tool)
                continue
            target.write_text(_openssl_digest_applet(applet, openssl, coreutils_tool))
            target.chmod(0o755)

    def _getprop_script(self) -> str:
        # Reads /system/build.prop (inside the sandbox) or the host copy when unconfined.
        return f"""#!/bin/sh
# getprop for an edgeship virtual device: answers from its profile.
props=/system/build.prop
[ -r "$props" ] || props={_sh_quote(str(self.system_dir / "build.prop"))}
if [ $# -eq 0 ]; then
  while IFS='=' read -r key value; do printf '[%s]: [%s]\\n' "$key" "$value"; done < "$props"
  exit 0
fi
while IFS='=' read -r key value; do
  if [ "$key" = "$1" ]; then printf '%s\\n' "$value"; exit 0; fi
done < "$props"
printf '%s\\n' "${{2-}}"
"""

    def _bwrap_arguments(self) -> list[str]:
        arguments = [self.bwrap_path or "bwrap", "--tmpfs", "/"]
        for entry in sorted(os.listdir("/")):
            if entry in _SKIPPED_HOST_ENTRIES:
                continue
            host = os.path.join("/", entry)
            if os.path.islink(host):
                arguments += ["--symlink", os.readlink(host), host]
            elif os.path.isdir(host):
                arguments += ["--ro-bind", host, host]
        arguments += [
            "--ro-bind-try", "/sys", "/sys",
            "--proc", "/proc",
            "--dev", "/dev",
            "--tmpfs", "/tmp",
            *[arg for path in _host_runtime_under_private_tmp() for arg in ("--ro-bind", path, path)],
            "--dir", DATA_LOCAL_TMP,
            "--bind", str(self.data_dir), DATA_LOCAL_TMP,
            "--bind", str(self.sdcard_dir), SDCARD,
            "--ro-bind", str(self.system_dir), "/system",
            "--remount-ro", "/",
            "--chdir", "/",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--hostname", "localhost",
            "--cap-drop", "ALL",
            "--die-with-parent",
        ]  # fmt: skip
        return arguments

    def _bwrap_works(self) -> bool:
        try:
            result = subprocess.run(
                [*self._bwrap_prefix, "/system/bin/sh", "-c", f"test -w {DATA_LOCAL_TMP}"],
                capture_output=True,
                timeout=20,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            self.log.warning("bubblewrap check failed: %s", exc)
            return False
        if result.returncode != 0:
            self.log.warning("bubblewrap check failed: %s", result.stderr.decode(errors="replace").strip())
        return result.returncode == 0

    # ---- commands ----------------------------------------------------------------------------------
    def environment(self) -> dict[str, str]:
        host_path = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
        if self.confined:
            bin_dir, tmp = "/system/bin", DATA_LOCAL_TMP
        else:
            bin_dir, tmp = str(self.bin_dir), str(self.data_dir)
        # Android's own tools first, then the host's so python and friends stay callable.
        etc_dir = "/system/etc" if self.confined else str(self.system_dir / "etc")
        return {
            "ENV": f"{etc_dir}/mkshrc",  # read by interactive mksh only: Android's prompt
            "PATH": f"{bin_dir}:{host_path}",
            "HOME": "/" if self.confined else tmp,
            "TMPDIR": tmp,
            "ANDROID_DATA": "/data",
            "ANDROID_ROOT": "/system",
            "EXTERNAL_STORAGE": SDCARD,
            "HOSTNAME": self.properties.get("ro.product.device", "localhost"),  # what Android's mkshrc sets
            "USER": "shell",
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "TERM": "dumb",
        }

    def shell_argv(self, command: str, terminal: bool = False) -> tuple[list[str], str]:
        """argv and cwd running ``command`` with the device's shell (an interactive one when empty).

        Every process of a confined command stays in the process group of the outer bwrap (no
        ``--new-session``: the daemon starts it in a new session already, without a controlling terminal),
        so killing that group reaches the sandbox's PID 1, and with it everything in its PID namespace.
        With ``terminal`` the shell makes its PTY its controlling terminal inside the sandbox (util-linux
        ``setsid --ctty``), so Ctrl-C and job control work in `adb shell`.
        """
        shell_args = ["-c", command] if command else ["-i"]
        if not self.confined:
            # No job control (+m): background jobs stay in the command's process group, the only thing
            # that is killed when the stream ends (there is no PID namespace to take them down).
            return [self.shell_path, "+m", *shell_args], str(self.data_dir)
        setsid = shutil.which("setsid") if terminal else None
        session = [setsid, "--ctty"] if setsid else []
        return [*self._bwrap_prefix, *session, "/system/bin/sh", *shell_args], "/"

    # ---- sync paths --------------------------------------------------------------------------------
    def resolve(self, device_path: str, follow_last: bool = True) -> ResolvedPath:
        """Map a device path onto the host, following symlinks as the device would see them.

        Raises SandboxPathError(ENOENT) for paths outside the sandbox roots and the virtual directories,
        ELOOP for symlink loops, ENAMETOOLONG beyond PATH_MAX.
        """
        if len(device_path.encode()) > 4096:
            raise SandboxPathError(errno.ENAMETOOLONG, device_path)
        if "\0" in device_path:
            raise SandboxPathError(errno.EINVAL, device_path)
        pending = [part for part in device_path.split("/") if part not in ("", ".")]
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
            current = "/" + "/".join(done)
            host = self._host_for(current)
            if host is None:
                if current in VIRTUAL_DIRECTORIES:
                    continue
                raise SandboxPathError(errno.ENOENT, device_path)
            if not pending and not follow_last:
                break
            try:
                info = os.lstat(host)
            except FileNotFoundError:
                # Nothing below a missing component can be a symlink: the rest maps lexically.
                continue
            except NotADirectoryError:
                raise SandboxPathError(errno.ENOTDIR, device_path) from None
            if stat.S_ISLNK(info.st_mode) and current not in self._roots:
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    raise SandboxPathError(errno.ELOOP, device_path)
                target = os.readlink(host)
                done.pop()
                if target.startswith("/"):
                    done = []  # an absolute target is a device path, like on the device
                pending.extend(reversed([p for p in target.split("/") if p not in ("", ".")]))
        final = "/" + "/".join(done)
        host = self._host_for(final)
        if host is None:
            if final in VIRTUAL_DIRECTORIES:
                return ResolvedPath(final, None)
            raise SandboxPathError(errno.ENOENT, device_path)
        return ResolvedPath(final, host)

    def _host_for(self, device_path: str) -> Path | None:
        for root, folder in self._roots.items():
            if device_path == root:
                return folder
            if device_path.startswith(root + "/"):
                return folder / device_path[len(root) + 1 :]
        return None

    def roots(self) -> list[Path]:
        """The host folders backing /data/local/tmp and /sdcard."""
        return list(self._roots.values())

    def contains(self, host_path: Path) -> bool:
        """True when ``host_path`` (already resolved) lies inside one of the sandbox folders."""
        return any(host_path == folder or folder in host_path.parents for folder in self._roots.values())


F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ, named in the fcntl module only from Python 3.10 on Linux builds
PIPE_SIZE = 1024 * 1024


def _grow_pipe(fd: int) -> None:
    """A 1 MiB pipe lets a command write a whole WRTE's worth while the host acknowledges the last one."""
    import fcntl

    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", F_SETPIPE_SZ), PIPE_SIZE)


def _openssl_digest_applet(applet: str, openssl: str, coreutils_tool: str) -> str:
    """A `sha256sum`-style applet over `openssl dgst` (prints "<hex>  <name>" per file, "-" for stdin)."""
    algorithm = applet.removesuffix("sum")
    return f"""#!/bin/sh
# {applet} for an edgeship virtual device: OpenSSL's digest, as fast as a phone's BoringSSL-backed toybox.
case "${{1-}}" in -?*) exec {_sh_quote(coreutils_tool)} "$@" ;; esac
[ $# -gt 0 ] || set -- -
status=0
for name in "$@"; do
  if [ "$name" = - ]; then
    line=$({_sh_quote(openssl)} dgst -{algorithm} -r) || exit 1
  elif [ -f "$name" ] && [ -r "$name" ]; then
    line=$({_sh_quote(openssl)} dgst -{algorithm} -r < "$name") || exit 1
  else
    echo "{applet}: $name: No such file or directory" >&2
    status=1
    continue
  fi
  printf '%s  %s\\n' "${{line%% *}}" "$name"
done
exit $status
"""


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


class ProcessTracker:
    """Every command a device started, so each can be killed with its whole process group."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or log
        self._lock = threading.Lock()
        self._processes: set[subprocess.Popen[bytes]] = set()

    def start(
        self, argv: list[str], env: dict[str, str], cwd: str, merge_stderr: bool, terminal: int | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` in a new session; its stdio are pipes, or the PTY slave fd ``terminal``."""
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if terminal is None else terminal,
            stdout=subprocess.PIPE if terminal is None else terminal,
            stderr=terminal
            if terminal is not None
            else subprocess.STDOUT
            if merge_stderr
            else subprocess.PIPE,
            env=env,
            cwd=cwd,
            start_new_session=True,  # its own session and process group, killed as a whole
            close_fds=True,
        )
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                _grow_pipe(pipe.fileno())
        with self._lock:
            self._processes.add(process)
        return process

    def kill(self, process: subprocess.Popen[bytes], grace: float = 0.5) -> None:
        """SIGHUP the group like adbd does, then SIGKILL what is left after ``grace`` seconds."""
        if process.returncode is not None:
            # Reaped (and its group killed) earlier: its id may belong to someone else by now.
            self.forget(process)
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGHUP)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(grace)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            self.log.error("process %d did not die after SIGKILL", process.pid)
        self.forget(process)

    def kill_in_background(self, process: subprocess.Popen[bytes]) -> None:
        """kill() without blocking the caller (a connection's reader thread must keep reading)."""
        threading.Thread(target=self.kill, args=(process,), name=f"kill-{process.pid}", daemon=True).start()

    def reap(self, process: subprocess.Popen[bytes]) -> int:
        """Wait for a command that ended by itself and kill anything left in its group."""
        code = process.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        self.forget(process)
        return code

    def forget(self, process: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._processes.discard(process)

    def kill_all(self) -> None:
        with self._lock:
            processes = list(self._processes)
        for process in processes:
            self.kill(process, grace=0.2)

    def __len__(self) -> int:
        with self._lock:
            return len(self._processes)
