"""The device side of a push: the survey script and its parser, the assembly script, where each piece lands.

Everything here is text for the device's `sh` (mksh on Android, toybox applets): no bashisms, no GNU-only
flags; the same script also runs under the host's `sh` in unit tests.

Layout under the store root, for a bundle with sha256 <sha>:

    staging/<sha>/pieces/<offset>-<length>   grid pieces of a rebuild (resume by name and size)
    staging/<sha>/pieces/partial.<attempt>   hard link to what direct push <attempt> received so far: only
                                             that push writes it; a later push may take it (one `mv`) once
                                             <attempt> is dead, and it is unlinked before any rename
    staging/<sha>/attempt-<id>/              one push attempt: side files, assemble.sh, model.litertlm,
                                             `tail` (a resumed direct push), `sent` (the host's end marker),
                                             `alive` (the script's heartbeat, touched by the device)
    bundles/<sha>/                           the verified bundle, renamed from its attempt folder

Whether a push is alive is read on the device's own clock: its script touches `alive` every
``HEARTBEAT_S``; an attempt whose stamp is older than ``ATTEMPT_LIVE_S`` (or, before its script started,
whose folder is older than ``ATTEMPT_STALE_S``) is dead. Files that came over sync carry the host's clock
(DONE's mtime), so they never decide it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from edgeship.android_harness.adb import END, df_section, parse_df_available, split_sections, tag
from edgeship.android_harness.adb.quoting import Line, script, sh
from edgeship.android_harness.store import (
    BLOCK,
    INDEX_NAME,
    PARTIAL_PREFIX,
    STAGING_IDLE_LIMIT_S,
    STORE_MARKER,
    DeviceIndex,
    DeviceStore,
    TransferPlan,
    check_name,
    check_sha,
    parse_index_line,
    partial_name,
)
from edgeship.exporter.manifest import BUNDLE_FILE, Build, is_sha256
from edgeship.files import is_safe_name

PIECE_WAIT_S = STAGING_IDLE_LIMIT_S  # the device script gives up on data that does not arrive
POLL_S = 0.02
EXIT_STALLED = 7
EXIT_SIZE_MISMATCH = 8
EXIT_SHA_MISMATCH = 9
EXIT_PARTIAL_GONE = 10  # another push took the partial prefix first: start again from scratch
ATTEMPT_STALE_S = int(STAGING_IDLE_LIMIT_S)  # a folder whose script never started, this old: a dead push
HEARTBEAT_S = 2  # a push's script touches its `alive` stamp this often
ATTEMPT_LIVE_S = 30  # ... and is dead once the stamp is this old (device clock)
PARTIAL_SETTLE_S = 2  # a taken partial not written for this long: whatever wrote it has stopped
SENT_MARKER = "sent"  # pushed last in the data session: every SEND before it has completed
ALIVE_STAMP = "alive"
UNVERIFIED_MARK = "unverified"  # bundles/<sha>/unverified: renamed into place by a --no-verify push
ATTEMPT_PREFIX = "attempt-"


# -- survey ----------------------------------------------------------------------------------------------


# Names a device listing prints go through the host's parser one per line: a name with a newline or a
# space (made by something else on the device) is skipped on the device, never misread.
_STAT_SIZE = sh("""stat -c '%s %n' "$f" """)
_GRID_PIECE = re.compile(r"[0-9]+-[0-9]+")  # pieces/<offset>-<length>
_SAFE_PATHS = sh("safe() { case $1 in *[!A-Za-z0-9._/+-]*) return 1;; esac; }")


def _each(section: str, paths: Line, command: Line) -> Line:
    """Section ``section``: ``command`` on each existing "$f" of the glob ``paths`` whose name is safe."""
    return sh(
        '{tag}; for f in {paths}; do safe "$f" && [ -e "$f" ] && {command}; done',
        tag=tag(section),
        paths=paths,
        command=command,
    )


def survey_script(root: str, bundle_sha: str) -> Line:
    staging = f"staging/{check_sha(bundle_sha)}"
    return script(
        df_section(root),
        sh("cd {root} 2>/dev/null || exit 0", root=root),
        sh("{tag}; [ -f {marker} ] && echo marked", tag=tag("store"), marker=STORE_MARKER),
        _SAFE_PATHS,
        _each("bundles", sh("bundles/*/{name}", name=BUNDLE_FILE), _STAT_SIZE),
        _each("unverified", sh("bundles/*/{name}", name=UNVERIFIED_MARK), sh('echo "$f"')),
        _each("index", sh("bundles/*/{name}", name=INDEX_NAME), sh('sed "s|^|$f |" "$f"')),
        _each("pieces", sh("{staging}/pieces/*", staging=staging), _STAT_SIZE),
        # Device clock, then per attempt folder: its heartbeat's mtime (- before its script started), the
        # folder's own mtime (adbd made it: device clock too), its path.
        sh(
            '{tag}; date +%s; for a in {staging}/{attempts}*; do safe "$a" && [ -d "$a" ] || continue; '
            'echo "$(stat -c %Y "$a"/{alive} 2>/dev/null || echo -) $(stat -c %Y "$a") $a"; done',
            tag=tag("attempts"),
            staging=staging,
            attempts=ATTEMPT_PREFIX,
            alive=ALIVE_STAMP,
        ),
        tag(END),
    )


@dataclass
class Survey:
    index: DeviceIndex
    stale_attempts: list[str] = field(default_factory=list)  # attempt folder names of dead pushes
    marked: bool = False  # the root holds the store marker (gc works only where it does)


def parse_survey(text: str) -> Survey:
    _, sections = split_sections(text)
    index = DeviceIndex(free_bytes=parse_df_available(sections.get("df", [])))
    for line in sections.get("bundles", []):
        size, _, path = line.strip().partition(" ")
        parts = path.split("/")
        if size.isdigit() and len(parts) == 3 and is_sha256(parts[1]) and parts[2] == BUNDLE_FILE:
            index.bundles[parts[1]] = int(size)
    for line in sections.get("unverified", []):
        parts = line.strip().split("/")
        if len(parts) == 3 and parts[1] in index.bundles:
            index.unverified.add(parts[1])
    for line in sections.get("index", []):
        path, _, rest = line.strip().partition(" ")
        parts = path.split("/")
        # An unverified bundle's bytes may not be what its index says: never a source of reuse.
        if len(parts) == 3 and parts[1] in index.bundles and parts[1] not in index.unverified:
            parse_index_line(parts[1], rest, index)
    live, stale = _attempt_liveness(sections.get("attempts", []))
    for line in sections.get("pieces", []):
        size, _, path = line.strip().partition(" ")
        name = path.rsplit("/", 1)[-1]
        if not size.isdigit() or not is_safe_name(name):
            continue
        if name.startswith(PARTIAL_PREFIX):
            # Only a dead push's prefix may be taken; a bare `partial` (an older edgeship's, possibly a
            # link into a verified bundle) never is.
            owner = name[len(PARTIAL_PREFIX) :]
            if owner.startswith(ATTEMPT_PREFIX) and owner not in live:
                index.partials[name] = int(size)
        elif _GRID_PIECE.fullmatch(name):
            index.pieces[name] = int(size)
    return Survey(index=index, stale_attempts=stale, marked=sections.get("store") == ["marked"])


def _attempt_liveness(lines: list[str]) -> tuple[list[str], list[str]]:
    """Attempt folders of live pushes and of dead ones, judged on the device's clock alone."""
    rows = [line.split() for line in lines if line.strip()]
    if not rows or len(rows[0]) != 1 or not rows[0][0].isdigit():
        return [], []
    now = int(rows[0][0])
    live: list[str] = []
    stale: list[str] = []
    for row in rows[1:]:
        if len(row) != 3 or not row[1].isdigit():
            continue
        name = row[2].rsplit("/", 1)[-1]
        if not (is_safe_name(name) and name.startswith(ATTEMPT_PREFIX)):
            continue
        if row[0].isdigit():
            alive = now - int(row[0]) < ATTEMPT_LIVE_S
        else:  # no heartbeat yet: the host is still sending its side files, or died doing so
            alive = now - int(row[1]) < ATTEMPT_STALE_S
        (live if alive else stale).append(name)
    return live, stale


