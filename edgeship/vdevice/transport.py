"""One host connection: the CNXN handshake, the stream table and per-stream flow control.

Threads: one reader per connection parses packets and hands payloads to streams; each opened service runs
in its own thread and talks to its ``Stream`` with blocking calls. Flow control follows adbd: a stream sends
one WRTE, then waits for the host's OKAY; a received WRTE is acknowledged as soon as the service starts
consuming it (which lets the host send the next one while this one is being written to disk).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from edgeship.vdevice import packets
from edgeship.vdevice.auth import AUTH_RSAPUBLICKEY, AUTH_SIGNATURE, AUTH_TOKEN, AuthSession, DeviceAuth
from edgeship.vdevice.link import LinkPacer
from edgeship.vdevice.packets import (
    A_AUTH,
    A_CLSE,
    A_CNXN,
    A_OKAY,
    A_OPEN,
    A_STLS,
    A_VERSION,
    A_WRTE,
    MAX_PAYLOAD,
    MalformedPacket,
)

log = logging.getLogger("edgeship.vdevice")

# Each stream is a thread (and often a process): a host may not open them without bound. An adb server
# multiplexes all of its clients over one connection; a profile needs a handful of streams at a time.
MAX_STREAMS_PER_CONNECTION = 128
# How long a host has, from its TCP connect, to send CNXN and answer AUTH (a silent client holds a thread).
HANDSHAKE_TIMEOUT_S = 10.0
# A host that says it accepts less than this is broken; keep writes from degenerating to 1-byte packets.
MIN_PAYLOAD = 256
# A host waits for our OKAY after each WRTE, so one or two payloads are queued per stream; a host that keeps
# writing without acknowledgements breaks the protocol and would grow our memory without bound.
MAX_QUEUED_PAYLOADS = 64


class ProtocolViolation(Exception):
    """The host broke a protocol rule badly enough that the connection is dropped."""


ServiceHandler = Callable[["Stream"], None]


class StreamBudget:
    """Streams open at once across every connection of a device: each is a thread, so they are bounded."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._count = 0
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        with self._lock:
            if self._count >= self.limit:
                return False
            self._count += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._count = max(0, self._count - 1)

    @property
    def in_use(self) -> int:
        with self._lock:
            return self._count


class ServiceOpener(Protocol):
    """What a connection needs from the device: its banner and a way to open a named service."""

    def banner(self) -> bytes: ...

    def open_service(self, name: str) -> ServiceHandler | None: ...


class StreamClosed(Exception):
    """The stream was closed (by the host, by the device, or because the connection dropped)."""


class ConnectionDropped(Exception):
    """The TCP connection ended."""


