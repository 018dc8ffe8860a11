"""Two pushes of one bundle to one device at once: one owner per partial prefix, and nothing verified is
ever rewritten by a resume.

A push is held mid-transfer by its own progress callback (the host stops sending, its device script and
partial prefix stay live), while a second push of the same bundle runs; then the first is let go.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from edgeship.android_harness.adb.device import Device
from edgeship.android_harness.push import PushResult, push_bundle
from edgeship.console import TransferProgress
from edgeship.exporter.manifest import Build, read_build
from tests.android_harness.conftest import device_on
from tests.android_harness.synthetic import write_build

WAIT_S = 60.0


class _Gate(TransferProgress):
    """Holds the push once ``hold_at`` bytes went out, until ``released``; cuts the link (the push fails)
    once ``cut_at`` went out; ``on_start`` runs before anything is sent."""

    def __init__(
        self,
        hold_at: int | None = None,
        on_start: Callable[[], None] | None = None,
        cut_at: int | None = None,
    ) -> None:
        self.hold_at = hold_at
        self.cut_at = cut_at
        self.on_start = on_start
        self.sent = 0
        self.held = threading.Event()
        self.released = threading.Event()

    def start(self, total: int) -> None:
        if self.on_start is not None:
            self.on_start()

    def advance(self, sent: int) -> None:
        self.sent += sent
        if self.cut_at is not None and self.sent >= self.cut_at:
            raise ConnectionResetError("cable pulled")
        if self.hold_at is not None and self.sent >= self.hold_at and not self.released.is_set():
            self.held.set()
            assert self.released.wait(WAIT_S), "the test never released the push"


def _wait_for(what: str, condition: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _pieces(vdevice: Any, build: Build) -> Path:
    return vdevice.sandbox_root / "edgeship" / "staging" / build.sha256 / "pieces"


def _partials(vdevice: Any, build: Build) -> dict[str, int]:
    """The partial prefixes the device holds for ``build``, by name, with their sizes."""
    folder = _pieces(vdevice, build)
    try:
        return {p.name: p.stat().st_size for p in folder.iterdir() if p.name.startswith("partial")}
    except FileNotFoundError:
        return {}


def _final(vdevice: Any, build: Build) -> Path:
    return vdevice.sandbox_root / "edgeship" / "bundles" / build.sha256 / "model.litertlm"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def big_build(tmp_path: Path) -> Build:
    """A first push of ~12 MB: long enough to hold at a quarter with megabytes still to come."""
    sections = [
        ("tf_lite_per_layer_embedder", os.urandom(8 * 1024 * 1024 + 77)),
        ("tf_lite_prefill_decode", os.urandom(4 * 1024 * 1024)),
    ]
    return read_build(write_build(tmp_path / "big", sections))


def _held_first_push(
    pool: ThreadPoolExecutor, device: Device, vdevice: Any, build: Build, verify: bool
) -> tuple[Future[PushResult], _Gate, str]:
    gate = _Gate(hold_at=build.bytes // 4)
    first = pool.submit(push_bundle, device, build, verify=verify, progress=gate)
    assert gate.held.wait(WAIT_S), (
        first.result() if first.done() else "the first push never got a quarter out"
    )
    # The device has linked what arrived so far: the prefix a resume would start from.
    name, _ = _wait_for(
        "the first push's partial prefix",
        lambda: next(((n, s) for n, s in _partials(vdevice, build).items() if s >= build.bytes // 8), None),
    )
    return first, gate, name


def _attempts(vdevice: Any, build: Build) -> set[str]:
    return {path.name for path in _pieces(vdevice, build).parent.glob("attempt-*")}


@pytest.mark.parametrize("verify", [True, False], ids=["verify", "no-verify"])
def test_a_second_push_never_takes_the_partial_of_a_live_push(
    adb_server: Any, vdevice: Any, big_build: Build, verify: bool
) -> None:
    """Push 1 is held at a quarter; push 2 starts and is held once its device script runs; push 1 finishes,
    then push 2. On main push 2 resumed from push 1's partial — a hard link to push 1's growing file — and
    cut it to a block boundary: push 1 then wrote past the cut (a hole of zeros) and push 2 appended after
    push 1's end, so a wrong file was renamed into place, with --no-verify and, through push 1's rename
    of the shared file, with verification too."""
    device, other = device_on(adb_server, vdevice), device_on(adb_server, vdevice)
    with ThreadPoolExecutor(2) as pool:
        first, gate, partial = _held_first_push(pool, device, vdevice, big_build, verify)
        ours = _attempts(vdevice, big_build)
        second_gate = _Gate(hold_at=64 * 1024)
        second = pool.submit(push_bundle, other, big_build, verify=verify, progress=second_gate)
        assert second_gate.held.wait(WAIT_S), second.result() if second.done() else "push 2 never sent data"
        # Push 2's script has started: its attempt folder holds the start of its bundle file.
        theirs = _wait_for("push 2's attempt folder", lambda: _attempts(vdevice, big_build) - ours)
        out = _pieces(vdevice, big_build).parent / theirs.pop() / "model.litertlm"
        _wait_for("push 2's bundle file", lambda: out.is_file() and out.stat().st_size % 16384 == 0)
        partial_kept = partial in _partials(vdevice, big_build)  # push 1's own, left alone
        gate.released.set()
        result = first.result(timeout=WAIT_S)
        second_gate.released.set()
        second_result = second.result(timeout=WAIT_S)
    final = _final(vdevice, big_build)
    seen = {
        "first": (result.ok, result.error),
        "second": (second_result.ok, second_result.status, second_result.error),
        "second resumed": second_result.bytes_resumed,
        "partial kept": partial_kept,
        "final sha256 ok": final.is_file() and _sha(final) == big_build.sha256,
        "final size": final.stat().st_size if final.is_file() else None,
        "final links": final.stat().st_nlink if final.is_file() else None,  # 1: no partial links into it
        "staging left": (final.parent.parent.parent / "staging" / big_build.sha256).exists(),
    }
    assert seen == {
        "first": (True, None),
        "second": (True, "pushed", None),
        "second resumed": 0,
        "partial kept": True,
        "final sha256 ok": True,
        "final size": big_build.bytes,
        "final links": 1,
        "staging left": False,
    }


def test_a_resume_that_loses_its_partial_restarts_clean_and_leaves_other_pushes_alone(
    adb_server: Any, vdevice: Any, big_build: Build, tmp_path: Path
) -> None:
    """The dead partial a resume planned on is taken by another push before its script runs: it sends the
    whole bundle, and the partial of a push still live is left alone (main removed every piece)."""
    device, other, third = (device_on(adb_server, vdevice) for _ in range(3))
    staging = _pieces(vdevice, big_build).parent
    with ThreadPoolExecutor(2) as pool:
        first, gate, live_partial = _held_first_push(pool, device, vdevice, big_build, verify=True)
        # A push that dies meanwhile leaves half the bundle as a partial prefix of its own.
        dead = push_bundle(third, big_build, progress=_Gate(cut_at=big_build.bytes // 2))
        assert not dead.ok
        _wait_for("the dead push's attempt folder to go", lambda: len(list(staging.glob("attempt-*"))) == 1)
        [dead_partial] = set(_partials(vdevice, big_build)) - {live_partial}
        taken = tmp_path / "taken"

        def take_it_first() -> None:  # between the second push's survey and its script
            if not taken.exists():
                (_pieces(vdevice, big_build) / dead_partial).rename(taken)

        second = push_bundle(other, big_build, progress=_Gate(on_start=take_it_first))
        assert taken.exists()  # the second push did plan to resume from it
        assert second.ok and second.status == "pushed", second.error
        assert second.bytes_resumed == 0 and second.bytes_sent >= big_build.bytes
        assert live_partial in _partials(vdevice, big_build)
        gate.released.set()
        result = first.result(timeout=WAIT_S)
    assert result.ok, result.error
    assert _sha(_final(vdevice, big_build)) == big_build.sha256
