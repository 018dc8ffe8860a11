"""Push a bundle to devices: reuse what the device holds, send the rest, verify on the device, rename.

One device costs, when the bundle is already there, one shell round trip (the survey). Otherwise:

1. survey (1 shell): bundles present, their section index, pieces left by an interrupted push, free space;
2. plan (bundle_plan): which 16 KiB blocks to copy from older bundles, which pieces to send;
3. refuse with "needs X, has Y" when the pieces plus the assembled file would not fit;
4. send the side files (manifest, tokenizer, section index) and the device script in one sync session;
5. start the script, then send the missing pieces in one pipelined sync session. The script writes
   staging/<sha>/<attempt>/model.litertlm front to back (dd from older bundles, pieces as they arrive)
   through sha256sum, checks size and digest against the manifest, and only then renames the attempt
   folder to bundles/<sha>/ — a directory rename, atomic, so a final path never holds anything but the
   verified bundle, whatever gets killed when.

The device's `sha256sum` does the check (Android's toybox links BoringSSL: GB/s with the ARMv8 SHA
instructions, so hashing overlaps the transfer instead of dominating it).

If assembling from reused sections gives the wrong sha256 (a tampered older bundle), the push is retried
once sending everything.
"""

from __future__ import annotations

import shlex
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeship.android_harness.bundle_plan import (
    BLOCK,
    INDEX_NAME,
    BundlePlan,
    DeviceIndex,
    LocalBundle,
    load_build,
    parse_index_line,
    plan_bundle,
)
from edgeship.android_harness.device import Device
from edgeship.android_harness.facts import parse_df_available, split_sections
from edgeship.android_harness.store import DeviceStore, check_name, human_bytes
from edgeship.config import DEFAULT_DEVICE_ROOT
from edgeship.console import Reporter, stderr_console
from edgeship.errors import DeviceError, EdgeshipError

ASSEMBLE_TIMEOUT_S = 1800.0
PIECE_WAIT_S = 600.0  # the device script gives up on a piece that does not arrive (host died silently)
EXIT_SIZE_MISMATCH = 8
EXIT_SHA_MISMATCH = 9


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


class PushProgress:
    """What push_bundle tells about bytes in flight; the CLI maps it onto a rich progress bar."""

    def start(self, total: int) -> None:  # bytes that will be sent
        pass

    def advance(self, sent: int) -> None:
        pass

    def phase(self, text: str) -> None:  # "survey", "verify on device"...
        pass


# -- device-side scripts -----------------------------------------------------------------------------------


def _nearest_dir_df(root: str) -> str:
    return (
        f'd={shlex.quote(root)}; while [ -n "$d" ] && [ ! -d "$d" ]; do d="${{d%/*}}"; done; '
        '[ -n "$d" ] || d=/; echo \'@df\'; df -k -P "$d" 2>/dev/null || df -k "$d"\n'
    )


ATTEMPT_STALE_S = 600  # an attempt folder whose file has not grown for this long belongs to a dead push


def survey_script(root: str, bundle_sha: str) -> str:
    staging = f"staging/{bundle_sha}"
    return (
        _nearest_dir_df(root) + f"cd {shlex.quote(root)} 2>/dev/null || exit 0\n"
        "echo '@bundles'; stat -c '%s %n' bundles/*/model.litertlm 2>/dev/null\n"
        f'echo \'@index\'; for f in bundles/*/{INDEX_NAME}; do [ -f "$f" ] && sed "s|^|$f |" "$f"; done\n'
        f"echo '@pieces'; stat -c '%s %n' {staging}/pieces/* 2>/dev/null\n"
        f"echo '@attempts'; date +%s; stat -c '%Y %n' {staging}/*/model.litertlm 2>/dev/null\n"
        "echo '@end'\n"
    )


@dataclass
class Survey:
    index: DeviceIndex
    stale_attempts: list[str] = field(default_factory=list)  # attempt folder names of dead pushes


