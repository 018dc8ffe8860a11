"""``VirtualDevice``: a listening adbd on 127.0.0.1, usable as a context manager or from the daemon."""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

from edgeship.errors import DeviceError
from edgeship.vdevice import packets
from edgeship.vdevice.auth import KEYS_FILE, DeviceAuth, validate_mode
from edgeship.vdevice.link import LinkPacer
from edgeship.vdevice.memory import MemoryCgroup
from edgeship.vdevice.processes import ProcessTracker
from edgeship.vdevice.props import DEFAULT_PROFILE, DeviceProfile, load_profile
from edgeship.vdevice.sandbox import Sandbox
from edgeship.vdevice.transport import HANDSHAKE_TIMEOUT_S, Connection, ServiceHandler, StreamBudget

FEATURES = ["shell_v2", "cmd", "stat_v2", "ls_v2", "fixed_push_mkdir"]
# Connections at once (one per adb server in normal use); more are closed as soon as they are accepted.
MAX_CONNECTIONS = 64
# Streams at once across every connection (each is a thread, many a process).
MAX_STREAMS = 256
# Rotated device logs: what a long-lived daemon keeps on disk is bounded.
LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 3
LOG_FORMAT = "%(asctime)s %(levelname)s %(threadName)s %(message)s"
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def validate_name(name: str) -> str:
    if not _NAME_PATTERN.match(name):
        raise DeviceError(
            f"virtual device name {name!r} is not valid: use letters, digits, '.', '_' or '-' (max 64)"
        )
    return name


