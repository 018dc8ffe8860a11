"""`edgeship gc`: remove all but the newest bundles, and leftovers no running push or profile still uses.

One survey script lists the bundles (with the push time their index records) and the leftovers (staging,
runs, half-installed bin/ files); a leftover written to within ``IN_USE_MINUTES`` belongs to a push or
profile still running, possibly from another host, and is kept.

gc deletes only its own. The device prints NUL-terminated records (a file name may hold a newline or a
tab; it cannot hold a NUL), and every path is checked on the host against the names edgeship gives:
``bundles/<sha256>``, ``staging/<sha256>``, ``runs/<run id>`` (``layout.is_run_id``) and
``bin/<sha256>/<name>.part``; anything else is reported as foreign and left alone. A root without the
store marker that push writes (``layout.STORE_MARKER``) is refused: with ``device_root: /data/local/tmp``
another tool's ``runs/`` must survive.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from edgeship.android_harness.adb import Device
from edgeship.android_harness.adb.quoting import Line, script, sh
from edgeship.android_harness.store.layout import (
    STAGING_IDLE_LIMIT_S,
    STORE_MARKER,
    DeviceStore,
    is_run_id,
)
from edgeship.config import DEFAULT_DEVICE_ROOT
from edgeship.errors import DeviceError, EdgeshipError, UsageError
from edgeship.exporter.manifest import is_sha256
from edgeship.files import is_safe_name


@dataclass
class GcResult:
    serial: str
    kept: list[str] = field(default_factory=list)
    removed_bundles: list[str] = field(default_factory=list)
    removed_leftovers: list[str] = field(default_factory=list)
    in_use: list[str] = field(default_factory=list)  # leftovers written to recently: a live push or profile
    foreign: list[str] = field(default_factory=list)  # entries edgeship did not name: left alone
    freed_bytes: int = 0
    ok: bool = True
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


IN_USE_MINUTES = math.ceil(STAGING_IDLE_LIMIT_S / 60)  # older than a push waits for data: abandoned


def gc_survey_script(root: str) -> Line:
    """NUL-terminated records: ``root``, ``store`` (the marker is there), ``bundle <mtime> <KiB> <pushed
    at or -> <path>``, ``leftover <KiB> <path>``, ``in-use 0 <path>``; the path is always last."""
    return script(
        sh("cd {root} 2>/dev/null || exit 0", root=root),
        sh("printf 'root\\0'; [ -f {marker} ] && printf 'store\\0'", marker=STORE_MARKER),
        # Only the first line of du's output holds the figure (a name with a newline continues it).
        sh("""kb() { du -sk "$1" 2>/dev/null | sed -n '1s/[^0-9].*//p'; }"""),
        sh("for d in bundles/*; do"),
        sh('  [ -d "$d" ] || continue'),
        sh("""  p=$(sed -n 's/^pushed \\([0-9.]*\\).*/\\1/p;q' "$d/sections.txt" 2>/dev/null)"""),
        sh("""  printf 'bundle %s %s %s %s\\0' "$(stat -c %Y "$d")" "$(kb "$d")" "${p:--}" "$d"; done"""),
        # A leftover with anything written in the last minutes belongs to a push or profile still running
        # (possibly from another host): listed as in use, not removed.
        sh('for d in staging/* runs/* bin/*/*.part; do [ -e "$d" ] || continue'),
        sh(
            '  if [ -n "$(find "$d" -mmin -{minutes} 2>/dev/null | head -n 1)" ]; '
            """then printf 'in-use 0 %s\\0' "$d"; """
            """else printf 'leftover %s %s\\0' "$(kb "$d")" "$d"; fi; done""",
            minutes=IN_USE_MINUTES,
        ),
    )


@dataclass
class GcSurvey:
    root_exists: bool = False
    marked: bool = False  # the root holds STORE_MARKER
    bundles: list[tuple[float, str, int]] = field(
        default_factory=list
    )  # (pushed at, sha, bytes), newest first
    leftovers: list[tuple[str, int]] = field(default_factory=list)  # (path, bytes): edgeship's, abandoned
    in_use: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)


def is_own_leftover(path: str) -> bool:
    """A path under the root that edgeship itself names in staging/, runs/ or bin/ (and nothing else)."""
    parts = path.split("/")
    if len(parts) == 2 and parts[0] == "staging":
        return is_sha256(parts[1])
    if len(parts) == 2 and parts[0] == "runs":
        return is_run_id(parts[1])
    if len(parts) == 3 and parts[0] == "bin":
        return is_sha256(parts[1]) and is_safe_name(parts[2]) and parts[2].endswith(".part")
    return False


def parse_gc_survey(output: bytes) -> GcSurvey:
    """The survey's records. The push time comes from the bundle's index ("pushed <epoch>"), the folder
    mtime when it has none: whole seconds would not order two pushes of the same second."""
    survey = GcSurvey()
    for raw in output.split(b"\0"):
        record = raw.decode(errors="replace")
        kind, _, rest = record.partition(" ")
        if kind == "root" and not rest:
            survey.root_exists = True
        elif kind == "store" and not rest:
            survey.marked = True
        elif kind == "bundle":
            _parse_bundle(rest, survey)
        elif kind in ("leftover", "in-use"):
            size, _, path = rest.partition(" ")
            if not is_own_leftover(path):
                survey.foreign.append(path)
            elif kind == "in-use":
                survey.in_use.append(path)
            elif size.isdigit():
                survey.leftovers.append((path, int(size) * 1024))
    survey.bundles.sort(reverse=True)
    return survey


def _parse_bundle(rest: str, survey: GcSurvey) -> None:
    fields = rest.split(" ", 3)
    if len(fields) != 4:
        return
    mtime, size, pushed_at, path = fields
    folder, _, sha = path.partition("/")
    if folder != "bundles" or not is_sha256(sha) or not mtime.isdigit() or not size.isdigit():
        survey.foreign.append(path)
        return
    when = float(mtime)
    with contextlib.suppress(ValueError):
        when = float(pushed_at)
    survey.bundles.append((when, sha, int(size) * 1024))


def collect_garbage(
    device: Device, keep: int = 2, root: str = DEFAULT_DEVICE_ROOT, dry_run: bool = False
) -> GcResult:
    """Remove all but the ``keep`` newest bundles, and leftovers (staging, runs, .part) no longer in use.

    Kept bundles are also the sources of section reuse, so keeping the previous build makes the next
    transformer-only push cheap.
    """
    if keep < 0:
        raise UsageError("--keep must be 0 or more")
    store = DeviceStore(device, root=root)
    result = GcResult(serial=device.serial)
    try:
        output = device.shell(gc_survey_script(store.root), timeout=120).stdout
        survey = parse_gc_survey(output)
        if survey.root_exists and not survey.marked:
            raise DeviceError(
                f"{device.serial}: {store.root} holds no {STORE_MARKER}, so it is not an edgeship store "
                "(`edgeship push` writes one there) and gc removes nothing; check device_root in "
                "edgeship.yaml"
            )
        result.in_use, result.foreign = survey.in_use, survey.foreign
        result.kept = [sha for _, sha, _ in survey.bundles[:keep]]
        result.removed_bundles = [sha for _, sha, _ in survey.bundles[keep:]]
        result.removed_leftovers = [path for path, _ in survey.leftovers]
        result.freed_bytes = sum(size for *_, size in survey.bundles[keep:]) + sum(
            size for _, size in survey.leftovers
        )
        targets = [f"bundles/{sha}" for sha in result.removed_bundles] + result.removed_leftovers
        if targets and not dry_run:
            # The marker is checked again right before: the root must still be the store surveyed.
            remove = sh(
                "cd {root} && [ -f {marker} ] && rm -rf -- {targets}",
                root=store.root,
                marker=STORE_MARKER,
                targets=targets,
            )
            device.shell(remove, check=True, timeout=600)
    except EdgeshipError as exc:
        result.ok = False
        result.error = exc.message
    return result