def parse_survey(text: str) -> Survey:
    _, sections = split_sections(text)
    index = DeviceIndex(free_bytes=parse_df_available(sections.get("df", [])))
    for line in sections.get("bundles", []):
        size, _, path = line.strip().partition(" ")
        parts = path.split("/")
        if size.isdigit() and len(parts) == 3 and len(parts[1]) == 64:
            index.bundles[parts[1]] = int(size)
    for line in sections.get("index", []):
        path, _, rest = line.strip().partition(" ")
        parts = path.split("/")
        if len(parts) == 3 and parts[1] in index.bundles:
            parse_index_line(parts[1], rest, index)
    for line in sections.get("pieces", []):
        size, _, path = line.strip().partition(" ")
        if size.isdigit() and path:
            index.pieces[path.rsplit("/", 1)[-1]] = int(size)
    stale: list[str] = []
    attempts = [line.split() for line in sections.get("attempts", []) if line.strip()]
    if attempts and len(attempts[0]) == 1 and attempts[0][0].isdigit():
        now = int(attempts[0][0])
        for row in attempts[1:]:
            parts = row[1].split("/") if len(row) == 2 else []
            if row[0].isdigit() and len(parts) == 4 and now - int(row[0]) > ATTEMPT_STALE_S:
                stale.append(parts[2])
    return Survey(index=index, stale_attempts=stale)


def _size_check(local: LocalBundle) -> list[str]:
    return [
        'size=$(stat -c %s "$out")',
        f'[ "$size" = {local.bytes} ] || {{ echo "assembled $size bytes, expected {local.bytes}" >&2; '
        f"exit {EXIT_SIZE_MISMATCH}; }}",
    ]


def _sha_check(local: LocalBundle) -> list[str]:
    return [
        'sum="${sum%% *}"',
        f'[ "$sum" = {local.sha256} ] || {{ echo "sha256 $sum, expected {local.sha256}" >&2; '
        f"exit {EXIT_SHA_MISMATCH}; }}",
    ]


def new_attempt_name() -> str:
    return f"attempt-{uuid.uuid4().hex[:12]}"