def new_attempt_name() -> str:
    return f"{ATTEMPT_PREFIX}{uuid.uuid4().hex[:12]}"


def _set_aside(final: Line | str, aside: Line | str) -> Line:
    """Shell: take a bundle folder off its final path; true when nothing is left there.

    A rename, never `rm -rf` in place: a runner that has it mapped keeps its pages, and a push that
    renames a fresh folder into place meanwhile is not the one removed.
    """
    return sh("{ mv {final} {aside} 2>/dev/null || [ ! -e {final} ]; }", final=final, aside=aside)


def set_aside_script(store: DeviceStore, bundle_sha: str) -> Line:
    """Take a bundle folder that no longer verifies off its final path, then remove it."""
    staging = store.staging_for(bundle_sha)
    aside = f"{staging}/replaced-{uuid.uuid4().hex[:12]}"
    return sh(
        "mkdir -p {staging} && {set_aside} && rm -rf {aside}",
        staging=staging,
        set_aside=_set_aside(store.bundle_dir(bundle_sha), aside),
        aside=aside,
    )


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
    sh(
        'w() { n=0; while [ "$(stat -c %s "$1" 2>/dev/null)" != "$2" ]; do sleep {poll}; n=$((n+1)); '
        '[ $n -lt {polls} ] || { echo "$1 never arrived" >&2; exit {stalled}; }; done; }',
        poll=POLL_S,
        polls=_POLLS,
        stalled=EXIT_STALLED,
    ),
    # arriving: the host has not finished sending (its end marker comes after every SEND completed);
    # writing: the background writer has not finished: it leaves its exit status in $A/wrote, and is
    # still a live process — one killed, or whose status cannot be written on a full disk, is not:
    # kill -0 (gone once the shell reaped it) and its /proc state (Z while it waits to be reaped).
    sh('arriving() { [ ! -e "$A"/{sent} ]; }', sent=SENT_MARKER),
    sh(
        'writing() { [ ! -e "$A/wrote" ] && kill -0 "$writer" 2>/dev/null || return 1; '
        'w_s=; read -r w_s 2>/dev/null < "/proc/$writer/stat" || return 0; w_s=${w_s##*) }; '
        '[ "${w_s%% *}" != Z ]; }'
    ),
    # follow FILE TOTAL LIVE: print FILE front to back while it grows to TOTAL bytes: whole 64 KiB units
    # below its size (writers append only, so those are final) once at least FOLLOW_MIN_BYTES are there —
    # one dd per few MiB, not per poll — the rest when TOTAL is reached. LIVE says whether more may come;
    # once it says no, whatever is there is read, one more look is taken (the writer may have finished
    # right after the size was read), then it stops: the size check reports a short file.
    sh(
        """follow() {
  f_o=0; f_idle=0; f_last=
  while [ $f_o -lt "$2" ]; do
    f_s=$(stat -c %s "$1" 2>/dev/null || echo 0)
    if [ "$f_s" -ge "$2" ]; then f_n=$(( ($2 - f_o + {unit_round}) / {unit} )); f_min=1
    else f_n=$(( (f_s - f_o) / {unit} )); f_min={min_units}; fi
    f_go=
    if [ $f_n -ge $f_min ]; then f_go=1
    elif ! $3; then
      if [ $f_n -gt 0 ]; then f_go=1
      elif [ -z "$f_last" ]; then f_last=1; continue
      else return 0; fi
    fi
    if [ -n "$f_go" ]; then
      dd if="$1" bs={unit} skip=$((f_o / {unit})) count=$f_n 2>/dev/null
      f_o=$((f_o + f_n * {unit})); f_idle=0
    else
      sleep {poll}; f_idle=$((f_idle + 1))
      [ $f_idle -lt {idle_polls} ] || { echo "no data for {wait_s} s" >&2; exit {stalled}; }
    fi
  done
}""",
        unit=FOLLOW_UNIT,
        unit_round=FOLLOW_UNIT - 1,
        min_units=FOLLOW_MIN_BYTES // FOLLOW_UNIT,
        poll=FOLLOW_POLL_S,
        idle_polls=int(PIECE_WAIT_S / FOLLOW_POLL_S),
        wait_s=int(PIECE_WAIT_S),
        stalled=EXIT_STALLED,
    ),
]


