"""The device side of a push: the survey script and its parser, the assembly script, where each piece lands.

Everything here is text for the device's `sh` (mksh on Android, toybox applets): no bashisms, no GNU-only
flags; the same script also runs under the host's `sh` in unit tests.

Layout under the store root, for a bundle with sha256 <sha>:

    staging/<sha>/pieces/<offset>-<length>   grid pieces of a rebuild (resume by name and size)
    staging/<sha>/pieces/partial             hard link to what a direct push received so far
    staging/<sha>/attempt-<id>/              one push attempt: side files, assemble.sh, model.litertlm,
                                             `tail` (a resumed direct push), `sent` (the host's end marker)
    bundles/<sha>/                           the verified bundle, renamed from its attempt folder
"""

from __future__ import annotations

import shlex
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from edgeship.android_harness.adb import END, df_section, parse_df_available, split_sections, tag
from edgeship.android_harness.store import (
    BLOCK,
    INDEX_NAME,
    PARTIAL_NAME,
    STAGING_IDLE_LIMIT_S,
    DeviceIndex,
    DeviceStore,
    TransferPlan,
    check_name,
    parse_index_line,
)
from edgeship.exporter.manifest import BUNDLE_FILE, Build

PIECE_WAIT_S = STAGING_IDLE_LIMIT_S  # the device script gives up on data that does not arrive
POLL_S = 0.02
EXIT_STALLED = 7
EXIT_SIZE_MISMATCH = 8
EXIT_SHA_MISMATCH = 9
EXIT_PARTIAL_GONE = 10  # another push took the partial prefix first: start again from scratch
ATTEMPT_STALE_S = int(STAGING_IDLE_LIMIT_S)  # an attempt folder not grown for this long: a dead push
SENT_MARKER = "sent"  # pushed last in the data session: every SEND before it has completed


# -- survey ----------------------------------------------------------------------------------------------