def assemble_script(
    store: DeviceStore,
    local: LocalBundle,
    plan: BundlePlan,
    side_copies: dict[str, str],
    verify: bool,
    attempt: str,
    stale_attempts: Sequence[str] = (),
) -> str:
    """The device side of a push, started BEFORE the pieces are sent.

    It writes the bundle front to back as one stream — reused blocks read from older bundles with dd,
    pieces read as soon as each has arrived whole (its size reached) — through `tee` into this attempt's
    own file and through `sha256sum`. Hashing thus runs while the rest is still on the wire, instead of a
    second pass over the file afterwards; sha256sum sees exactly the bytes tee writes, and the size is
    checked after. Each push attempt writes its own folder (staging/<sha>/<attempt>/), so two pushes of
    the same bundle to one phone never write one file; the folder is renamed to bundles/<sha>/ only after
    both checks pass.
    """
    q = shlex.quote
    regions: list[tuple[int, str]] = []
    for copy in plan.copies:
        source = store.bundle_path(copy.source_bundle)
        regions.append(
            (
                copy.offset,
                f"dd if={q(source)} bs={BLOCK} skip={copy.source_offset // BLOCK} "
                f"count={copy.length // BLOCK} 2>/dev/null",
            )
        )
    for piece in plan.pieces:
        path = f'"$P/{piece.name}"'
        # toybox cat moves 4 KiB per syscall; dd bs=1M keeps the device's CPU for hashing.
        regions.append((piece.offset, f"w {path} {piece.length}; dd if={path} bs=1048576 2>/dev/null"))
    regions.sort()
    final = store.bundle_dir(local.sha256)
    lines = [
        "set -e",
        f"S={q(store.staging_for(local.sha256))}",
        f'A="$S/{check_name(attempt)}"',
        'out="$A/model.litertlm"',
        'P="$S/pieces"',
        *[f'rm -rf "$S/{check_name(name)}"' for name in stale_attempts],
        # A failed or interrupted attempt's partial file is of no use (pieces are what resumes): drop it.
        "trap 'rm -rf \"$A\"' EXIT HUP INT TERM",
        # A piece is whole when its size is reached: sync writes a file front to back.
        f'w() {{ n=0; while [ "$(stat -c %s "$1" 2>/dev/null)" != "$2" ]; do sleep 0.02; n=$((n+1)); '
        f'[ $n -lt {int(PIECE_WAIT_S / 0.02)} ] || {{ echo "piece $1 never arrived" >&2; exit 7; }}; '
        "done; }",
        "stream() {",
        *[f"  {command}" for _, command in regions],
        "}",
    ]
    if verify:
        hasher = "sha256sum"
        lines += [f'sum=$(stream | tee "$out" | {hasher})', *_size_check(local), *_sha_check(local)]
    else:
        lines += ['stream > "$out"', *_size_check(local)]
    for name, source_bundle in side_copies.items():
        lines.append(f'cp {q(store.bundle_dir(source_bundle) + "/" + name)} "$A/{name}"')
    lines += [
        "trap - EXIT HUP INT TERM",
        'rm -f "$A/assemble.sh"',
        f"mkdir -p {q(store.bundles_dir)}",
        f"final={q(final)}",
        # Another push of the same bundle may have finished first: its folder is as good as ours.
        f'if [ "$(stat -c %s "$final/model.litertlm" 2>/dev/null)" = {local.bytes} ]; then rm -rf "$A"; else',
        '  rm -rf "$final"; mv "$A" "$final"',
        "fi",
        'rm -rf "$P"; rmdir "$S" 2>/dev/null || true',
    ]
    return "\n".join(lines) + "\n"


# -- one device ----------------------------------------------------------------------------------------------


def _script_failure(device: Device, result: Any, what: str) -> DeviceError:
    text = (result.stderr or result.stdout).decode(errors="replace").strip().splitlines()
    reason = text[-1] if text else f"exit {result.exit_code}"
    return DeviceError(f"{device.serial}: {what}: {reason}")


class _Attempt:
    """One push of one bundle to one device (reuse may be switched off for the retry)."""

    def __init__(
        self, device: Device, local: LocalBundle, store: DeviceStore, verify: bool, progress: PushProgress
    ) -> None:
        self.device = device
        self.local = local
        self.store = store
        self.verify = verify
        self.progress = progress

    def survey(self) -> Survey:
        result = self.device.shell(survey_script(self.store.root, self.local.sha256), timeout=60)
        if result.exit_code != 0:
            raise _script_failure(self.device, result, "surveying the device store failed")
        return parse_survey(result.text)

    def side_copies(self, index: DeviceIndex) -> tuple[dict[str, str], list[Any]]:
        """Side files the device already has (same sha256 beside another bundle) and the ones to send."""
        copies: dict[str, str] = {}
        to_send = []
        for side in self.local.side_files:
            holder = index.side_files.get(side.sha256)
            if holder and index.side_names.get(side.sha256) == side.name and holder != self.local.sha256:
                copies[side.name] = holder
            else:
                to_send.append(side)
        return copies, to_send

    def send_and_assemble(self, plan: BundlePlan, survey: Survey) -> int:
        staging = self.store.staging_for(self.local.sha256)
        attempt = new_attempt_name()
        folder = f"{staging}/{attempt}"
        side_copies, side_to_send = self.side_copies(survey.index)
        self.progress.start(plan.bytes_to_send + sum(side.bytes for side in side_to_send))
        # The script travels by sync too (a 1.5 GB bundle has ~100 regions, past the 4 KiB command limit
        # of older adbd), together with the small files, in one session; SEND creates the folders.
        script = assemble_script(
            self.store, self.local, plan, side_copies, self.verify, attempt, survey.stale_attempts
        )
        blobs = [(side.path.read_bytes(), f"{folder}/{side.name}") for side in side_to_send]
        blobs += [
            (self.local.index_text(time.time()).encode(), f"{folder}/{INDEX_NAME}"),
            (script.encode(), f"{folder}/assemble.sh"),
        ]
        self.device.push_blobs(blobs)
        sent = sum(side.bytes for side in side_to_send)
        self.progress.advance(sent)
        # The assembler starts now and writes + hashes the bundle while the pieces travel.
        assembler = self.device.shell_start(["sh", f"{folder}/assemble.sh"])
        try:
            ranges = [(p.offset, p.length, f"{staging}/pieces/{p.name}") for p in plan.pieces_to_send]
            if ranges:
                sent += self.device.push_ranges(self.local.path, ranges, progress=self.progress.advance)
        except BaseException:
            assembler.close()  # the device kills the waiting script; the pieces that arrived stay
            raise
        self.progress.phase("verifying on the device")
        result = assembler.wait(timeout=ASSEMBLE_TIMEOUT_S)
        if result.exit_code == EXIT_SHA_MISMATCH:
            raise _ShaMismatch(
                _script_failure(self.device, result, "assembled bundle failed sha256sum").message
            )
        if result.exit_code != 0:
            raise _script_failure(self.device, result, "assembling the bundle failed")
        return sent