def _size_check(build: Build) -> list[Line]:
    return [
        sh('size=$(stat -c %s "$out")'),
        sh(
            '[ "$size" = {bytes} ] || '
            '{ rm -f "$mine"; echo "assembled $size bytes, expected {bytes}" >&2; exit {code}; }',
            bytes=build.bytes,
            code=EXIT_SIZE_MISMATCH,
        ),
    ]


def _sha_check(build: Build) -> list[Line]:
    return [
        sh('sum="${sum%% *}"'),
        sh(
            '[ "$sum" = {sha} ] || { rm -f "$mine"; echo "sha256 $sum, expected "{sha} >&2; exit {code}; }',
            sha=check_sha(build.sha256),
            code=EXIT_SHA_MISMATCH,
        ),
    ]


def _reuse_lines(store: DeviceStore, plan: TransferPlan) -> list[Line]:
    """A rebuild: a background writer assembles the file from older bundles (dd) and grid pieces."""
    regions: list[tuple[int, Line]] = []
    for copy in plan.copies:
        regions.append(
            (
                copy.offset,
                sh(
                    "dd if={source} bs={block} skip={skip} count={count} 2>/dev/null",
                    source=store.bundle_path(copy.source_bundle),
                    block=BLOCK,
                    skip=copy.source_offset // BLOCK,
                    count=copy.length // BLOCK,
                ),
            )
        )
    for piece in plan.pieces:
        regions.append(
            (
                piece.offset,
                sh(
                    'w "$P"/{name} {length}; dd if="$P"/{name} bs=1048576 2>/dev/null',
                    name=piece.name,
                    length=piece.length,
                ),
            )
        )
    regions.sort(key=lambda region: region[0])
    return [
        sh("stream() {"),
        *[sh("  {command} || exit 5", command=command) for _, command in regions],
        sh("}"),
        *_background_writer(sh("stream"), sh('> "$out"')),
    ]


