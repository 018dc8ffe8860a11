"""`edgeship gc`: remove all but the newest bundles, and leftovers no running push or profile still uses.

One survey script lists the bundles (with the push time their index records) and the leftovers (staging,
runs, half-installed bin/ files); a leftover written to within ``IN_USE_MINUTES`` belongs to a push or
profile still running, possibly from another host, and is kept.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from edgeship.android_harness.adb import END, Device, split_sections, tag
from edgeship.android_harness.adb.quoting import Line, script, sh
from edgeship.android_harness.store.layout import STAGING_IDLE_LIMIT_S, DeviceStore
from edgeship.config import DEFAULT_DEVICE_ROOT
from edgeship.errors import EdgeshipError, UsageError
from edgeship.exporter.manifest import is_sha256


@dataclass
class GcResult:
    serial: str
    kept: list[str] = field(default_factory=list)
    removed_bundles: list[str] = field(default_factory=list)
    removed_leftovers: list[str] = field(default_factory=list)
    in_use: list[str] = field(default_factory=list)  # leftovers written to recently: a live push or profile
    freed_bytes: int = 0
    ok: bool = True
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


IN_USE_MINUTES = math.ceil(STAGING_IDLE_LIMIT_S / 60)  # older than a push waits for data: abandoned


def gc_survey_script(root: str) -> Line:
    return script(
        sh("cd {root} 2>/dev/null || exit 0", root=root),
        sh("{tag}; for d in bundles/*; do", tag=tag("bundles")),
        sh('  [ -d "$d" ] || continue'),
        sh(
            '  echo "$(stat -c %Y "$d") $(du -sk "$d" | sed "s/[[:space:]].*//") $d '
            '$(grep -m1 "^pushed " "$d/sections.txt" 2>/dev/null)"; done'
        ),
        # A leftover with anything written in the last minutes belongs to a push or profile still running
        # (possibly from another host): listed as in use, not removed.
        sh('{tag}; for d in staging/* runs/* bin/*/*.part; do [ -e "$d" ] || continue', tag=tag("leftovers")),
        sh(
            '  if [ -n "$(find "$d" -mmin -{minutes} 2>/dev/null | head -n 1)" ]; then echo "in-use $d"; '
            'else du -sk "$d"; fi; done',
            minutes=IN_USE_MINUTES,
        ),
        tag(END),
    )


def parse_gc_survey(
    text: str,
) -> tuple[list[tuple[float, str, int]], list[tuple[str, int]], list[str]]:
    """Bundles as (pushed-at, sha, bytes), newest first; leftovers as (path, bytes); leftovers in use.

    The push time comes from the bundle's index ("pushed <epoch>"), the folder mtime when it has none:
    whole seconds would not order two pushes of the same second.
    """
    _, sections = split_sections(text)
    bundles: list[tuple[float, str, int]] = []
    for line in sections.get("bundles", []):
        parts = line.split()
        if len(parts) >= 3 and parts[0].isdigit() and parts[1].isdigit():
            sha = parts[2].rsplit("/", 1)[-1]
            when = float(parts[0])
            if len(parts) >= 5 and parts[3] == "pushed":
                with contextlib.suppress(ValueError):
                    when = float(parts[4])
            if is_sha256(sha):
                bundles.append((when, sha, int(parts[1]) * 1024))
    bundles.sort(reverse=True)
    leftovers: list[tuple[str, int]] = []
    in_use: list[str] = []
    for line in sections.get("leftovers", []):
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[0].isdigit():
            leftovers.append((parts[1].strip(), int(parts[0]) * 1024))
        elif len(parts) == 2 and parts[0] == "in-use":
            in_use.append(parts[1].strip())
    return bundles, leftovers, in_use


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
        text = device.shell(gc_survey_script(store.root), timeout=120).text
        bundles, leftovers, result.in_use = parse_gc_survey(text)
        result.kept = [sha for _, sha, _ in bundles[:keep]]
        doomed = [f"bundles/{sha}" for _, sha, _ in bundles[keep:]]
        result.removed_bundles = [sha for _, sha, _ in bundles[keep:]]
        result.removed_leftovers = [path for path, _ in leftovers]
        result.freed_bytes = sum(size for *_, size in bundles[keep:]) + sum(size for _, size in leftovers)
        targets = doomed + result.removed_leftovers
        if targets and not dry_run:
            device.shell(
                sh("cd {root} && rm -rf -- {targets}", root=store.root, targets=targets),
                check=True,
                timeout=600,
            )
    except EdgeshipError as exc:
        result.ok = False
        result.error = exc.message
    return result
