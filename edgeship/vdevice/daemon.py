"""The background process behind ``edgeship vdevice start``: ``python -m edgeship.vdevice.daemon``.

``spawn`` starts it detached and waits until it listens; ``terminate`` stops it. The daemon logs to
``daemon.log`` in its state folder, rotated at ``EDGESHIP_VDEVICE_LOG_MAX_BYTES`` (default 10 MB, three older
files kept), sends anything printed outside its log (a crash) to ``daemon.out``, and records itself in
``state.json`` once it listens.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from edgeship.errors import DeviceError
from edgeship.vdevice import registry
from edgeship.vdevice.auth import AUTH_MODES
from edgeship.vdevice.device import LOG_MAX_BYTES, VirtualDevice, rotating_log_handler, validate_name
from edgeship.vdevice.props import DEFAULT_PROFILE

log = logging.getLogger("edgeship.vdevice")

START_TIMEOUT_S = 30.0
START_FAILURE = "cannot start: "
STOP_TIMEOUT_S = 10.0
LOG_MAX_BYTES_VARIABLE = "EDGESHIP_VDEVICE_LOG_MAX_BYTES"


def spawn(
    name: str,
    profile: str = DEFAULT_PROFILE,
    port: int = 0,
    root: Path | None = None,
    adb_server: str | None = None,
    timeout: float = START_TIMEOUT_S,
    auth: str | None = None,
    link_mb_per_s: float | None = None,
    unconfined: bool = False,
) -> registry.DeviceRecord:
    """Start a detached daemon for ``name`` and return its record once it accepts connections."""
    validate_name(name)
    existing = registry.read_record(name)
    if existing is not None and existing.alive():
        raise DeviceError(
            f"virtual device {name!r} already runs at {existing.serial}; stop it first or pick another --name"
        )
    folder = registry.state_dir(name)
    folder.mkdir(parents=True, exist_ok=True)
    registry.remove_record(name)
    log_path = folder / registry.LOG_FILE
    argv = [sys.executable, "-m", registry.DAEMON_MODULE, "--name", name, "--profile", str(profile)]
    argv += ["--port", str(port), "--root", str(root or folder / "root")]
    if adb_server:
        argv += ["--adb-server", adb_server]
    if auth:
        argv += ["--auth", auth]
    if link_mb_per_s:
        argv += ["--link-mb-per-s", str(link_mb_per_s)]
    if unconfined:
        argv.append("--unconfined")
    log_offset = (
        log_path.stat().st_size if log_path.exists() else 0
    )  # earlier starts' lines are not this one's
    with open(folder / registry.OUTPUT_FILE, "wb") as output, open(os.devnull, "rb") as devnull:
        process = subprocess.Popen(
            argv, stdin=devnull, stdout=output, stderr=output, start_new_session=True, close_fds=True
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = registry.read_record(name)
        if record is not None and record.pid == process.pid and _accepts(record.host, record.port):
            return record
        if process.poll() is not None:
            failure = _start_failure(log_path, log_offset, folder / registry.OUTPUT_FILE)
            raise DeviceError(f"{failure} (log: {log_path})")
        time.sleep(0.05)
    terminate_pid(process.pid)
    raise DeviceError(
        f"virtual device {name!r} did not start listening within {timeout:.0f}s (log: {log_path})"
    )


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _start_failure(log_path: Path, log_offset: int, output_path: Path) -> str:
    """The daemon's own one-line reason (it logs "cannot start: ..."), else the last line it printed."""
    texts = []
    with contextlib.suppress(OSError):
        texts.append(output_path.read_text(errors="replace"))
    with contextlib.suppress(OSError), open(log_path, "rb") as log_file:
        if log_file.seek(0, os.SEEK_END) >= log_offset:
            log_file.seek(log_offset)  # else it rotated meanwhile: all of it is this start's
        else:
            log_file.seek(0)
        texts.append(log_file.read().decode(errors="replace"))
    lines = [line for text in texts for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if START_FAILURE in line:
            return line.split(START_FAILURE, 1)[1]
    return f"the virtual device daemon exited: {lines[-1] if lines else 'no output'}"


def terminate_pid(pid: int, timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM the daemon (it stops its device cleanly), SIGKILL it if it lingers."""
    if not registry.process_is_daemon(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not registry.process_is_daemon(pid) or _is_zombie(pid):
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgeship.vdevice.daemon", description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--profile", default=DEFAULT_PROFILE)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--adb-server", default=None)
    parser.add_argument("--auth", choices=AUTH_MODES, default=None, help="default: the profile's")
    parser.add_argument("--link-mb-per-s", type=float, default=None, help="cable speed, MB/s each way")
    parser.add_argument(
        "--unconfined", action="store_true", help="run shell commands on the host, unconfined"
    )
    parser.add_argument("--log-level", default=os.environ.get("EDGESHIP_VDEVICE_LOG", "INFO"))
    args = parser.parse_args(argv)
    folder = registry.state_dir(args.name)
    folder.mkdir(parents=True, exist_ok=True)
    max_bytes = int(os.environ.get(LOG_MAX_BYTES_VARIABLE) or LOG_MAX_BYTES)
    logging.basicConfig(
        level=args.log_level.upper(), handlers=[rotating_log_handler(folder / registry.LOG_FILE, max_bytes)]
    )
    try:
        device = VirtualDevice(
            name=args.name,
            profile=args.profile,
            root=args.root,
            port=args.port,
            host=args.host,
            auth=args.auth,
            link_mb_per_s=args.link_mb_per_s,
            confine=not args.unconfined,
        )
        device.start()
    except Exception as exc:
        log.error("%s%s", START_FAILURE, exc)
        return 1
    stop_requested = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        stop_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGHUP, request_stop)
    registry.write_record(
        registry.DeviceRecord(
            name=device.name,
            pid=os.getpid(),
            host=device.host,
            port=device.port,
            profile=device.profile.name,
            model=device.profile.model,
            root=str(device.root),
            log=str(registry.state_dir(device.name) / registry.LOG_FILE),
            confined=device.confined,
            adb_server=args.adb_server,
            started_at=time.time(),
            auth=device.auth.mode,
            link_mb_per_s=args.link_mb_per_s,
            ram_bytes=device.profile.ram_bytes,
            memory_cgroup=str(device.memory.path) if device.memory else None,
            memory_cgroup_version=device.memory.version if device.memory else None,
            memory_unavailable=device.sandbox.memory_unavailable,
        )
    )
    while not stop_requested.wait(1.0):
        pass
    device.stop()
    log.info("daemon exits")
    return 0


if __name__ == "__main__":
    sys.exit(main())
