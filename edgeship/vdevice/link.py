"""A cable of a given speed: the bandwidth of a phone's USB link, for measuring where the link is the limit.

A virtual device over loopback moves GB/s; a phone on USB 2.0 moves ~40 MB/s and on USB 3 a few hundred.
``LinkPacer`` paces every byte the device receives and sends to a rate in each direction (USB is full
duplex), so TCP back-pressure slows the adb server and the host the way a cable would. Latency is not
modelled: only throughput.
"""

from __future__ import annotations

import threading
import time

BURST_S = 0.005  # a short burst is allowed, like a USB controller's buffers


class _Direction:
    def __init__(self, bytes_per_s: float) -> None:
        self.rate = bytes_per_s
        self.burst = max(64 * 1024.0, bytes_per_s * BURST_S)
        self.allowance = self.burst
        self.last = time.monotonic()
        self.lock = threading.Lock()

    def take(self, count: int) -> None:
        with self.lock:
            now = time.monotonic()
            self.allowance = min(self.burst, self.allowance + (now - self.last) * self.rate)
            self.last = now
            self.allowance -= count
            debt = -self.allowance
        if debt > 0:
            # Sleeping outside the lock: the other thread of this direction queues behind the debt anyway.
            time.sleep(debt / self.rate)


class LinkPacer:
    """Paces bytes in and out of one device to ``mb_per_s`` megabytes (10^6 B) per second each way."""

    def __init__(self, mb_per_s: float) -> None:
        if mb_per_s <= 0:
            raise ValueError("link speed must be positive")
        self.mb_per_s = mb_per_s
        self.inbound = _Direction(mb_per_s * 1e6)
        self.outbound = _Direction(mb_per_s * 1e6)

    def received(self, count: int) -> None:
        self.inbound.take(count)

    def sending(self, count: int) -> None:
        self.outbound.take(count)
