"""Push a bundle to devices: reuse what the device holds, send the rest, verify on the device, rename.

One device costs, when the bundle is already there, one shell round trip (the survey). Otherwise:

1. survey (1 shell): bundles present, their section index, what an interrupted push left, free space;
2. plan (store.transfer): which 16 KiB blocks to copy from older bundles, what to send — the whole bundle as
   one file on a first push, pieces around the copied sections on a rebuild;
3. refuse with "needs X, has Y" when what arrives would not fit;
4. send the side files (manifest, tokenizer, section index) and the device script in one sync session;
5. start the script (push.script), then send the data and an end marker in one pipelined sync session.
   The script writes staging/<sha>/<attempt>/model.litertlm once, front to back, hashes it with the
   device's `sha256sum` while it grows, checks size and digest against the manifest, and only then
   renames the attempt folder to bundles/<sha>/ — a directory rename, atomic, so a final path never holds
   anything but the verified bundle, whatever gets killed when.

Android's toybox `sha256sum` links BoringSSL (GB/s with the ARMv8 SHA instructions), so hashing keeps up
with the transfer instead of adding a pass at the end.

If assembling from reused data gives the wrong sha256 (a tampered older bundle or partial prefix), the
push is retried once sending everything.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgeship.android_harness.adb import Device, ShellResult
from edgeship.android_harness.push.script import (
    EXIT_PARTIAL_GONE,
    EXIT_SHA_MISMATCH,
    UNVERIFIED_MARK,
    Survey,
    assemble_script,
    data_targets,
    new_attempt_name,
    parse_survey,
    set_aside_script,
    survey_script,
)
from edgeship.android_harness.store import (
    INDEX_NAME,
    DeviceIndex,
    DeviceStore,
    SideFile,
    TransferPlan,
    index_text,
    plan_transfer,
    side_files,
)
from edgeship.config import DEFAULT_DEVICE_ROOT
from edgeship.console import Reporter, TransferProgress
from edgeship.errors import DeviceError, EdgeshipError
from edgeship.exporter.manifest import Build, read_build
from edgeship.units import format_bytes

ASSEMBLE_TIMEOUT_S = 1800.0


@dataclass
class PushResult:
    serial: str
    bundle_sha256: str
    remote_path: str | None
    bytes_sent: int
    bytes_reused: int
    seconds: float
    ok: bool
    error: str | None = None
    status: str = "pushed"  # pushed | present | planned | failed
    bytes_resumed: int = 0  # part of bytes_reused: pieces left by an interrupted push

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- one device ----------------------------------------------------------------------------------------------


def _script_failure(device: Device, result: ShellResult, what: str) -> DeviceError:
    text = (result.stderr or result.stdout).decode(errors="replace").strip().splitlines()
    reason = text[-1] if text else f"exit {result.exit_code}"
    return DeviceError(f"{device.serial}: {what}: {reason}")


class _Attempt:
    """One push of one bundle to one device (reuse may be switched off for the retry)."""

    def __init__(
        self, device: Device, build: Build, store: DeviceStore, verify: bool, progress: TransferProgress
    ) -> None:
        self.device = device
        self.build = build
        self.side_files = side_files(build)
        self.store = store
        self.verify = verify
        self.progress = progress

    def survey(self) -> Survey:
        result = self.device.shell(survey_script(self.store.root, self.build.sha256), timeout=60)
        if result.exit_code != 0:
            raise _script_failure(self.device, result, "surveying the device store failed")
        return parse_survey(result.text)

    def present_bundle_intact(self) -> bool:
        """sha256sum of the bundle already at its final path, on the device (seconds per GB)."""
        self.progress.phase("checking the bundle on the device")
        path = self.store.bundle_path(self.build.sha256)
        result = self.device.shell(["sha256sum", path], timeout=ASSEMBLE_TIMEOUT_S)
        if result.exit_code != 0:
            raise _script_failure(self.device, result, "checking the bundle on the device failed")
        return result.text.split()[:1] == [self.build.sha256]

    def mark_verified(self) -> None:
        """The bundle in place just matched its sha256 on the device: drop its --no-verify mark."""
        mark = f"{self.store.bundle_dir(self.build.sha256)}/{UNVERIFIED_MARK}"
        result = self.device.shell(["rm", "-f", mark], timeout=60)
        if result.exit_code != 0:
            raise _script_failure(self.device, result, "marking the bundle verified failed")

    def set_aside_present_bundle(self) -> None:
        result = self.device.shell(set_aside_script(self.store, self.build.sha256), timeout=120)
        if result.exit_code != 0:
            raise _script_failure(self.device, result, "removing the damaged bundle failed")

    def side_copies(self, index: DeviceIndex) -> tuple[dict[str, str], list[SideFile]]:
        """Side files the device already has (same sha256 beside another bundle) and the ones to send."""
        copies: dict[str, str] = {}
        to_send = []
        for side in self.side_files:
            holder = index.side_files.get(side.sha256)
            if holder and index.side_names.get(side.sha256) == side.name and holder != self.build.sha256:
                copies[side.name] = holder
            else:
                to_send.append(side)
        return copies, to_send

    def drop_attempt(self, folder: str) -> None:
        """Remove the attempt folder of a push that failed on the host's side, at once: its partial prefix
        (outside it) becomes free for the next push's resume without waiting for its heartbeat to age
        (a device whose shell is killed with SIGKILL never runs the script's own clean-up)."""
        with contextlib.suppress(EdgeshipError):
            self.device.shell(["rm", "-rf", folder], timeout=30)

    def send_and_assemble(self, plan: TransferPlan, survey: Survey) -> int:
        staging = self.store.staging_for(self.build.sha256)
        attempt = new_attempt_name()
        folder = f"{staging}/{attempt}"
        side_copies, side_to_send = self.side_copies(survey.index)
        self.progress.start(plan.bytes_to_send + sum(side.bytes for side in side_to_send))
        # The script travels by sync too (a 1.5 GB bundle has ~100 regions, past the 4 KiB command limit
        # of older adbd), together with the small files, in one session; SEND creates the folders.
        script = assemble_script(
            self.store, self.build, plan, side_copies, self.verify, attempt, survey.stale_attempts
        )
        blobs = [(side.path.read_bytes(), f"{folder}/{side.name}") for side in side_to_send]
        blobs += [
            (index_text(self.build, self.side_files, time.time()).encode(), f"{folder}/{INDEX_NAME}"),
            (script.encode(), f"{folder}/assemble.sh"),
        ]
        self.device.push_blobs(blobs)
        sent = sum(side.bytes for side in side_to_send)
        self.progress.advance(sent)
        # The assembler starts now and writes + hashes the bundle while the data travels.
        assembler = self.device.shell_start(["sh", f"{folder}/assemble.sh"])
        try:
            targets = data_targets(self.store, plan, attempt)
            sent += self.device.push_ranges(self.build.bundle_path, targets, progress=self.progress.advance)
        except BaseException:
            assembler.close()  # the device kills the waiting script; what arrived stays for a resume
            self.drop_attempt(folder)
            raise
        self.progress.phase("verifying on the device")
        result = assembler.wait(timeout=ASSEMBLE_TIMEOUT_S)
        if result.exit_code == EXIT_SHA_MISMATCH:
            raise _StartAfresh(
                _script_failure(self.device, result, "assembled bundle failed sha256sum").message
            )
        if result.exit_code == EXIT_PARTIAL_GONE:
            raise _StartAfresh(_script_failure(self.device, result, "resuming failed").message)
        if result.exit_code != 0:
            raise _script_failure(self.device, result, "assembling the bundle failed")
        return sent


class _StartAfresh(DeviceError):
    """What was reused did not verify (or was taken by another push): send everything once more."""


def push_bundle(
    device: Device,
    build: Build | Path | str,
    *,
    verify: bool = True,
    dry_run: bool = False,
    reporter: Reporter | None = None,
    root: str = DEFAULT_DEVICE_ROOT,
    progress: TransferProgress | None = None,
    verify_present: bool = False,
) -> PushResult:
    """Make bundles/<sha>/ on the device hold the verified bundle; device failures come back in the result.

    A bad BUILD_DIR (no manifest, sha256 mismatch) raises InputError before anything is sent. A bundle
    already there counts as present by its size (it was verified when renamed into place); with
    ``verify_present`` it is hashed on the device too and pushed again when it no longer matches. Without
    ``verify`` the bundle is renamed into place marked unverified (bundles/<sha>/unverified): a later
    verified push (and so every profile) hashes it on the device once, then drops the mark or sends it
    again; an unverified bundle is never a source of section reuse.
    """
    started = time.monotonic()
    if not isinstance(build, Build):
        build = read_build(build, verify=verify)
    reporter = reporter or Reporter()
    if progress is None:
        progress = _ReporterProgress(reporter, device.serial)
    store = DeviceStore(device, root=root)
    result = PushResult(
        serial=device.serial,
        bundle_sha256=build.sha256,
        remote_path=None,
        bytes_sent=0,
        bytes_reused=0,
        seconds=0.0,
        ok=False,
    )
    try:
        if device.state != "device":
            raise DeviceError(f"device {device.serial} is {device.state}")
        _push_one(device, build, store, verify, dry_run, progress, result, reporter, verify_present)
        result.ok = True
    except EdgeshipError as exc:
        result.ok = False
        result.status = "failed"
        result.error = exc.message
    result.seconds = round(time.monotonic() - started, 3)
    return result


def _push_one(
    device: Device,
    build: Build,
    store: DeviceStore,
    verify: bool,
    dry_run: bool,
    progress: TransferProgress,
    result: PushResult,
    reporter: Reporter,
    verify_present: bool = False,
) -> None:
    attempt = _Attempt(device, build, store, verify, progress)
    progress.phase("survey")
    survey = attempt.survey()
    if not survey.marked and not dry_run:
        store.mark()  # before anything of ours lands there: gc removes only inside a marked store
    final_path = store.bundle_path(build.sha256)
    if survey.index.bundles.get(build.sha256) == build.bytes:
        # A bundle a --no-verify push put there was never hashed: a verified push checks it once.
        unchecked = verify and build.sha256 in survey.index.unverified
        if unchecked:
            reporter.note(
                f"{device.serial}: the bundle there was pushed with --no-verify; checking its sha256 once"
            )
        if not (verify_present or unchecked) or attempt.present_bundle_intact():
            if unchecked and not dry_run:
                attempt.mark_verified()
            result.status = "present"
            result.remote_path = final_path
            result.bytes_reused = build.bytes
            return
        reporter.note(
            f"{device.serial}: the bundle on the device does not match its sha256; sending it again"
        )
        if dry_run:  # nothing is changed on the device: plan as if it held nothing of this bundle
            survey = Survey(DeviceIndex(free_bytes=survey.index.free_bytes))
        else:
            attempt.set_aside_present_bundle()
            survey = attempt.survey()

    plan = plan_transfer(build, survey.index)
    _, side_to_send = attempt.side_copies(survey.index)
    side_bytes = sum(side.bytes for side in side_to_send)
    result.bytes_reused = plan.bytes_copied + plan.bytes_resumed
    result.bytes_resumed = plan.bytes_resumed
    # A direct push writes the bundle once (a resumed prefix is already on the disk); a rebuild writes
    # the assembled file beside its pieces until it is verified.
    needed = plan.bytes_to_send + side_bytes + (0 if plan.direct else build.bytes)
    if dry_run:  # what would be sent is reported even when it would not fit
        result.status = "planned"
        result.bytes_sent = plan.bytes_to_send + side_bytes
        result.remote_path = final_path
    if survey.index.free_bytes is not None and needed > survey.index.free_bytes:
        raise store.space_error(needed, survey.index.free_bytes, "bundle")
    if dry_run:
        return
    reporter.note(
        f"{device.serial}: sending {format_bytes(plan.bytes_to_send + side_bytes)}, "
        f"reusing {format_bytes(result.bytes_reused)} of {format_bytes(build.bytes)}"
    )
    try:
        result.bytes_sent = attempt.send_and_assemble(plan, survey)
    except _StartAfresh:
        if not (plan.copies or plan.bytes_resumed):
            raise
        # Something reused was not what its index said, or another push took the partial first: start
        # clean and send every byte. Nothing shared is removed: the failed attempt dropped its own
        # prefix, and another push's pieces and prefix may be live beside ours.
        reporter.note(f"{device.serial}: reused data did not verify or was taken; sending the whole bundle")
        clean = DeviceIndex(free_bytes=survey.index.free_bytes)
        plan = plan_transfer(build, clean, reuse=False)
        result.bytes_reused = result.bytes_resumed = 0
        result.bytes_sent += attempt.send_and_assemble(plan, Survey(clean))
    result.status = "pushed"
    result.remote_path = final_path


class _ReporterProgress(TransferProgress):
    def __init__(self, reporter: Reporter, serial: str) -> None:
        self.reporter = reporter
        self.serial = serial

    def phase(self, text: str) -> None:
        self.reporter.note(f"{self.serial}: {text}")


# -- many devices --------------------------------------------------------------------------------------------


def push_many(
    devices: Sequence[Device],
    build: Build | Path | str,
    *,
    verify: bool = True,
    dry_run: bool = False,
    reporter: Reporter | None = None,
    root: str = DEFAULT_DEVICE_ROOT,
    verify_present: bool = False,
) -> list[PushResult]:
    """Push to every device in parallel; one failing device does not stop the others."""
    if not isinstance(build, Build):
        build = read_build(build, verify=verify)
    reporter = reporter or Reporter()
    if not devices:
        return []

    def run(device: Device, progress: TransferProgress | None) -> PushResult:
        return push_bundle(
            device,
            build,
            verify=verify,
            dry_run=dry_run,
            reporter=reporter,
            root=root,
            progress=progress,
            verify_present=verify_present,
        )

    if dry_run:  # nothing travels: no bars
        return _in_threads(devices, lambda device: run(device, TransferProgress()))
    with reporter.transfers([device.serial for device in devices]) as trackers:
        results = _in_threads(devices, lambda device: run(device, trackers[device.serial]))
        for result in results:
            trackers[result.serial].phase("ok" if result.ok else "failed")
    return results


def _in_threads(devices: Sequence[Device], work: Callable[[Device], PushResult]) -> list[PushResult]:
    with ThreadPoolExecutor(max_workers=max(1, len(devices)), thread_name_prefix="push") as pool:
        return list(pool.map(work, devices))
