"""The device's filesystem and how its commands are confined.

Host layout under the device root::

    data-local-tmp/   the device's /data/local/tmp
    sdcard/           the device's /sdcard
    system/bin/       toybox applet links, sh (mksh), getprop; mounted at /system/bin
    system/etc/       mkshrc, passwd, group, hosts, a copy of the host's ld.so.cache; /etc is a link to it
    system/build.prop the properties getprop answers with
    proc/meminfo      the device's /proc/meminfo (see ``meminfo``)

Commands run under bubblewrap with a minimal view of the host (``bwrap_arguments``): a tmpfs root holding /usr
(and the /bin, /lib… links into it) read-only, /system, the two sandbox folders read-write, a private /tmp, a
fresh /proc and /dev, /sys/devices/system/cpu, the device's memory cgroup read-only at /dev/memcg, and
read-only exactly the Python installation the daemon runs with (``sys.prefix``, ``sys.base_prefix``) and the
``edgeship`` package folder, which the x86-64 host runner needs. Nothing else of the host: no /home, /root,
/run, /work, /etc (no /etc/shadow, no host keys). All capabilities are dropped; PID, IPC and UTS namespaces
are private, so when the command's shell exits or is killed nothing it started survives; the network is the
device's own namespace (``netns``: its loopback only); every process is in the device's memory cgroup
(``memory``). Without a working bwrap a device refuses to start unless it was asked for explicitly
(``confine=False``, `vdevice start --unconfined`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from edgeship.errors import DeviceError
from edgeship.vdevice.meminfo import MeminfoPublisher
from edgeship.vdevice.memory import MemoryCgroup, MemoryUnavailable
from edgeship.vdevice.netns import DeviceNetwork, NetworkUnavailable
from edgeship.vdevice.paths import DATA_LOCAL_TMP, SDCARD, DeviceFiles, Location

log = logging.getLogger("edgeship.vdevice")

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
# The merged-/usr links of a Debian-like system (each a symlink into /usr, or on older systems a folder).
_SYSTEM_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
# Paths the sandbox itself defines: a host folder there is never bound over them.
_SANDBOX_PATHS = ("/data", "/sdcard", "/system", "/proc", "/dev", "/sys", "/etc")
MEMCG_MOUNT = "/dev/memcg"  # where Android mounts its memory cgroup (v1); here the device's own, read-only
INSTALL_HINT = "install the 'bubblewrap' package (apt-get install bubblewrap)"

# Interactive shells: a prompt like a phone's ("vflagship:/data/local/tmp # ").
MKSHRC = """# edgeship virtual device: interactive shell settings
: "${HOSTNAME:=$(getprop ro.product.device)}"
export HOSTNAME
if [ "$(id -u)" = 0 ]; then _sign='#'; else _sign='$'; fi
PS1='$HOSTNAME:${PWD:-?} '"$_sign "
"""
# Android's ids by name (bionic has them built in; glibc reads /etc): root, shell.
PASSWD = "root:x:0:0:root:/:/system/bin/sh\nshell:x:2000:2000:shell:/:/system/bin/sh\n"
GROUP = "root:x:0:\nshell:x:2000:\n"
HOSTS = "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n"


class DeviceNetworkRefused(Exception):
    """A socket service asked for on a device without a network of its own: it would connect from the host."""


def find_shell() -> str:
    return shutil.which("mksh") or "/bin/sh"


def find_toybox() -> str | None:
    return shutil.which("toybox")


def find_bwrap() -> str | None:
    return shutil.which("bwrap")


def python_runtime_paths() -> list[str]:
    """What the x86-64 host runner needs of the daemon's Python, outermost folders only, resolved.

    The interpreter prefixes (a venv and the installation it was made from) and the ``edgeship`` package
    folder the runner's launcher puts on sys.path (the folder itself, not the checkout around it).
    """
    package = Path(__file__).resolve().parents[1]
    candidates = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix, str(package)}
    paths = sorted({os.path.realpath(path) for path in candidates if os.path.isdir(path)})
    kept: list[str] = []
    for path in paths:
        if path == "/" or any(path == p or path.startswith(p + "/") for p in ("/usr", *_SANDBOX_PATHS)):
            continue  # visible already (/usr), or a place the sandbox defines itself
        if not any(path == outer or path.startswith(outer + "/") for outer in kept):
            kept.append(path)
    return kept


class Sandbox:
    """One virtual device's folders, its confinement (bubblewrap, network, memory) and how its commands start.

    ``confine`` True (the default) refuses to go on without a working bubblewrap; False runs commands on the
    host, unconfined, which only an explicit request may do. ``ram_bytes`` sizes the device's memory cgroup
    (None: no cgroup); a host that cannot give it one is warned about once, and the device has the host's RAM.
    """

    def __init__(
        self,
        root: Path,
        properties: dict[str, str],
        confine: bool = True,
        logger: logging.Logger | None = None,
        name: str = "vdevice",
        ram_bytes: int | None = None,
    ) -> None:
        self.log = logger or log
        self.name = name
        self.root = Path(root).resolve()
        self.data_dir = self.root / "data-local-tmp"
        self.sdcard_dir = self.root / "sdcard"
        self.system_dir = self.root / "system"
        self.bin_dir = self.system_dir / "bin"
        self.etc_dir = self.system_dir / "etc"
        self.meminfo_path = self.root / "proc" / "meminfo"
        self.properties = properties
        self.ram_bytes = ram_bytes
        self.shell_path = find_shell()
        self.confine = confine
        self.confined = False
        self.files = DeviceFiles({DATA_LOCAL_TMP: self.data_dir, SDCARD: self.sdcard_dir})
        self.network: DeviceNetwork | None = None
        self.memory: MemoryCgroup | None = None
        self.memory_unavailable: str | None = None  # why there is no memory cgroup, when there is none
        self._meminfo: MeminfoPublisher | None = None
        self._bwrap_prefix: list[str] = []

    # ---- setup and teardown -------------------------------------------------------------------------
    def prepare(self) -> None:
        for folder in (self.data_dir, self.sdcard_dir, self.bin_dir, self.etc_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self._write_properties()
        self._make_bin_dir()
        self._make_etc()
        try:
            self.files.open_roots()
            self._prepare_memory()
            if self.confine:
                self._prepare_confinement()
            else:
                self.log.warning(
                    "UNCONFINED (asked for): shell commands run on the host in %s", self.data_dir
                )
        except BaseException:
            self.close()
            raise

    def _prepare_confinement(self) -> None:
        bwrap = find_bwrap()
        if bwrap is None:
            raise DeviceError(f"bubblewrap (bwrap) is not installed: {self._unconfined_hint()}")
        try:
            self.network = DeviceNetwork.create()
        except NetworkUnavailable as exc:
            # bwrap makes one per command then; the daemon's socket services are refused (see connect()).
            self.log.warning("%s: every command gets a network namespace of its own", exc)
        if self.memory is not None:
            self._meminfo = MeminfoPublisher(self.meminfo_path, self.memory, self.log)
            self._meminfo.start()
        self._bwrap_prefix = self.bwrap_arguments(bwrap)
        problem = self._bwrap_problem()
        if problem is not None:
            raise DeviceError(f"bubblewrap (bwrap) does not work here ({problem}): {self._unconfined_hint()}")
        self.confined = True

    @staticmethod
    def _unconfined_hint() -> str:
        return (
            "a virtual device's shell would run unconfined on the host; "
            f"{INSTALL_HINT}, or pass --unconfined to accept that"
        )

    def _prepare_memory(self) -> None:
        if self.ram_bytes is None:
            return
        try:
            self.memory = MemoryCgroup.create(self.name, self.ram_bytes)
        except MemoryUnavailable as exc:
            self.memory_unavailable = str(exc)
            self.log.warning("no memory cgroup (%s): the device has the host's RAM", exc)

    def refresh_meminfo(self) -> None:
        """Rewrite /proc/meminfo now (after a RAM change), not at the next refresh."""
        if self._meminfo is not None:
            self._meminfo.refresh()

    def close(self) -> None:
        """Undo prepare(): the meminfo refresher, the memory cgroup, the network namespace, open folders."""
        if self._meminfo is not None:
            self._meminfo.stop()
            self._meminfo = None
        if self.memory is not None:
            if not self.memory.remove():
                self.log.warning("memory cgroup %s still has processes; left in place", self.memory.path)
            self.memory = None
        if self.network is not None:
            self.network.close()
            self.network = None
        self.files.close()
        self.confined = False

    def _write_properties(self) -> None:
        # One property a line: a newline inside a value would forge another property.
        lines = [f"{key}={value}".replace("\n", " ") + "\n" for key, value in self.properties.items()]
        (self.system_dir / "build.prop").write_text("".join(lines))

    def _make_etc(self) -> None:
        (self.etc_dir / "mkshrc").write_text(MKSHRC)
        (self.etc_dir / "passwd").write_text(PASSWD)
        (self.etc_dir / "group").write_text(GROUP)
        (self.etc_dir / "hosts").write_text(HOSTS)
        # The dynamic loader finds the multiarch library folders (/usr/lib/x86_64-linux-gnu) through its
        # cache.
        cache = Path("/etc/ld.so.cache")
        if cache.is_file():
            shutil.copyfile(cache, self.etc_dir / "ld.so.cache")

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

    def bwrap_arguments(self, bwrap: str) -> list[str]:
        """The minimal view: what mksh, toybox and the runners need, nothing of the host's data or keys."""
        arguments = [bwrap, "--tmpfs", "/", "--ro-bind", "/usr", "/usr"]
        for name in _SYSTEM_LINKS:
            host = f"/{name}"
            if os.path.islink(host):
                arguments += ["--symlink", os.readlink(host), host]
            elif os.path.isdir(host):
                arguments += ["--ro-bind", host, host]
        arguments += [
            "--symlink", "/system/etc", "/etc",  # as on Android
            "--ro-bind-try", "/sys/devices/system/cpu", "/sys/devices/system/cpu",  # core count, clocks
            "--proc", "/proc",
            # The device runs as uid 0: sysctls (vm.drop_caches…) and IRQ affinities would be its to write.
            "--ro-bind", "/proc/sys", "/proc/sys",
            "--ro-bind-try", "/proc/irq", "/proc/irq",
            "--ro-bind-try", "/proc/bus", "/proc/bus",
            "--dev", "/dev",
            "--tmpfs", "/tmp",
        ]  # fmt: skip
        if self._meminfo is not None:
            arguments += ["--ro-bind", str(self.meminfo_path), "/proc/meminfo"]
        if self.memory is not None:
            arguments += ["--dir", MEMCG_MOUNT, "--ro-bind", str(self.memory.path), MEMCG_MOUNT]
        for path in [*python_runtime_paths(), *self._tools_outside_usr()]:
            arguments += ["--ro-bind", path, path]
        arguments += [
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
        if self.network is None:
            arguments.append("--unshare-net")
        return arguments

    def _tools_outside_usr(self) -> list[str]:
        """The shell and toybox when they are installed outside /usr (their /system/bin links point there)."""
        tools = [self.shell_path, find_toybox(), shutil.which("setsid")]
        found = {os.path.realpath(tool) for tool in tools if tool}
        return sorted(path for path in found if not path.startswith("/usr/"))

    def _bwrap_problem(self) -> str | None:
        """None when a command runs in the sandbox as it should, else what went wrong."""
        argv, cwd = self.shell_argv(f"test -w {DATA_LOCAL_TMP}")
        try:
            with self.launching():
                result = subprocess.run(argv, cwd=cwd, capture_output=True, timeout=20, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return str(exc)
        if result.returncode != 0:
            return result.stderr.decode(errors="replace").strip() or f"exit code {result.returncode}"
        return None

    # ---- commands ----------------------------------------------------------------------------------
    def environment(self) -> dict[str, str]:
        host_path = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
        if self.confined:
            bin_dir, tmp = "/system/bin", DATA_LOCAL_TMP
        else:
            bin_dir, tmp = str(self.bin_dir), str(self.data_dir)
        # Android's own tools first, then the host's so python and friends stay callable.
        etc_dir = "/system/etc" if self.confined else str(self.etc_dir)
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
        ``setsid --ctty``), so Ctrl-C and job control work in `adb shell`. The command joins the device's
        memory cgroup before anything of it runs.
        """
        shell_args = ["-c", command] if command else ["-i"]
        if not self._bwrap_prefix:
            # No job control (+m): background jobs stay in the command's process group, the only thing
            # that is killed when the stream ends (there is no PID namespace to take them down).
            argv, cwd = [self.shell_path, "+m", *shell_args], str(self.data_dir)
        else:
            setsid = shutil.which("setsid") if terminal else None
            session = [setsid, "--ctty"] if setsid else []
            argv, cwd = [*self._bwrap_prefix, *session, "/system/bin/sh", *shell_args], "/"
        if self.memory is not None:
            argv = self.memory.join_argv(argv)
        return argv, cwd

    @contextlib.contextmanager
    def launching(self) -> Iterator[None]:
        """The calling thread inside the device's network while it forks a command (the child keeps it)."""
        if self.network is None:
            yield
            return
        with self.network.entered():
            yield

    def connect(self, family: int, address: str | tuple[str, int], timeout: float) -> socket.socket:
        """A socket connected from inside the device (tcp:, localabstract: services), never from the host.

        Raises DeviceNetworkRefused on a confined device without a network namespace of its own, OSError when
        nothing listens there.
        """
        if self.confined and self.network is None:
            raise DeviceNetworkRefused("this device has no network namespace the daemon can enter (not root)")
        with self.launching():
            if family == socket.AF_UNIX:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.settimeout(timeout)
                    sock.connect(address)
                except OSError:
                    sock.close()
                    raise
                return sock
            assert isinstance(address, tuple)
            return socket.create_connection(address, timeout=timeout)

    # ---- sync paths --------------------------------------------------------------------------------
    def resolve(self, device_path: str, follow_last: bool = True) -> Location:
        """See ``DeviceFiles.resolve``: a device path after following its symlinks, inside the sandbox."""
        return self.files.resolve(device_path, follow_last=follow_last)


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