def survey_script(root: str, bundle_sha: str) -> str:
    staging = f"staging/{bundle_sha}"
    return (
        df_section(root) + f"cd {shlex.quote(root)} 2>/dev/null || exit 0\n"
        f"{tag('bundles')}; stat -c '%s %n' bundles/*/{BUNDLE_FILE} 2>/dev/null\n"
        f'{tag("index")}; for f in bundles/*/{INDEX_NAME}; do [ -f "$f" ] && sed "s|^|$f |" "$f"; done\n'
        f"{tag('pieces')}; stat -c '%s %n' {staging}/pieces/* 2>/dev/null\n"
        f"{tag('attempts')}; date +%s; stat -c '%Y %n' {staging}/*/{BUNDLE_FILE} 2>/dev/null\n"
        f"{tag(END)}\n"
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


def new_attempt_name() -> str:
    return f"attempt-{uuid.uuid4().hex[:12]}"


def _set_aside(final: str, aside: str) -> str:
    """Shell: take a bundle folder off its final path; true when nothing is left there.

    A rename, never `rm -rf` in place: a runner that has it mapped keeps its pages, and a push that
    renames a fresh folder into place meanwhile is not the one removed.
    """
    return f"{{ mv {final} {aside} 2>/dev/null || [ ! -e {final} ]; }}"


def set_aside_script(store: DeviceStore, bundle_sha: str) -> str:
    """Take a bundle folder that no longer verifies off its final path, then remove it."""
    q = shlex.quote
    staging = store.staging_for(bundle_sha)
    aside = q(f"{staging}/replaced-{uuid.uuid4().hex[:12]}")
    return f"mkdir -p {q(staging)} && {_set_aside(q(store.bundle_dir(bundle_sha)), aside)} && rm -rf {aside}"


# -- where the data goes -----------------------------------------------------------------------------------


def data_targets(store: DeviceStore, plan: TransferPlan, attempt: str) -> list[tuple[int, int, str]]:
    """(offset, length, remote path) of every range to send, in order, ending with the empty end marker."""
    staging = store.staging_for(plan.bundle_sha256)
    folder = f"{staging}/{attempt}"
    targets: list[tuple[int, int, str]] = []
    for piece in plan.pieces_to_send:
        if plan.direct:
            name = BUNDLE_FILE if piece.offset == 0 else "tail"
            targets.append((piece.offset, piece.length, f"{folder}/{name}"))
        else:
            targets.append((piece.offset, piece.length, f"{staging}/pieces/{piece.name}"))
    targets.append((0, 0, f"{folder}/{SENT_MARKER}"))
    return targets


# -- assembly --------------------------------------------------------------------------------------------

_POLLS = int(PIECE_WAIT_S / POLL_S)
# follow reads in 64 KiB units (a pipe's capacity: fewer, fuller writes) and only once 16 MiB have arrived
# (one dd and a few polls per chunk, not per poll): cheap enough to run beside the transfer.
FOLLOW_UNIT = 64 * 1024
FOLLOW_MIN_BYTES = 16 * 1024 * 1024
FOLLOW_POLL_S = 0.05

# Shell functions shared by every assembly script.
_FUNCTIONS = [
    # w FILE SIZE: wait until FILE has SIZE bytes (sync writes a file front to back, so it is then whole).
    f'w() {{ n=0; while [ "$(stat -c %s "$1" 2>/dev/null)" != "$2" ]; do sleep {POLL_S}; n=$((n+1)); '
    f'[ $n -lt {_POLLS} ] || {{ echo "$1 never arrived" >&2; exit {EXIT_STALLED}; }}; done; }}',
    # arriving: the host has not finished sending (its end marker comes after every SEND completed);
    # writing: the background writer has not finished (it leaves its exit status in $A/wrote).
    f'arriving() {{ [ ! -e "$A/{SENT_MARKER}" ]; }}',
    'writing() { [ ! -e "$A/wrote" ]; }',
    # follow FILE TOTAL LIVE: print FILE front to back while it grows to TOTAL bytes: whole 64 KiB units
    # below its size (writers append only, so those are final) once at least FOLLOW_MIN_BYTES are there —
    # one dd per few MiB, not per poll — the rest when TOTAL is reached. LIVE says whether more may come;
    # once it says no, whatever is there is read, one more look is taken (the writer may have finished
    # right after the size was read), then it stops: the size check reports a short file.
    "follow() {",
    "  f_o=0; f_idle=0; f_last=",
    '  while [ $f_o -lt "$2" ]; do',
    '    f_s=$(stat -c %s "$1" 2>/dev/null || echo 0)',
    f'    if [ "$f_s" -ge "$2" ]; then f_n=$(( ($2 - f_o + {FOLLOW_UNIT - 1}) / {FOLLOW_UNIT} )); f_min=1',
    f"    else f_n=$(( (f_s - f_o) / {FOLLOW_UNIT} )); f_min={FOLLOW_MIN_BYTES // FOLLOW_UNIT}; fi",
    "    f_go=",
    "    if [ $f_n -ge $f_min ]; then f_go=1",
    "    elif ! $3; then",
    "      if [ $f_n -gt 0 ]; then f_go=1",
    '      elif [ -z "$f_last" ]; then f_last=1; continue',
    "      else return 0; fi",
    "    fi",
    '    if [ -n "$f_go" ]; then',
    f'      dd if="$1" bs={FOLLOW_UNIT} skip=$((f_o / {FOLLOW_UNIT})) count=$f_n 2>/dev/null',
    f"      f_o=$((f_o + f_n * {FOLLOW_UNIT})); f_idle=0",
    "    else",
    f"      sleep {FOLLOW_POLL_S}; f_idle=$((f_idle + 1))",
    f"      [ $f_idle -lt {int(PIECE_WAIT_S / FOLLOW_POLL_S)} ] || "
    f'{{ echo "no data for {int(PIECE_WAIT_S)} s" >&2; exit {EXIT_STALLED}; }}',
    "    fi",
    "  done",
    "}",
]


def _size_check(build: Build) -> list[str]:
    return [
        'size=$(stat -c %s "$out")',
        f'[ "$size" = {build.bytes} ] || {{ echo "assembled $size bytes, expected {build.bytes}" >&2; '
        f"exit {EXIT_SIZE_MISMATCH}; }}",
    ]


def _sha_check(build: Build) -> list[str]:
    return [
        'sum="${sum%% *}"',
        f'[ "$sum" = {build.sha256} ] || {{ echo "sha256 $sum, expected {build.sha256}" >&2; '
        f"exit {EXIT_SHA_MISMATCH}; }}",
    ]


def _reuse_lines(store: DeviceStore, plan: TransferPlan) -> list[str]:
    """A rebuild: a background writer assembles the file from older bundles (dd) and grid pieces."""
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
        regions.append((piece.offset, f"w {path} {piece.length}; dd if={path} bs=1048576 2>/dev/null"))
    regions.sort()
    return [
        "stream() {",
        *[f"  {command} || exit 5" for _, command in regions],
        "}",
        *_background_writer("stream", '> "$out"'),
    ]


def _background_writer(command: str, redirect: str) -> list[str]:
    # `exit` inside the command ends only its ( ) subshell; the status is left in $A/wrote for `writing`
    # and returned to `wait`.
    return [
        f'{{ rc=0; ( {command} ) {redirect} || rc=$?; echo $rc > "$A/wrote"; exit $rc; }} &',
        "writer=$!",
    ]


def _direct_lines(build: Build, plan: TransferPlan) -> list[str]:
    """A first push: the file arrives whole from the host; keep a hard link to it for resuming."""
    start = plan.direct_from or 0
    if start == 0:
        # adbd deletes a half-received file; the link keeps what arrived. Linked as soon as it appears.
        return [
            'mkdir -p "$P"',
            f'( n=0; while [ ! -e "$out" ]; do arriving || exit 0; sleep {POLL_S}; n=$((n+1)); '
            f'[ $n -lt {_POLLS} ] || exit 0; done; ln -f "$out" "$P/{PARTIAL_NAME}" ) &',
            "linker=$!",
        ]
    # Resume: take the prefix (mv: one push only), link it back at once, cut it to the last whole block
    # and append the tail while it arrives.
    return [
        f'mv "$P/{PARTIAL_NAME}" "$out" 2>/dev/null || '
        f'{{ echo "the partial bundle was taken by another push" >&2; exit {EXIT_PARTIAL_GONE}; }}',
        f'ln -f "$out" "$P/{PARTIAL_NAME}"',
        f'truncate -s {start} "$out"',
        *_background_writer(f'follow "$A/tail" {build.bytes - start} arriving', '>> "$out"'),
    ]


def assemble_script(
    store: DeviceStore,
    build: Build,
    plan: TransferPlan,
    side_copies: dict[str, str],
    verify: bool,
    attempt: str,
    stale_attempts: Sequence[str] = (),
) -> str:
    """The device side of a push, started BEFORE the data is sent.

    The bundle's file is written once, front to back: by adbd itself (a first push), by a background
    writer appending a resumed tail, or by one assembling a rebuild from older bundles and pieces. While it
    grows, `follow` feeds it to `sha256sum`, so hashing overlaps the transfer instead of a second pass at
    the end. The host's end marker says every SEND has completed; then size and digest are checked, and
    only then is the attempt folder (staging/<sha>/<attempt>/, one per push, so two pushes of one bundle
    never write one file) renamed to bundles/<sha>/ — atomic, so a final path holds nothing unverified.
    """
    q = shlex.quote
    final = store.bundle_dir(build.sha256)
    # What says more data may come: the background writer (rebuild, resumed tail) or else adbd itself.
    live = "writing" if not plan.direct or plan.direct_from else "arriving"
    lines = [
        "set -e",
        f"S={q(store.staging_for(build.sha256))}",
        f'A="$S/{check_name(attempt)}"',
        f'out="$A/{BUNDLE_FILE}"',
        'P="$S/pieces"',
        *[f'rm -rf "$S/{check_name(name)}"' for name in stale_attempts],
        *_FUNCTIONS,
        "writer=; linker=",
        # A failed attempt's own file is of no use (pieces and the partial link are what resume): drop it.
        "trap 'kill $writer $linker 2>/dev/null || true; rm -rf \"$A\"' EXIT HUP INT TERM",
        *(_direct_lines(build, plan) if plan.direct else _reuse_lines(store, plan)),
    ]
    if verify:
        lines.append(f'sum=$(follow "$out" {build.bytes} {live} | sha256sum)')
    if live == "writing":
        lines.append("wait $writer")
    lines += [
        f'w "$A/{SENT_MARKER}" 0',
        f'rm -f "$A/{SENT_MARKER}" "$A/tail" "$A/wrote"',
        *_size_check(build),
    ]
    if verify:
        lines += _sha_check(build)
    for name, source_bundle in side_copies.items():
        lines.append(f'cp {q(store.bundle_dir(source_bundle) + "/" + name)} "$A/{name}"')
    lines += [
        "trap - EXIT HUP INT TERM",
        'rm -f "$A/assemble.sh"',
        f"mkdir -p {q(store.bundles_dir)}",
        f"final={q(final)}",
        f"name={check_name(attempt)}",
        # Another push of the same bundle may have finished first: its folder is as good as ours.
        f'if [ "$(stat -c %s "$final/{BUNDLE_FILE}" 2>/dev/null)" = {build.bytes} ]; then rm -rf "$A"; else',
        # A folder there without the verified file (tampered with) goes aside; a concurrent push may
        # have just renamed its verified folder there.
        "  " + _set_aside('"$final"', '"$S/replaced-$name"'),
        '  mv "$A" "$final"',
        # Such a push renamed its folder into place between our check and our rename: `mv` then put
        # ours inside it. Theirs is verified and identical; ours goes.
        '  rm -rf "$final/$name"',
        "fi",
        # The bundle is in place: tidying up must never fail the push. The pieces and the partial link
        # stay while another push of this bundle still has an attempt folder here (it may be sending or
        # reading them); the last attempt to finish removes them, `edgeship gc` any a dead push left.
        "set +e",
        'rm -rf "$S/replaced-$name"',
        'for a in "$S"/attempt-*; do [ -e "$a" ] && exit 0; done',
        'rm -rf "$P" 2>/dev/null; rmdir "$S" 2>/dev/null',
        "exit 0",
    ]
    return "\n".join(lines) + "\n"