class _ShaMismatch(DeviceError):
    pass


def push_bundle(
    device: Device,
    build_dir: Path | str,
    *,
    verify: bool = True,
    dry_run: bool = False,
    reporter: Reporter | None = None,
    root: str = DEFAULT_DEVICE_ROOT,
    local: LocalBundle | None = None,
    progress: PushProgress | None = None,
) -> PushResult:
    """Make bundles/<sha>/ on the device hold the verified bundle; device failures come back in the result.

    A bad BUILD_DIR (no manifest, sha256 mismatch) raises InputError before anything is sent.
    """
    started = time.monotonic()
    if local is None:
        local = load_build(build_dir, verify=verify)
    reporter = reporter or Reporter()
    if progress is None:
        progress = _ReporterProgress(reporter, device.serial)
    store = DeviceStore(device, root=root)
    result = PushResult(
        serial=device.serial,
        bundle_sha256=local.sha256,
        remote_path=None,
        bytes_sent=0,
        bytes_reused=0,
        seconds=0.0,
        ok=False,
    )
    try:
        if device.state != "device":
            raise DeviceError(f"device {device.serial} is {device.state}")
        _push_one(device, local, store, verify, dry_run, progress, result, reporter)
        result.ok = True
    except EdgeshipError as exc:
        result.ok = False
        result.status = "failed"
        result.error = exc.message
    result.seconds = round(time.monotonic() - started, 3)
    return result