def _background_writer(command: Line, redirect: Line) -> list[Line]:
    # `exit` inside the command ends only its ( ) subshell; the status is left in $A/wrote for `writing`
    # and returned to `wait`.
    return [
        sh(
            '{ rc=0; ( {command} ) {redirect} || rc=$?; echo $rc > "$A/wrote"; exit $rc; } &',
            command=command,
            redirect=redirect,
        ),
        sh("writer=$!"),
    ]


def _direct_lines(build: Build, plan: TransferPlan) -> list[Line]:
    """A first push: the file arrives whole from the host; keep a hard link to it for resuming."""
    start = plan.direct_from or 0
    if start == 0:
        # adbd deletes a half-received file; the link keeps what arrived. Linked as soon as it appears.
        return [
            sh('mkdir -p "$P"'),
            sh(
                '( n=0; while [ ! -e "$out" ]; do arriving || exit 0; sleep {poll}; n=$((n+1)); '
                '[ $n -lt {polls} ] || exit 0; done; ln -f "$out" "$mine" ) &',
                poll=POLL_S,
                polls=_POLLS,
            ),
            sh("linker=$!"),
        ]
    if plan.partial is None:
        raise ValueError("a resumed direct push needs the partial prefix it takes")
    # Resume: take the dead push's prefix (mv: atomic, one taker), link it as ours at once, let whatever
    # still wrote it settle (adbd may drain a last buffer after its push died), cut it to the last whole
    # block and append the tail while it arrives.
    return [
        sh(
            'mv "$P"/{partial} "$out" 2>/dev/null || '
            '{ echo "the partial bundle was taken by another push" >&2; exit {gone}; }',
            partial=check_name(plan.partial),
            gone=EXIT_PARTIAL_GONE,
        ),
        sh('ln -f "$out" "$mine"'),
        sh(
            'n=0; while [ $(( $(date +%s) - $(stat -c %Y "$out") )) -lt {settle} ] && [ $n -lt {polls} ]; '
            "do sleep {poll}; n=$((n+1)); done",
            settle=PARTIAL_SETTLE_S,
            polls=int(PARTIAL_SETTLE_S / FOLLOW_POLL_S),
            poll=FOLLOW_POLL_S,
        ),
        sh('truncate -s {start} "$out"', start=start),
        *_background_writer(
            sh('follow "$A/tail" {rest} arriving', rest=build.bytes - start), sh('>> "$out"')
        ),
    ]


