"""``vdevice-ram:``: the device's RAM set from the host through adb, held while the stream is open.

An emulator's console does this for an emulator; here it is an adb service, so a harness reaches it wherever
the device runs (this host, a lab host behind another adb server) with nothing but adb. A real phone has no
such service (adbd refuses the OPEN), which is how a harness tells the two apart.

The stream is a lease on the device's memory cgroup, one at a time:

- on open the device writes ``ram <limit> <profile ram>`` (bytes), or ``error <reason>`` and closes (no memory
  cgroup, or another stream holds the RAM);
- each line the host writes, ``set <bytes>`` or ``reset``, is answered ``ok <limit>`` or ``error <reason>``
  (a size below what the device needs, or usage that cannot be reclaimed below it);
- when the stream closes — the host closed it, its adb server went away, the connection dropped — the limit
  the device had when the stream opened is restored. A harness killed mid-sweep leaves no shrunken phone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from edgeship.vdevice.memory import MemoryLimitError
from edgeship.vdevice.transport import Stream, StreamClosed

if TYPE_CHECKING:
    from edgeship.vdevice.device import VirtualDevice
    from edgeship.vdevice.transport import ServiceHandler

SERVICE = "vdevice-ram:"
MAX_LINE = 256


def open_ram(device: VirtualDevice, name: str) -> ServiceHandler | None:
    if name != SERVICE:
        return None
    return lambda stream: serve_ram(device, stream)


def serve_ram(device: VirtualDevice, stream: Stream) -> None:
    memory = device.memory
    if memory is None:
        reason = device.sandbox.memory_unavailable or "started without one"
        _say(stream, f"error no memory cgroup ({reason}): this device has the host's RAM")
        stream.close()
        return
    lease = device.ram_lease
    if not lease.acquire(blocking=False):
        _say(stream, "error the RAM is held by another vdevice-ram stream (a sweep is running)")
        stream.close()
        return
    try:
        original = memory.limit()
        device.log.info("vdevice-ram: lease opened at %d MiB", original // 2**20)
        _say(stream, f"ram {original} {device.profile.ram_bytes}")
        for line in _lines(stream):
            _say(stream, _command(device, line, original))
    except StreamClosed:
        pass
    finally:
        try:
            memory.set_limit(original)
            device.sandbox.refresh_meminfo()
            device.log.info("vdevice-ram: lease closed, RAM back to %d MiB", original // 2**20)
        except (MemoryLimitError, OSError) as exc:  # the cgroup went with a stopping device
            device.log.warning("vdevice-ram: could not restore the RAM: %s", exc)
        finally:
            lease.release()
            stream.close()


def _command(device: VirtualDevice, line: str, original: int) -> str:
    memory = device.memory
    assert memory is not None
    words = line.split()
    if words == ["reset"]:
        target = original
    elif len(words) == 2 and words[0] == "set" and words[1].isdigit():
        target = int(words[1])
    else:
        return f"error unknown request {line[:60]!r}: use 'set BYTES' or 'reset'"
    try:
        memory.set_limit(target)
    except MemoryLimitError as exc:
        return f"error {exc}"
    device.sandbox.refresh_meminfo()  # /proc/meminfo shows the new RAM before the answer
    device.log.info("vdevice-ram: RAM set to %d MiB", target // 2**20)
    return f"ok {memory.limit()}"


def _lines(stream: Stream) -> Iterator[str]:
    buffer = b""
    while (data := stream.read_some()) is not None:
        buffer += bytes(data)
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            yield line.decode(errors="replace").strip()
        if len(buffer) > MAX_LINE:
            raise StreamClosed("a vdevice-ram request longer than a line")


def _say(stream: Stream, text: str) -> None:
    stream.write((text.replace("\n", " ") + "\n").encode())