def _push_one(
    device: Device,
    local: LocalBundle,
    store: DeviceStore,
    verify: bool,
    dry_run: bool,
    progress: PushProgress,
    result: PushResult,
    reporter: Reporter,
) -> None:
    attempt = _Attempt(device, local, store, verify, progress)
    progress.phase("survey")
    survey = attempt.survey()
    final_path = store.bundle_path(local.sha256)
    if survey.index.bundles.get(local.sha256) == local.bytes:
        result.status = "present"
        result.remote_path = final_path
        result.bytes_reused = local.bytes
        return

    plan = plan_bundle(local, survey.index)
    _, side_to_send = attempt.side_copies(survey.index)
    side_bytes = sum(side.bytes for side in side_to_send)
    result.bytes_reused = plan.bytes_copied + plan.bytes_resumed
    result.bytes_resumed = plan.bytes_resumed
    # The assembled file is written in full, beside the pieces until it is verified.
    needed = plan.bytes_to_send + side_bytes + local.bytes
    if dry_run:
        result.status = "planned"
        result.bytes_sent = plan.bytes_to_send + side_bytes
        result.remote_path = final_path
        if survey.index.free_bytes is not None and needed > survey.index.free_bytes:
            raise store.space_error(needed, survey.index.free_bytes, "bundle")
        return
    if survey.index.free_bytes is not None and needed > survey.index.free_bytes:
        raise store.space_error(needed, survey.index.free_bytes, "bundle")
    reporter.note(
        f"{device.serial}: sending {human_bytes(plan.bytes_to_send + side_bytes)}, "
        f"reusing {human_bytes(result.bytes_reused)} of {human_bytes(local.bytes)}"
    )
    try:
        result.bytes_sent = attempt.send_and_assemble(plan, survey)
    except _ShaMismatch:
        if not plan.copies and not plan.present_pieces:
            raise
        # Something reused was not what its index said: start clean and send every byte.
        reporter.note(f"{device.serial}: reused data did not verify; sending the whole bundle")
        # Only the pieces: another push's attempt folder may be live beside ours.
        device.shell(["rm", "-rf", f"{store.staging_for(local.sha256)}/pieces"], timeout=120)
        clean = DeviceIndex(free_bytes=survey.index.free_bytes)
        plan = plan_bundle(local, clean, reuse=False)
        result.bytes_reused = result.bytes_resumed = 0
        result.bytes_sent += attempt.send_and_assemble(plan, Survey(clean))
    result.status = "pushed"
    result.remote_path = final_path


class _ReporterProgress(PushProgress):
    def __init__(self, reporter: Reporter, serial: str) -> None:
        self.reporter = reporter
        self.serial = serial

    def phase(self, text: str) -> None:
        self.reporter.note(f"{self.serial}: {text}")


# -- many devices --------------------------------------------------------------------------------------------


class _RichProgress(PushProgress):
    def __init__(self, progress: Any, serial: str, lock: threading.Lock) -> None:
        self.progress = progress
        self.lock = lock
        self.task = progress.add_task(serial, total=None, phase="")
        self.serial = serial

    def start(self, total: int) -> None:
        with self.lock:
            self.progress.update(self.task, total=max(total, 1), completed=0 if total else 1, phase="sending")

    def advance(self, sent: int) -> None:
        with self.lock:
            self.progress.advance(self.task, sent)

    def phase(self, text: str) -> None:
        with self.lock:
            self.progress.update(self.task, phase=text)


def push_many(
    devices: Sequence[Device],
    build_dir: Path | str,
    *,
    verify: bool = True,
    dry_run: bool = False,
    reporter: Reporter | None = None,
    root: str = DEFAULT_DEVICE_ROOT,
    local: LocalBundle | None = None,
) -> list[PushResult]:
    """Push to every device in parallel; one failing device does not stop the others."""
    if local is None:
        local = load_build(build_dir, verify=verify)
    reporter = reporter or Reporter()
    if not devices:
        return []

    def run(device: Device, progress: PushProgress | None) -> PushResult:
        return push_bundle(
            device,
            build_dir,
            verify=verify,
            dry_run=dry_run,
            reporter=reporter,
            root=root,
            local=local,
            progress=progress,
        )

    if reporter.quiet or dry_run:
        return _in_threads(devices, lambda device: run(device, PushProgress()))

    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    lock = threading.Lock()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TextColumn("{task.fields[phase]}"),
        console=stderr_console,
    ) as bars:
        trackers = {device.serial: _RichProgress(bars, device.serial, lock) for device in devices}
        results = _in_threads(devices, lambda device: run(device, trackers[device.serial]))
        for result in results:
            tracker = trackers[result.serial]
            with lock:
                bars.update(tracker.task, phase="ok" if result.ok else "failed")
    return results


def _in_threads(devices: Sequence[Device], work: Callable[[Device], PushResult]) -> list[PushResult]:
    with ThreadPoolExecutor(max_workers=max(1, len(devices)), thread_name_prefix="push") as pool:
        return list(pool.map(work, devices))