class VirtualDevice:
    """A virtual Android device speaking the device side of adb over TCP.

    ``with VirtualDevice(name="vd1", profile="vflagship", root=tmp_path / "vd1") as vd:`` then
    ``adb connect vd.serial``. ``root`` holds the sandbox folders; without one a temporary folder is
    used and removed on stop. ``auth`` (default: the profile's, normally "none") is "none" (ro.adb.secure=0),
    "deny" (asks for AUTH and never accepts: the host lists it unauthorized) or "allow" (accepts the host's
    key as if the user tapped Allow); see ``edgeship.vdevice.auth``. ``link_mb_per_s`` paces the device's
    traffic to a cable's speed in MB/s each way (USB 2.0 ~40, USB 3 a few hundred); None is loopback speed.
    ``confine`` False runs its commands on the host, unconfined (only when asked for: a device without a
    working bubblewrap refuses to start otherwise). ``memory_limit`` False leaves it the host's RAM instead of
    a memory cgroup of the profile's size. ``handshake_timeout`` bounds how long a new connection may take to
    CNXN.
    """

    def __init__(
        self,
        name: str = "vdevice",
        profile: str | Path | DeviceProfile = DEFAULT_PROFILE,
        root: str | Path | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        confine: bool = True,
        log_file: str | Path | None = None,
        auth: str | None = None,
        link_mb_per_s: float | None = None,
        memory_limit: bool = True,
        handshake_timeout: float = HANDSHAKE_TIMEOUT_S,
    ) -> None:
        self.name = validate_name(name)
        # One cable per phone: every connection (one per adb server) shares its bandwidth.
        self.link = LinkPacer(link_mb_per_s) if link_mb_per_s else None
        # One logger per device (a child of "edgeship.vdevice"), so a device's lines can go to its own file.
        self.log = logging.getLogger(f"edgeship.vdevice.{self.name}")
        self.log_file = Path(log_file) if log_file is not None else None
        self._log_handler: logging.Handler | None = None
        self.profile = load_profile(profile)
        self.host = host
        self.requested_port = port
        self._own_root = root is None
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix=f"edgeship-vd-{name}-"))
        self.serialno = f"EDGE{name.upper()}"[:20]
        self.auth = DeviceAuth(
            validate_mode(auth or self.profile.auth), keys_file=self.root / KEYS_FILE, logger=self.log
        )
        properties = self.profile.system_properties(self.serialno)
        if self.auth.required:
            properties["ro.adb.secure"] = "1"  # what getprop says must match what adbd does
        self.sandbox = Sandbox(
            self.root,
            properties,
            confine=confine,
            logger=self.log,
            name=self.name,
            ram_bytes=self.profile.ram_bytes if memory_limit else None,
        )
        self.processes = ProcessTracker(logger=self.log, launching=self.sandbox.launching)
        self.handshake_timeout = handshake_timeout
        self._streams = StreamBudget(MAX_STREAMS)
        self.ram_lease = threading.Lock()  # held by the one open vdevice-ram stream (services/ram.py)
        self._banner = packets.make_banner(self.profile.banner_properties(), FEATURES)
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._connections: set[Connection] = set()
        self._connections_lock = threading.Lock()
        self._connection_threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self.port = 0
        self.connections_accepted = 0  # lets tests see a reconnect (after a reboot, a dropped server...)
        self.connections_refused = 0

    # ---- what callers use ---------------------------------------------------------------------------
    @property
    def serial(self) -> str:
        """The serial the adb server gives this device after ``adb connect``."""
        return f"{self.host}:{self.port}"

    @property
    def sandbox_root(self) -> Path:
        """The host folder behind the device's /data/local/tmp."""
        return self.sandbox.data_dir

    @property
    def sdcard_root(self) -> Path:
        return self.sandbox.sdcard_dir

    @property
    def confined(self) -> bool:
        return self.sandbox.confined

    @property
    def memory(self) -> MemoryCgroup | None:
        """The device's memory cgroup (its RAM), or None when the host could not give it one."""
        return self.sandbox.memory

    def start(self) -> VirtualDevice:
        if self.log_file is not None and self._log_handler is None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            handler = rotating_log_handler(self.log_file)
            self.log.addHandler(handler)
            if self.log.getEffectiveLevel() > logging.INFO:
                self.log.setLevel(logging.INFO)
            self._log_handler = handler
        self.sandbox.prepare()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host, self.requested_port))
        except OSError as exc:
            listener.close()
            self.sandbox.close()
            raise DeviceError(
                f"virtual device {self.name}: cannot listen on {self.host}:{self.requested_port}: "
                f"{exc.strerror}; pick another --port"
            ) from None
        listener.listen(16)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._stopping.clear()
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"vdevice-{self.name}", daemon=True
        )
        self._accept_thread.start()
        memory = self.sandbox.memory
        self.log.info(
            "virtual device %s (%s) listening on %s, sandbox %s, %s, auth %s, RAM %s",
            self.name,
            self.profile.name,
            self.serial,
            self.root,
            "confined by bubblewrap" if self.confined else "UNCONFINED",
            self.auth.mode,
            f"{memory.limit() // 2**20} MiB (memory cgroup {memory.path})" if memory else "the host's",
        )
        return self

    def stop(self) -> None:
        """Close every connection, kill every command, stop listening (and remove a temporary root)."""
        self._stopping.set()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        if self._accept_thread is not None:
            self._accept_thread.join(5)
            self._accept_thread = None
        with self._connections_lock:
            connections = list(self._connections)
        self.drop_connections()
        for thread in self._connection_threads:
            thread.join(5)
        self._connection_threads = []
        self.processes.kill_all()
        for connection in connections:
            connection.join_services(5)  # services end once their streams and processes are gone
        self.sandbox.close()  # its memory cgroup is removed once the last process has left it
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)
        self.log.info("virtual device %s stopped", self.name)
        if self._log_handler is not None:
            self.log.removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None

    def __enter__(self) -> VirtualDevice:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def streams_open(self) -> int:
        """Streams open now across every connection (bounded by MAX_STREAMS)."""
        return self._streams.in_use

    def connection_count(self) -> int:
        with self._connections_lock:
            return len(self._connections)

    def drop_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            connection.close()

    def reboot(self) -> None:
        """What `adb reboot` does to a phone: every connection drops; the adb server reconnects."""
        self.log.info("virtual device %s rebooting", self.name)

        def later() -> None:
            time.sleep(0.2)  # let the reboot stream's CLSE reach the host first
            self.drop_connections()
            self.processes.kill_all()

        threading.Thread(target=later, daemon=True).start()

    # ---- used by the transport and the services ------------------------------------------------------
    def banner(self) -> bytes:
        return self._banner

    def open_service(self, name: str) -> ServiceHandler | None:
        from edgeship.vdevice.services import open_service

        return open_service(self, name)

    def start_command(
        self,
        command: str,
        merge_stderr: bool,
        terminal: int | None = None,
        term: str | None = None,
        pass_fds: tuple[int, ...] = (),
    ) -> subprocess.Popen[bytes]:
        """Run ``command`` with the device's shell: pipes, or the PTY slave ``terminal`` (TERM ``term``);
        ``pass_fds`` are inherited by the command under their numbers."""
        argv, cwd = self.sandbox.shell_argv(command, terminal=terminal is not None)
        env = self.sandbox.environment()
        if term:
            env["TERM"] = term
        return self.processes.start(argv, env, cwd, merge_stderr, terminal=terminal, pass_fds=pass_fds)

    # ---- internals ----------------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._stopping.is_set():
            try:
                sock, address = listener.accept()
            except OSError:
                if self._stopping.is_set():
                    return
                time.sleep(0.05)  # EMFILE and friends: keep serving once resources come back
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, option, 4 * 1024 * 1024)
            peer = f"{address[0]}:{address[1]}"
            with self._connections_lock:
                full = len(self._connections) >= MAX_CONNECTIONS
            if full:
                self._refuse(sock, peer)
                continue
            connection = Connection(
                sock,
                self,
                peer,
                logger=self.log,
                auth=self.auth,
                link=self.link,
                handshake_timeout=self.handshake_timeout,
                budget=self._streams,
            )
            with self._connections_lock:
                self._connections.add(connection)
                self.connections_accepted += 1
            thread = threading.Thread(target=self._serve, args=(connection,), daemon=True)
            self._connection_threads = [t for t in self._connection_threads if t.is_alive()]
            self._connection_threads.append(thread)
            thread.start()

    def _refuse(self, sock: socket.socket, peer: str) -> None:
        self.connections_refused += 1
        if self.connections_refused in (1, 10, 100) or self.connections_refused % 1000 == 0:
            self.log.warning(
                "refusing connection from %s: %d connections open already (%d refused so far)",
                peer,
                MAX_CONNECTIONS,
                self.connections_refused,
            )
        with contextlib.suppress(OSError):
            sock.close()

    def _serve(self, connection: Connection) -> None:
        self.log.info("connection from %s", connection.peer)
        try:
            connection.serve()
        finally:
            with self._connections_lock:
                self._connections.discard(connection)


def rotating_log_handler(path: Path, max_bytes: int = LOG_MAX_BYTES) -> logging.Handler:
    """A log file that rotates at ``max_bytes`` (``path.1`` … ``path.3`` keep the older lines)."""
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=LOG_BACKUPS)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    return handler
