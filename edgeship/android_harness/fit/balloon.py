"""The balloon helper (balloon.c beside this file): built like the probe, pushed content-addressed, started
through adb's shell for one step of a sweep, and read back from the line it prints when it holds its memory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from edgeship.android_harness.probe.build import COMPILE_FLAGS, ZIG_TARGETS, CProgram
from edgeship.console import Reporter

BALLOON = CProgram(
    source=Path(__file__).with_name("balloon.c"),
    binary_name="balloon",
    cache_dir="balloon",
    targets=ZIG_TARGETS,  # static musl like the probe: runs on any Android kernel of that ABI
    flags=COMPILE_FLAGS,
)
READY = re.compile(r"^ready((?: [a-z_]+=-?\d+)+)$")


def build_balloon(abi: str, reporter: Reporter | None = None) -> Path:
    """The balloon binary for ``abi``, built into the cache first when needed."""
    return BALLOON.build(abi, reporter=reporter)


def balloon_argv(remote_binary: str, target_available: int, tolerance: int, max_seconds: int) -> list[str]:
    return [
        remote_binary,
        "--target-available", str(int(target_available)),
        "--tolerance", str(int(tolerance)),
        "--max-seconds", str(int(max_seconds)),
    ]  # fmt: skip


@dataclass(frozen=True)
class BalloonState:
    """The balloon's ready line: what it holds and what the device has left (bytes; -1: not in /proc)."""

    pid: int
    held: int
    locked: int
    available: int
    swap_free: int
    swap_total: int
    vm_rss: int
    vm_swap: int
    rounds: int

    @property
    def swapped(self) -> int:
        """Balloon bytes the kernel swapped out (to zram on a phone) despite the random fill and the reads."""
        return max(0, self.vm_swap)


def parse_ready(line: str) -> BalloonState | None:
    """``ready pid=… held=… …`` → BalloonState; None for any other line."""
    match = READY.match(line.strip())
    if not match:
        return None
    values = dict(pair.split("=") for pair in match.group(1).split())
    try:
        return BalloonState(**{name: int(values[name]) for name in BalloonState.__dataclass_fields__})
    except KeyError:
        return None