def assemble_script(
    store: DeviceStore,
    build: Build,
    plan: TransferPlan,
    side_copies: dict[str, str],
    verify: bool,
    attempt: str,
    stale_attempts: Sequence[str] = (),
) -> Line:
    """The device side of a push, started BEFORE the data is sent.

    The bundle's file is written once, front to back: by adbd itself (a first push), by a background
    writer appending a resumed tail, or by one assembling a rebuild from older bundles and pieces. While it
    grows, `follow` feeds it to `sha256sum`, so hashing overlaps the transfer instead of a second pass at
    the end. The host's end marker says every SEND has completed; then size and digest are checked, and
    only then is the attempt folder (staging/<sha>/<attempt>/, one per push, so two pushes of one bundle
    never write one file) renamed to bundles/<sha>/ — atomic, so a final path holds nothing unverified.
    """
    final = store.bundle_dir(build.sha256)
    # What says more data may come: the background writer (rebuild, resumed tail) or else adbd itself.
    live = "writing" if not plan.direct or plan.direct_from else "arriving"
    lines = [
        sh("set -e"),
        sh("S={staging}", staging=store.staging_for(build.sha256)),
        sh('A="$S"/{attempt}', attempt=check_name(attempt)),
        sh('out="$A"/{bundle}', bundle=BUNDLE_FILE),
        sh('P="$S/pieces"'),
        sh('mine="$P"/{partial}', partial=partial_name(attempt)),  # this push's partial prefix, if direct
        *[sh('rm -rf "$S"/{name}', name=check_name(name)) for name in stale_attempts],
        *_FUNCTIONS,
        sh("writer=; linker=; beat="),
        # A failed attempt's own file is of no use (pieces and the partial link are what resume): drop it.
        sh("""give_up() { kill $writer $linker $beat 2>/dev/null || true; rm -rf "$A"; }"""),
        sh("trap give_up EXIT"),
        # adbd HUPs the script when the host goes. The HUP trap tidies up itself: under `set -e`, mksh
        # leaves a command the signal failed (the hashing pipeline) through errexit, and then an `exit` in
        # a trap skips the EXIT trap, which left the attempt looking alive for ATTEMPT_LIVE_S.
        sh("trap 'give_up; trap - EXIT; exit 129' HUP INT TERM"),
        # The heartbeat says this push lives (on the device's clock): `touch -c` never recreates the
        # stamp once it is removed, and the loop ends with the script.
        sh(': > "$A"/{alive}', alive=ALIVE_STAMP),
        sh(
            '( while kill -0 $$ 2>/dev/null; do sleep {beat}; touch -c "$A"/{alive} 2>/dev/null; done ) &',
            beat=HEARTBEAT_S,
            alive=ALIVE_STAMP,
        ),
        sh("beat=$!"),
        *(_direct_lines(build, plan) if plan.direct else _reuse_lines(store, plan)),
    ]
    if verify:
        lines.append(sh('sum=$(follow "$out" {bytes} {live} | sha256sum)', bytes=build.bytes, live=live))
    if live == "writing":
        lines.append(
            sh(
                'wait $writer || { rc=$?; echo "writing the bundle on the device failed (the writer '
                'ended with $rc): is its disk full? $(df -k "$A" 2>/dev/null | tail -n 1)" >&2; exit $rc; }'
            )
        )
    lines += [
        sh('w "$A"/{sent} 0', sent=SENT_MARKER),
        sh('rm -f "$A"/{sent} "$A/tail" "$A/wrote"', sent=SENT_MARKER),
        # Every SEND is done, so adbd has set the file's mtime from DONE: whole seconds. LiteRT-LM names
        # and checks its XNNPACK weight cache by the bundle's mtime, and reads a whole-second mtime as s
        # or s-1 from one launch to the next (the engine of litert-lm-api 0.18.1): the cache is written
        # again at every other launch (Gemma 3 270M: 1004 MB peak RSS instead of 830 MB, about twice the
        # init). Stamped now instead, to the nanosecond, as a file an app downloaded has it.
        sh('touch -c "$out" 2>/dev/null || true'),
        *_size_check(build),
    ]
    if verify:
        lines += _sha_check(build)
    for name, source_bundle in side_copies.items():
        lines.append(
            sh(
                'cp {source} "$A"/{name}',
                source=f"{store.bundle_dir(source_bundle)}/{check_name(name)}",
                name=name,
            )
        )
    lines += [
        sh("trap - EXIT HUP INT TERM"),
        # Nothing of this push may stay linked to the file about to become a verified bundle: a later
        # resume would rewrite it in place. The linker is done (the file appeared); our prefix goes.
        sh('[ -z "$linker" ] || wait $linker || true'),
        sh('kill $beat 2>/dev/null || true; rm -f "$mine" "$A"/{alive}', alive=ALIVE_STAMP),
        sh('rm -f "$A/assemble.sh"'),
        # A bundle whose sha256 nobody checked says so: a later verified push or profile checks it.
        *([] if verify else [sh(': > "$A"/{mark}', mark=UNVERIFIED_MARK)]),
        sh("mkdir -p {bundles}", bundles=store.bundles_dir),
        sh("final={final}", final=final),
        sh("name={attempt}", attempt=attempt),
        # complete DIR: DIR holds this bundle's file at its size (a push renamed it into place) and, for a
        # verified push, no unverified mark: a --no-verify push's folder is replaced by a verified one.
        sh(
            'complete() { [ "$(stat -c %s "$1"/{bundle} 2>/dev/null)" = {bytes} ]{verified}; }',
            bundle=BUNDLE_FILE,
            bytes=build.bytes,
            verified=sh(' && [ ! -e "$1"/{mark} ]', mark=UNVERIFIED_MARK) if verify else sh(""),
        ),
        # Another push of the same bundle may have finished first: its folder is as good as ours.
        sh('if complete "$final"; then rm -rf "$A"; else'),
        # A folder there without the verified file (tampered with) goes aside; a concurrent push may
        # rename its verified folder there at any moment, before or after our `mv` (then it stays).
        sh(
            '  {set_aside} || complete "$final"',
            set_aside=_set_aside(sh('"$final"'), sh('"$S/replaced-$name"')),
        ),
        sh('  mv "$A" "$final"'),
        # Such a push renamed its folder into place between our check and our rename: `mv` then put
        # ours inside it. Theirs is verified and identical; ours goes.
        sh('  rm -rf "$final/$name"'),
        sh("fi"),
        # The bundle is in place: tidying up must never fail the push. The pieces and the partial link
        # stay while another push of this bundle still has an attempt folder here (it may be sending or
        # reading them); the last attempt to finish removes them, `edgeship gc` any a dead push left.
        sh("set +e"),
        sh('rm -rf "$S/replaced-$name"'),
        sh('for a in "$S"/attempt-*; do [ -e "$a" ] && exit 0; done'),
        sh('rm -rf "$P" 2>/dev/null; rmdir "$S" 2>/dev/null'),
        sh("exit 0"),
    ]
    return script(lines)
