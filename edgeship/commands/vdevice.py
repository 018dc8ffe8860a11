"""`edgeship vdevice start|stop|list|set-ram`: virtual Android devices that real adb servers connect to."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import click

from edgeship.commands.options import output_options
from edgeship.console import Output
from edgeship.errors import DeviceError
from edgeship.units import format_bytes

CONNECT_TIMEOUT_S = 20.0


def _connect(server_text: str | None, serial: str, auth: str = "none") -> str:
    """`adb connect` the serial on the server (started when none runs locally); returns the server.

    With ``--auth`` deny or allow, `adb connect` answers "failed to authenticate" as soon as the host has
    sent its key (as with a phone showing its prompt): a deny device is left `unauthorized`, an allow device
    goes on to `device`.
    """
    from adbutils.errors import AdbError

    from edgeship.android_harness.adb import connect_server
    from edgeship.config import AdbServer, default_adb_server

    server = AdbServer.parse(server_text) if server_text else default_adb_server()
    client = connect_server(server).client
    try:
        reply = client.connect(serial, timeout=CONNECT_TIMEOUT_S)
    except (AdbError, OSError) as exc:
        raise DeviceError(f"adb server {server} could not connect to {serial}: {exc}") from None
    expected = "unauthorized" if auth == "deny" else "device"
    if "connected" not in reply and not (auth != "none" and "authenticate" in reply):
        raise DeviceError(f"adb server {server} could not connect to {serial}: {reply.strip()}")
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    state = "unknown"
    while time.monotonic() < deadline:
        try:
            # The listing, not get-state: get-state answers an error for an unauthorized device.
            states = {info.serial: info.state for info in client.list()}
            state = states.get(serial, "not listed")
        except (AdbError, OSError) as exc:
            state = str(exc)
        if state == expected:
            return str(server)
        time.sleep(0.1)
    raise DeviceError(f"{serial} stayed {state!r} on adb server {server}; see the device log")


def _disconnect(server_text: str | None, serial: str) -> None:
    from adbutils import AdbClient
    from adbutils.errors import AdbError

    from edgeship.config import AdbServer

    if not server_text:
        return
    server = AdbServer.parse(server_text)
    # The server may be gone or may already have forgotten the device: nothing to undo then.
    with contextlib.suppress(AdbError, OSError):
        AdbClient(host=server.host, port=server.port).disconnect(serial)


@click.group("vdevice")
def vdevice_group() -> None:
    """Virtual Android devices: adbd over TCP, a sandboxed shell, getprop from a device profile."""


@vdevice_group.command("start")
@click.option(
    "--name", default=None, help="Device name (state folder, logs); default: the first free vdeviceN."
)
@click.option("--profile", default="vflagship", show_default=True, help="Profile name or path to a .yaml.")
@click.option("--port", type=int, default=0, help="TCP port to listen on (default: a free one).")
@click.option("--adb-server", default=None, help="adb server HOST:PORT to connect it to (default: local).")
@click.option("--no-connect", is_flag=True, help="Only start the device; do not `adb connect` it.")
@click.option("--auth", type=click.Choice(["none", "deny", "allow"]), default=None,
              help="adb authorization: none (ro.adb.secure=0; default unless the profile says otherwise), "
                   "deny (asks for AUTH, never accepts: listed `unauthorized`), allow (accepts the host's "
                   "key as if the user tapped Allow).")  # fmt: skip
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Host folder for the sandbox (default: the device's state folder).")  # fmt: skip
@click.option("--link-mb-per-s", type=click.FloatRange(min=0.1), default=None,
              help="Pace the device's traffic to a cable's speed, MB/s each way (USB 2.0 ~40, USB 3 ~300); "
                   "default: loopback speed.")  # fmt: skip
@click.option("--unconfined", is_flag=True,
              help="Run the device's shell commands on the host, without bubblewrap (no filesystem, network "
                   "or process isolation); only for hosts where bubblewrap cannot work.")  # fmt: skip
@output_options
def start_command(
    name: str | None,
    profile: str,
    port: int,
    adb_server: str | None,
    no_connect: bool,
    auth: str | None,
    root: Path | None,
    link_mb_per_s: float | None,
    unconfined: bool,
    out: Output,
) -> None:
    """Start a virtual device in the background, `adb connect` it, print its serial (--json: its record).

    Its shell runs in a bubblewrap sandbox (a minimal view of the host, a network of its own) and in a memory
    cgroup of the profile's RAM; without a working bubblewrap it refuses to start unless --unconfined.
    """
    from edgeship.config import default_adb_server
    from edgeship.vdevice import daemon, load_profile, registry

    loaded = load_profile(profile)  # fail here, with the profile's own message, rather than in the daemon log
    auth = auth or loaded.auth
    name = name or registry.free_name()
    server_text = None if no_connect else (adb_server or str(default_adb_server()))
    record = daemon.spawn(
        name=name,
        profile=profile,
        port=port,
        root=root.resolve() if root else None,
        adb_server=server_text,
        auth=auth,
        link_mb_per_s=link_mb_per_s,
        unconfined=unconfined,
    )
    if server_text:
        try:
            record.adb_server = _connect(server_text, record.serial, auth)
        except DeviceError:
            daemon.terminate_pid(record.pid)
            registry.remove_record(name)
            raise
        registry.write_record(record)
    if not record.confined:
        out.reporter.warn("--unconfined: this device's shell runs on the host, NOT confined")
    if record.memory_cgroup is None:
        out.reporter.warn(f"{record.name} has the host's RAM: {record.memory_unavailable}")
    out.result(record.to_json(), lambda: out.line(record.serial))


@vdevice_group.command("stop")
@click.argument("names", nargs=-1)
@click.option("--all", "stop_all", is_flag=True, help="Stop every virtual device.")
@click.option("--keep-data", is_flag=True, help="Keep the sandbox folders of the state folder.")
def stop_command(names: tuple[str, ...], stop_all: bool, keep_data: bool) -> None:
    """Stop virtual devices: adb disconnect, stop the daemon, clean its state."""
    import shutil

    from edgeship.vdevice import daemon, registry

    if not names and not stop_all:
        raise click.UsageError("name a device or pass --all")
    records = registry.list_records()
    if not stop_all:
        by_name = {record.name: record for record in records}
        missing = [name for name in names if name not in by_name]
        if missing:
            known = ", ".join(sorted(by_name)) or "none"
            raise DeviceError(f"no virtual device named {', '.join(missing)} (running: {known})")
        records = [by_name[name] for name in names]
    for record in records:
        _disconnect(record.adb_server, record.serial)
        daemon.terminate_pid(record.pid)
        registry.remove_record(record.name)
        default_root = record.state_dir / "root"
        if not keep_data and Path(record.root) == default_root:
            shutil.rmtree(record.state_dir, ignore_errors=True)
        click.echo(f"stopped {record.name} ({record.serial})")


@vdevice_group.command("set-ram")
@click.argument("device")
@click.argument("size")
@output_options
def set_ram_command(device: str, size: str, out: Output) -> None:
    """Change a running device's RAM: SIZE like 2G or 512M (binary units), or `reset` for its profile's.

    DEVICE is its name or serial. Lowering it reclaims the device's page cache at once; its /proc/meminfo
    follows within a second.
    """
    from edgeship.errors import UsageError
    from edgeship.vdevice import registry
    from edgeship.vdevice.memory import MemoryLimitError, parse_size

    try:
        size_bytes = None if size == "reset" else parse_size(size)
    except MemoryLimitError as exc:
        raise UsageError(str(exc)) from None
    limit = registry.set_ram(device, size_bytes)
    text = f"{device}: RAM {format_bytes(limit)}"
    out.result({"device": device, "ram_bytes": limit}, lambda: out.line(text))


@vdevice_group.command("list")
@output_options
def list_command(out: Output) -> None:
    """List the virtual devices started with `edgeship vdevice start`."""
    from edgeship.vdevice import registry

    records = registry.list_records()
    out.result([record.to_json() for record in records], lambda: _print_records(out, records))


def _print_records(out: Output, records: list[Any]) -> None:
    from rich.table import Table

    if not records:
        out.line("no virtual devices (start one with `edgeship vdevice start`)")
        return
    # Paths (sandbox, log) and the model are in --json; serials must never be cut.
    table = Table()
    table.add_column("name", no_wrap=True)
    table.add_column("serial", no_wrap=True)
    table.add_column("state")
    table.add_column("profile")
    table.add_column("ram")
    table.add_column("adb server", no_wrap=True)
    for record in records:
        state = "running" if record.alive() else "dead"
        if record.alive() and not record.confined:
            state += " (unconfined)"
        limit = record.ram_limit() if record.alive() else None
        ram = format_bytes(limit) if limit else "host's"
        table.add_row(record.name, record.serial, state, record.profile, ram, record.adb_server or "-")
    out.print(table)


@vdevice_group.command("profiles")
@output_options
def profiles_command(out: Output) -> None:
    """List the device profiles (built-in and ~/.config/edgeship/vdevice-profiles/)."""
    from dataclasses import asdict

    from edgeship.vdevice import list_profiles

    profiles = list_profiles()
    out.result([asdict(profile) for profile in profiles], lambda: _print_profiles(out, profiles))


def _print_profiles(out: Output, profiles: list[Any]) -> None:
    from rich.table import Table

    table = Table("name", "model", "soc", "abi", "android", "ram")
    for profile in profiles:
        android = f"{profile.release} (sdk {profile.sdk})"
        table.add_row(
            profile.name,
            profile.model,
            profile.soc_model,
            profile.abi,
            android,
            format_bytes(profile.ram_bytes),
        )
    out.print(table)
