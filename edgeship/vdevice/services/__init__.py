"""Device services by name, dispatched in adbd's order: socket specs, then the named services.

``open_service`` returns a handler that runs in the stream's own thread, or None to refuse the OPEN
(the device then sends CLSE(0, id) and the client sees FAIL "closed", as with adbd).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeship.vdevice.services import misc, ram, shell, sync

if TYPE_CHECKING:
    from edgeship.vdevice.device import VirtualDevice
    from edgeship.vdevice.transport import ServiceHandler


def open_service(device: VirtualDevice, name: str) -> ServiceHandler | None:
    handler = misc.open_socket_spec(device, name)
    if handler is not None:
        return handler
    if name == "shell" or name.startswith(("shell:", "shell,")):
        return shell.open_shell(device, name)
    if name.startswith("exec:"):
        return shell.open_exec(device, name[len("exec:") :])
    if name == "sync:":
        return sync.open_sync(device)
    if name == ram.SERVICE:
        return ram.open_ram(device, name)
    return misc.open_named(device, name)
