"""Which devices a command acts on: --device, --label, --all, ANDROID_SERIAL, or the only one connected.

Devices are gathered from every configured adb server. A serial named by the user must exist and be online;
an implicit choice is only made when exactly one device is online, so a command never lands on the wrong
phone of a bench.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from edgeship.android_harness.adb.device import Device
from edgeship.android_harness.adb.servers import ServerClient, connect_reachable, connect_servers
from edgeship.config import AdbServer, Config
from edgeship.console import Reporter
from edgeship.errors import DeviceError, UsageError

ONLINE = "device"
STATE_HINTS = {
    "offline": "reconnect it (adb reconnect offline, replug the cable or restart the virtual device)",
    "unauthorized": "accept the USB debugging prompt on the phone",
    "authorizing": "wait for the authorization to finish, or accept the prompt on the phone",
    "no permissions": "fix the udev rules for the phone's USB device",
}


@dataclass
class DeviceListing:
    """One line of `adb devices -l` on one server: every state, not only online devices."""

    serial: str
    state: str
    adb_server: str
    model: str | None = None
    product: str | None = None
    transport_id: int | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class FoundDevice:
    listing: DeviceListing
    server_client: ServerClient


def gather(clients: Sequence[ServerClient]) -> list[FoundDevice]:
    found: list[FoundDevice] = []
    seen: set[str] = set()
    for server_client in clients:
        for info in server_client.listings():
            if info.serial in seen:
                # The same phone cannot be on two hosts; a serial seen twice is a second server sharing USB.
                continue
            seen.add(info.serial)
            transport = info.tags.get("transport_id")
            listing = DeviceListing(
                serial=info.serial,
                state=info.state,
                adb_server=str(server_client.server),
                model=info.tags.get("model"),
                product=info.tags.get("product"),
                transport_id=int(transport) if transport and transport.isdigit() else None,
            )
            found.append(FoundDevice(listing, server_client))
    return found


def list_all_devices(servers: Sequence[AdbServer] | Sequence[ServerClient]) -> list[DeviceListing]:
    """Every device on every server (offline and unauthorized too), starting the local server if needed."""
    return [found.listing for found in gather(_clients(servers))]


def _clients(servers: Sequence[AdbServer] | Sequence[ServerClient]) -> list[ServerClient]:
    if all(isinstance(item, ServerClient) for item in servers):
        return list(servers)  # type: ignore[arg-type]
    return connect_servers(list(servers))  # type: ignore[arg-type]


def device_for(found: FoundDevice) -> Device:
    return Device(
        serial=found.listing.serial,
        server=found.server_client.server,
        state=found.listing.state,
        adb=found.server_client.device(found.listing.serial),
    )


def _servers_text(clients: Sequence[ServerClient]) -> str:
    return ", ".join(str(client.server) for client in clients)


def _require_online(found: FoundDevice) -> None:
    state = found.listing.state
    if state != ONLINE:
        hint = STATE_HINTS.get(state, "check the device and its connection")
        raise DeviceError(f"device {found.listing.serial} is {state}; {hint}")


def requested_serials(config: Config, serials: Sequence[str], labels: Sequence[str]) -> list[str]:
    """--device serials then the members of each --label, in order, without repeats."""
    wanted: list[str] = list(serials)
    for label in labels:
        if label not in config.labels:
            known = ", ".join(sorted(config.labels)) or "none configured in edgeship.yaml"
            raise UsageError(f"unknown device label {label!r} (known: {known})")
        wanted.extend(config.labels[label])
    unique: list[str] = []
    for serial in wanted:
        if serial not in unique:
            unique.append(serial)
    return unique


def select_devices(
    config: Config,
    serials: tuple[str, ...] = (),
    all_: bool = False,
    labels: tuple[str, ...] = (),
    servers: tuple[str, ...] = (),
    reporter: Reporter | None = None,
) -> list[Device]:
    """The devices a command acts on; servers that do not answer are skipped with a warning."""
    reporter = reporter or Reporter()
    clients, unreachable = connect_reachable(config.servers(servers))
    for _server, reason in unreachable:
        reporter.warn(f"{reason}; its devices are skipped")
    down = "".join(f" (not answering: {server})" for server, _ in unreachable)
    found = gather(clients)
    by_serial = {item.listing.serial: item for item in found}
    wanted = requested_serials(config, serials, labels)
    if not wanted and not all_:
        env_serial = os.environ.get("ANDROID_SERIAL", "").strip()
        if env_serial:
            wanted = [env_serial]

    if wanted:
        chosen: list[FoundDevice] = []
        for serial in wanted:
            item = by_serial.get(serial)
            if item is None:
                raise DeviceError(
                    f"device {serial} is not connected to adb server(s) {_servers_text(clients)}{down}; "
                    "`edgeship devices` lists what is"
                )
            _require_online(item)
            chosen.append(item)
        if all_:
            chosen += [item for item in found if item.listing.state == ONLINE and item not in chosen]
        return [device_for(item) for item in chosen]

    if not found:
        raise DeviceError(
            f"no devices on adb server(s) {_servers_text(clients)}; connect a phone "
            "or start one with `edgeship vdevice start`"
        )
    online = [item for item in found if item.listing.state == ONLINE]
    if not online:
        states = ", ".join(f"{item.listing.serial} ({item.listing.state})" for item in found)
        raise DeviceError(f"no online device: {states}; `edgeship devices` shows what to fix")
    if all_ or len(online) == 1:
        return [device_for(item) for item in online]
    names = ", ".join(item.listing.serial for item in online)
    raise UsageError(
        f"{len(online)} devices are online ({names}); choose with --device SERIAL, --label or --all"
    )
