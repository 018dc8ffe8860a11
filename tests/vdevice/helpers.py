"""Helpers shared by the virtual device's tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgeship.vdevice import memory


def require_memory_cgroup() -> None:
    """Skip, saying why, where this host cannot give a virtual device its own RAM (not root, no memcg)."""
    reason = memory.unavailable_reason()
    if reason is not None:
        pytest.skip(f"no memory cgroup for virtual devices here: {reason}")


def host_pids_with(marker: str) -> list[int]:
    """Host pids whose command line contains ``marker`` (the sandbox's PID namespace is visible from here)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline.replace(b"\0", b" "):
                found.append(int(entry))
    return found