class Stream:
    """One service stream multiplexed on a connection, seen from the service's thread."""

    def __init__(self, connection: Connection, local_id: int, remote_id: int, name: str) -> None:
        self.connection = connection
        self.local_id = local_id
        self.remote_id = remote_id
        self.name = name
        self._cond = threading.Condition()
        self._inbound: deque[memoryview] = deque()
        self._current: memoryview = memoryview(b"")
        self._remote_closed = False
        self._local_closed = False
        self._can_send = True
        self._write_lock = threading.Lock()
        self._close_callbacks: list[Callable[[], None]] = []

    # ---- called from the connection's reader thread -------------------------------------------------
    def _deliver(self, payload: bytearray) -> None:
        with self._cond:
            if self._local_closed or self._remote_closed:
                return
            if len(self._inbound) >= MAX_QUEUED_PAYLOADS:
                raise ProtocolViolation(
                    f"host sent {len(self._inbound)} WRTEs on stream {self.local_id} without OKAY"
                )
            self._inbound.append(memoryview(payload))
            self._cond.notify_all()

    def _acknowledged(self) -> None:
        with self._cond:
            self._can_send = True
            self._cond.notify_all()

    def _closed_by_remote(self) -> None:
        with self._cond:
            self._remote_closed = True
            self._cond.notify_all()
        self._run_close_callbacks()

    # ---- the service side ---------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._remote_closed or self._local_closed

    @property
    def max_payload(self) -> int:
        return self.connection.max_payload

    def on_close(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once when the host closes the stream or the connection drops (now if it has)."""
        with self._cond:
            if not self._remote_closed:
                self._close_callbacks.append(callback)
                return
        # Closed before the service got here (e.g. while its command was being spawned): act at once.
        callback()

    def _run_close_callbacks(self) -> None:
        with self._cond:
            callbacks, self._close_callbacks = self._close_callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                self.connection.log.exception("stream %d close callback failed", self.local_id)

    def _next_packet(self) -> bool:
        """Make the next received payload current and acknowledge it; False at end of stream."""
        with self._cond:
            while not self._inbound:
                if self._remote_closed or self._local_closed:
                    return False
                self._cond.wait()
            self._current = self._inbound.popleft()
        self.connection.send_packet(A_OKAY, self.local_id, self.remote_id)
        return True

    def read_some(self) -> memoryview | None:
        """The rest of the current payload or the next one; None at end of stream."""
        while not self._current:
            if not self._next_packet():
                return None
        view, self._current = self._current, memoryview(b"")
        return view

    def read_exact(self, size: int) -> bytes:
        """Exactly ``size`` bytes across WRTE boundaries; raises StreamClosed on a short stream."""
        if len(self._current) >= size:
            data = bytes(self._current[:size])
            self._current = self._current[size:]
            return data
        parts = bytearray()
        while len(parts) < size:
            if not self._current and not self._next_packet():
                raise StreamClosed(f"stream {self.local_id} ended inside a message")
            take = min(size - len(parts), len(self._current))
            parts += self._current[:take]
            self._current = self._current[take:]
        return bytes(parts)

    def copy_to(self, fd: int | None, size: int) -> None:
        """Move ``size`` bytes of the stream to a file descriptor (None discards them), without copies.

        A failed write (disk full) still consumes the whole block before raising, so the caller can keep
        reading the framing (adbd drains to DONE and answers FAIL) instead of desynchronising.
        """
        failure: OSError | None = None
        while size:
            if not self._current and not self._next_packet():
                raise StreamClosed(f"stream {self.local_id} ended inside a data block")
            take = min(size, len(self._current))
            chunk = self._current[:take]
            self._current = self._current[take:]
            size -= take
            while fd is not None and failure is None and chunk:
                try:
                    written = os.write(fd, chunk)
                except OSError as exc:
                    failure = exc
                    break
                chunk = chunk[written:]
        if failure is not None:
            raise failure

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data`` as WRTE packets of at most max_payload, one outstanding packet at a time."""
        view = memoryview(data)
        with self._write_lock:
            while view:
                limit = self.connection.max_payload
                chunk, view = view[:limit], view[limit:]
                with self._cond:
                    while not self._can_send and not self.closed:
                        self._cond.wait()
                    if self.closed:
                        raise StreamClosed(f"stream {self.local_id} is closed")
                    self._can_send = False
                self.connection.send_packet(A_WRTE, self.local_id, self.remote_id, chunk)

    def close(self) -> None:
        """End the stream from the device side (CLSE), once."""
        with self._cond:
            if self._local_closed:
                return
            self._local_closed = True
            send_close = not self._remote_closed
            self._cond.notify_all()
        try:
            if send_close:
                self.connection.send_packet(A_CLSE, self.local_id, self.remote_id)
        finally:
            self.connection.forget(self)


class Connection:
    """The device end of one TCP connection from an adb server (or any adb host)."""

    def __init__(
        self,
        sock: socket.socket,
        device: ServiceOpener,
        peer: str,
        logger: logging.Logger | None = None,
        auth: DeviceAuth | None = None,
        link: LinkPacer | None = None,
        handshake_timeout: float | None = HANDSHAKE_TIMEOUT_S,
        budget: StreamBudget | None = None,
    ) -> None:
        self.log = logger or log
        self.handshake_timeout = handshake_timeout
        self.budget = budget
        self.link = link  # None: loopback speed
        # None or mode "none": ro.adb.secure=0, CNXN is answered with CNXN.
        self.auth = AuthSession(auth) if auth is not None and auth.required else None
        self.sock = sock
        self.device = device
        self.peer = peer
        self.online = False
        # A key prompt is on screen: the host waits for the user like for a phone, with no deadline.
        self.awaiting_user = False
        self.peer_version = packets.A_VERSION_MIN
        self.max_payload = packets.MAX_PAYLOAD_V1
        self.peer_banner: dict[str, str] = {}
        self._send_lock = threading.Lock()
        self._streams: dict[int, Stream] = {}
        self._streams_lock = threading.Lock()
        self._next_id = 1
        self._closed = False
        self._service_threads: list[threading.Thread] = []

    # ---- sending ------------------------------------------------------------------------------------
    def send_packet(self, command: int, arg0: int, arg1: int, payload: bytes | memoryview = b"") -> None:
        header = packets.pack_header(command, arg0, arg1, payload)
        if self.link is not None:
            self.link.sending(len(header) + len(payload))
        try:
            with self._send_lock:
                if len(payload) < 65536:
                    self.sock.sendall(header + bytes(payload))
                else:
                    self.sock.sendall(header)
                    self.sock.sendall(payload)
        except OSError as exc:
            # The reader notices the drop too and tears the streams down; the writer only has to stop.
            raise StreamClosed(f"connection to {self.peer} lost: {exc}") from None

    # ---- receiving ----------------------------------------------------------------------------------
    def _recv_exact_into(self, view: memoryview) -> None:
        received = 0
        while received < len(view):
            count = self.sock.recv_into(view[received:])
            if count == 0:
                raise ConnectionDropped()
            received += count

    def serve(self) -> None:
        """Read and dispatch packets until the connection ends, then tear down every stream."""
        header_buffer = bytearray(packets.HEADER_SIZE)
        header_view = memoryview(header_buffer)
        deadline = None if self.handshake_timeout is None else time.monotonic() + self.handshake_timeout
        try:
            while True:
                if deadline is not None and not (self.online or self.awaiting_user):
                    self.sock.settimeout(max(0.001, deadline - time.monotonic()))
                elif deadline is not None:
                    self.sock.settimeout(None)
                    deadline = None  # online for good: no more deadlines for this connection
                self._recv_exact_into(header_view)
                header = packets.parse_header(header_buffer, MAX_PAYLOAD)
                payload = bytearray(header.data_length)
                if header.data_length:
                    self._recv_exact_into(memoryview(payload))
                if self.link is not None:
                    self.link.received(packets.HEADER_SIZE + header.data_length)
                self._dispatch(header, payload)
        except ConnectionDropped:
            self.log.info("connection from %s closed", self.peer)
        except TimeoutError:
            self.log.warning(
                "dropping connection from %s: no CNXN/AUTH handshake within %.0fs",
                self.peer,
                self.handshake_timeout,
            )
        except (MalformedPacket, ProtocolViolation) as exc:
            self.log.warning("dropping connection from %s: %s", self.peer, exc)
        except OSError as exc:
            self.log.info("connection from %s lost: %s", self.peer, exc)
        except Exception:
            self.log.exception("dropping connection from %s after an internal error", self.peer)
        finally:
            self.close()

    def _dispatch(self, header: packets.Header, payload: bytearray) -> None:
        command = header.command
        if command == A_CNXN:
            self._handle_connect(header, payload)
        elif command == A_AUTH and self.auth is not None and not self.online:
            self._handle_auth(self.auth, header, payload)
        elif command in (A_AUTH, A_STLS):
            # Never offered TLS; AUTH without ro.adb.secure (or once online) is not asked for: the host waits.
            self.log.debug("ignoring %s from %s", header.name, self.peer)
        elif not self.online:
            # adbd drops OPEN/OKAY/WRTE/CLSE on a transport not online (no CNXN, or not authorized yet).
            self.log.debug("ignoring %s before the connection is online from %s", header.name, self.peer)
        elif command == A_OPEN:
            self._handle_open(header, payload)
        elif command == A_WRTE:
            stream = self._stream_for(header.arg1, header.arg0)
            if stream is None:
                return
            if payload:
                stream._deliver(payload)
            else:
                self.send_packet(A_OKAY, stream.local_id, stream.remote_id)
        elif command == A_OKAY:
            stream = self._stream_for(header.arg1, header.arg0)
            if stream is not None:
                stream._acknowledged()
        elif command == A_CLSE:
            with self._streams_lock:
                stream = self._streams.get(header.arg1)
                if stream is None or header.arg0 not in (0, stream.remote_id):
                    return
                del self._streams[header.arg1]
            self._release(1)
            stream._closed_by_remote()
        else:
            self.log.debug("ignoring unknown command %s from %s", header.name, self.peer)

    def _stream_for(self, local_id: int, remote_id: int) -> Stream | None:
        with self._streams_lock:
            stream = self._streams.get(local_id)
        if stream is None or stream.remote_id != remote_id:
            return None  # packets for ids we no longer know are ignored, like adbd
        return stream

    def _handle_connect(self, header: packets.Header, payload: bytearray) -> None:
        if self.online:
            # A second CNXN means the host restarted its side of the transport: drop our streams.
            self._close_all_streams()
        self.peer_version = min(header.arg0, A_VERSION)
        self.max_payload = max(MIN_PAYLOAD, min(header.arg1, MAX_PAYLOAD))
        self.peer_banner = packets.parse_banner(bytes(payload))
        self.online = False
        self.log.info(
            "CNXN from %s: version 0x%08x, max payload %d, %s",
            self.peer,
            header.arg0,
            header.arg1,
            self.peer_banner.get("features", ""),
        )
        if self.auth is None:
            self._go_online()
            return
        # ro.adb.secure=1: the host must sign a token (or have its key allowed) before anything else works.
        self.log.info("AUTH required: sending a token to %s", self.peer)
        self.send_packet(A_AUTH, AUTH_TOKEN, 0, self.auth.next_token())

    def _go_online(self) -> None:
        self.online = True
        self.send_packet(A_CNXN, A_VERSION, MAX_PAYLOAD, self.device.banner())

    def _handle_auth(self, session: AuthSession, header: packets.Header, payload: bytearray) -> None:
        """adbd's A_AUTH handling on a transport that is not online yet (adb.cpp handle_packet)."""
        if header.arg0 == AUTH_SIGNATURE:
            if not session.token:
                self.log.info("AUTH SIGNATURE from %s before CNXN: ignored", self.peer)
                return
            key = session.device_auth.verify(session.token, bytes(payload))
            if key is not None:
                self.log.info("AUTH from %s: signature verified with a remembered key", self.peer)
                session.failed_attempts = 0
                self._go_online()
                return
            session.signature_failed()
            self.log.info(
                "AUTH from %s: signature of %d bytes not accepted (attempt %d): new token",
                self.peer,
                len(payload),
                session.failed_attempts,
            )
            self.send_packet(A_AUTH, AUTH_TOKEN, 0, session.next_token())
        elif header.arg0 == AUTH_RSAPUBLICKEY:
            # adbd reads the key as a NUL-terminated string.
            key_text = bytes(payload).split(b"\0", 1)[0].decode("ascii", "replace")
            if session.device_auth.prompt(key_text, self.peer):
                self._go_online()
            else:
                self.awaiting_user = True
        else:
            # adbd takes the transport offline on an AUTH type it does not handle (a host's TOKEN too).
            self.log.warning("AUTH type %d from %s: connection goes offline", header.arg0, self.peer)
            self._close_all_streams()

    def _handle_open(self, header: packets.Header, payload: bytearray) -> None:
        remote_id = header.arg0
        if remote_id == 0:
            return
        name = bytes(payload).rstrip(b"\0").decode("utf-8", "replace")
        handler: ServiceHandler | None = None
        # A non-zero arg1 is a delayed-ack window; we never offered delayed_ack, so adbd would refuse.
        if header.arg1 != 0:
            handler = None
        elif len(self._streams) >= MAX_STREAMS_PER_CONNECTION or not self._acquire_budget():
            self.log.warning("refusing service %r: too many open streams", name[:200])
            self.send_packet(A_CLSE, 0, remote_id)
            return
        else:
            try:
                handler = self.device.open_service(name)
            except Exception:
                self.log.exception("opening service %r failed", name)
                handler = None
            if handler is None and self.budget is not None:
                self.budget.release()
        if handler is None:
            self.log.info("refusing service %r", name[:200])
            self.send_packet(A_CLSE, 0, remote_id)
            return
        stream = self._register(remote_id, name)
        self.log.debug("OPEN %r -> stream %d", name[:200], stream.local_id)
        self.send_packet(A_OKAY, stream.local_id, remote_id)
        thread = threading.Thread(
            target=_run_service, args=(handler, stream), name=f"vdevice-{name[:24]}", daemon=True
        )
        thread.start()
        self._service_threads = [t for t in self._service_threads if t.is_alive()]
        self._service_threads.append(thread)

    def _acquire_budget(self) -> bool:
        return self.budget is None or self.budget.try_acquire()

    def _register(self, remote_id: int, name: str) -> Stream:
        with self._streams_lock:
            while self._next_id in self._streams or self._next_id == 0:
                self._next_id = (self._next_id + 1) & 0xFFFFFFFF
            stream = Stream(self, self._next_id, remote_id, name)
            self._streams[stream.local_id] = stream
            self._next_id = (self._next_id + 1) & 0xFFFFFFFF
            return stream

    def forget(self, stream: Stream) -> None:
        with self._streams_lock:
            if self._streams.get(stream.local_id) is not stream:
                return
            del self._streams[stream.local_id]
        self._release(1)

    def _release(self, count: int) -> None:
        if self.budget is not None:
            for _ in range(count):
                self.budget.release()

    def _close_all_streams(self) -> None:
        with self._streams_lock:
            streams = list(self._streams.values())
            self._streams.clear()
        self._release(len(streams))
        for stream in streams:
            stream._closed_by_remote()

    def close(self) -> None:
        """Drop the connection: every stream sees a remote close, so its processes are killed."""
        if self._closed:
            return
        self._closed = True
        self.online = False
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._close_all_streams()

    def join_services(self, timeout: float) -> None:
        for thread in list(self._service_threads):
            thread.join(timeout)


def _run_service(handler: ServiceHandler, stream: Stream) -> None:
    try:
        handler(stream)
    except StreamClosed:
        pass
    except Exception:
        stream.connection.log.exception("service %r failed", stream.name[:200])
    finally:
        with contextlib.suppress(StreamClosed):
            stream.close()
