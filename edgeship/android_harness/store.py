"""The on-device store under the device root (default /data/local/tmp/edgeship).

    bundles/<bundle-sha256>/model.litertlm   verified bundles, renamed into place only after sha256sum
    bin/<sha256>/<name>                      probe, runners, .so files: content-addressed, pushed once
    staging/                                 partial uploads; never a final path
    runs/<run-id>/                           raw output of profile runs

Content addressing makes "is it already there?" a single stat: a file at bin/<sha>/<name> of the right size
was verified before it was renamed there.
"""

from __future__ import annotations

import contextlib
import posixpath
import re
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeship.android_harness.device import Device
from edgeship.android_harness.facts import parse_df_available
from edgeship.config import DEFAULT_DEVICE_ROOT
from edgeship.errors import DeviceError, EdgeshipError, UsageError
from edgeship.hashing import sha256_file
from edgeship.units import format_bytes

SAFE_NAME = re.compile(r"^[A-Za-z0-9._+-]+$")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def check_name(name: str, what: str = "file name") -> str:
    """A single path component made of safe characters; anything else could climb out of the store."""
    if not SAFE_NAME.match(name) or name in {".", ".."}:
        raise UsageError(f"{what} {name!r} must be one path component of letters, digits, . _ + -")
    return name


def check_sha(sha: str) -> str:
    if not SHA256_HEX.match(sha):
        raise UsageError(f"{sha!r} is not a lowercase hex sha256")
    return sha


class DeviceStore:
    def __init__(self, device: Device, root: str = DEFAULT_DEVICE_ROOT) -> None:
        if not root.startswith("/"):
            raise UsageError(f"device root {root!r} must be an absolute path")
        self.device = device
        self.root = posixpath.normpath(root)

    # -- layout ------------------------------------------------------------------------------------------

    @property
    def bundles_dir(self) -> str:
        return f"{self.root}/bundles"

    @property
    def bin_dir(self) -> str:
        return f"{self.root}/bin"

    @property
    def staging_dir(self) -> str:
        return f"{self.root}/staging"

    @property
    def runs_dir(self) -> str:
        return f"{self.root}/runs"

    def bundle_dir(self, sha: str) -> str:
        return f"{self.bundles_dir}/{check_sha(sha)}"

    def bundle_path(self, sha: str) -> str:
        return f"{self.bundle_dir(sha)}/model.litertlm"

    def run_dir(self, run_id: str) -> str:
        return f"{self.runs_dir}/{check_name(run_id, 'run id')}"

    def staging_for(self, sha: str) -> str:
        return f"{self.staging_dir}/{check_sha(sha)}"

    # -- space -------------------------------------------------------------------------------------------

    def free_bytes(self) -> int | None:
        """Available bytes on the filesystem holding the root (its nearest existing ancestor)."""
        script = (
            f'd={shlex.quote(self.root)}; while [ -n "$d" ] && [ ! -d "$d" ]; do d="${{d%/*}}"; done; '
            '[ -n "$d" ] || d=/; df -k -P "$d" 2>/dev/null || df -k "$d"'
        )
        return parse_df_available(self.device.shell(script, timeout=30).text.splitlines())

    def require_free(self, needed: int, what: str, free: int | None = None) -> None:
        """Refuse before sending instead of filling the phone's disk."""
        available = self.free_bytes() if free is None else free
        if available is not None and needed > available:
            raise self.space_error(needed, available, what)

    def space_error(self, needed: int, available: int, what: str) -> DeviceError:
        return DeviceError(
            f"{self.device.serial}: {what} needs {format_bytes(needed)} under {self.root}, "
            f"has {format_bytes(available)} free; run `edgeship gc` or free space on the device"
        )

    # -- content-addressed binaries ----------------------------------------------------------------------

    def ensure_file(self, local: Path | str, name: str, mode: int = 0o755) -> str:
        """The device path of ``local`` under bin/<sha256>/<name>, pushed and verified only when absent."""
        local = Path(local)
        check_name(name)
        if not local.is_file():
            raise UsageError(f"{local} does not exist or is not a file")
        size = local.stat().st_size
        sha = sha256_file(local)
        folder = f"{self.bin_dir}/{sha}"
        remote = f"{folder}/{name}"
        try:
            present = self.device.adb.sync.stat(remote)
        except Exception as exc:  # adbutils raises several types; any failure means "ask again by pushing"
            raise DeviceError(f"{self.device.serial}: stat of {remote} failed: {exc}") from None
        if present.mode != 0 and present.size == size:
            return remote
        self.device.shell(["mkdir", "-p", folder], check=True, timeout=30)
        self.require_free(size, f"{name}")
        partial = f"{remote}.part"
        self.device.push_file(local, partial, mode=mode)
        q_partial, q_remote = shlex.quote(partial), shlex.quote(remote)
        verify = (
            f"set -e; sum=$(sha256sum {q_partial}); sum=${{sum%% *}}; "
            f'if [ "$sum" != {sha} ]; then rm -f {q_partial}; echo "sha256 $sum" >&2; exit 9; fi; '
            f"chmod {mode:o} {q_partial}; mv -f {q_partial} {q_remote}"
        )
        result = self.device.shell(verify, timeout=120)
        if result.exit_code == 9:
            raise DeviceError(f"{self.device.serial}: {name} arrived corrupted (sha256 mismatch); push again")
        if result.exit_code != 0:
            reason = (result.stderr or result.stdout).decode(errors="replace").strip().splitlines()
            detail = reason[-1] if reason else f"exit {result.exit_code}"
            raise DeviceError(f"{self.device.serial}: installing {name} failed: {detail}")
        return remote


# -- garbage collection ------------------------------------------------------------------------------------


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


IN_USE_MINUTES = 10  # the device script gives up on data after PIECE_WAIT_S (600 s): older is abandoned


def gc_survey_script(root: str) -> str:
    return (
        f"cd {shlex.quote(root)} 2>/dev/null || exit 0\n"
        "echo '@bundles'; for d in bundles/*; do\n"
        '  [ -d "$d" ] || continue\n'
        '  echo "$(stat -c %Y "$d") $(du -sk "$d" | sed "s/[[:space:]].*//") $d '
        '$(grep -m1 "^pushed " "$d/sections.txt" 2>/dev/null)"; done\n'
        # A leftover with anything written in the last minutes belongs to a push or profile still running
        # (possibly from another host): listed as in use, not removed.
        "echo '@leftovers'; for d in staging/* runs/* bin/*/*.part; do [ -e \"$d\" ] || continue\n"
        f'  if [ -n "$(find "$d" -mmin -{IN_USE_MINUTES} 2>/dev/null | head -n 1)" ]; then echo "in-use $d"; '
        'else du -sk "$d"; fi; done\n'
        "echo '@end'\n"
    )


def parse_gc_survey(
    text: str,
) -> tuple[list[tuple[float, str, int]], list[tuple[str, int]], list[str]]:
    """Bundles as (pushed-at, sha, bytes), newest first; leftovers as (path, bytes); leftovers in use.

    The push time comes from the bundle's index ("pushed <epoch>"), the folder mtime when it has none:
    whole seconds would not order two pushes of the same second.
    """
    from edgeship.android_harness.facts import split_sections

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
            if SHA256_HEX.match(sha):
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
                f"cd {shlex.quote(store.root)} && rm -rf -- " + " ".join(shlex.quote(t) for t in targets),
                check=True,
                timeout=600,
            )
    except EdgeshipError as exc:
        result.ok = False
        result.error = exc.message
    return result
