"""The on-device store under the device root (default /data/local/tmp/edgeship).

    .edgeship-store                          the store marker: push writes it; gc refuses a root without
    bundles/<bundle-sha256>/model.litertlm   verified bundles, renamed into place only after sha256sum
    bin/<sha256>/<name>                      probe, runners, .so files: content-addressed, pushed once
    staging/<bundle-sha256>/                 partial uploads; never a final path
    runs/<run-id>/                           raw output of profile runs (``is_run_id``)

Content addressing makes "is it already there?" a single stat: a file at bin/<sha>/<name> of the right size
was verified before it was renamed there.
"""

from __future__ import annotations

import posixpath
import re
import uuid
from pathlib import Path

from edgeship.android_harness.adb import Device, df_section, parse_df_available, split_sections
from edgeship.android_harness.adb.quoting import sh
from edgeship.config import DEFAULT_DEVICE_ROOT
from edgeship.errors import DeviceError, UsageError
from edgeship.exporter.manifest import BUNDLE_FILE, is_sha256
from edgeship.files import SAFE_NAME_RULE, is_safe_name
from edgeship.hashing import cached_sha256
from edgeship.units import format_bytes

# A push's device script gives up on data that has not arrived for this long (the host died silently), so
# staging untouched for longer belongs to a dead push: gc removes it, the next push clears its attempt.
STAGING_IDLE_LIMIT_S = 600.0
STORE_MARKER = ".edgeship-store"
MARKER_TEXT = (
    "edgeship.store/1\n"
    "This folder is an edgeship device store: `edgeship gc` removes old bundles, staging and runs here.\n"
)
# profile/run.py names a run folder <bundle sha12>-<UTC start %Y%m%dT%H%M%SZ>-<serial, sanitized>-<run>.
_RUN_ID = re.compile(r"[0-9a-f]{12}-[0-9]{8}T[0-9]{6}Z-[A-Za-z0-9._-]+")


def is_run_id(name: str) -> bool:
    """True for a runs/ folder name that edgeship's profile gives (gc removes only those)."""
    return _RUN_ID.fullmatch(name) is not None


def check_name(name: str, what: str = "file name") -> str:
    """A single path component made of safe characters; anything else could climb out of the store."""
    if not is_safe_name(name):
        raise UsageError(f"{what} {name!r} must be {SAFE_NAME_RULE}")
    return name


def check_sha(sha: str) -> str:
    if not is_sha256(sha):
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
        return f"{self.bundle_dir(sha)}/{BUNDLE_FILE}"

    @property
    def marker_path(self) -> str:
        return f"{self.root}/{STORE_MARKER}"

    def mark(self) -> None:
        """Write the store marker (push does, before anything else lands): gc works only where it is."""
        self.device.push_bytes(MARKER_TEXT.encode(), self.marker_path)

    def run_dir(self, run_id: str) -> str:
        return f"{self.runs_dir}/{check_name(run_id, 'run id')}"

    def staging_for(self, sha: str) -> str:
        return f"{self.staging_dir}/{check_sha(sha)}"

    # -- space -------------------------------------------------------------------------------------------

    def free_bytes(self) -> int | None:
        """Available bytes on the filesystem holding the root (its nearest existing ancestor)."""
        _, sections = split_sections(self.device.shell(df_section(self.root), timeout=30).text)
        return parse_df_available(sections.get("df", []))

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
        sha = cached_sha256(local)
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
        # One .part per pusher: two profiles setting up one phone must not write, hash and move one file.
        partial = f"{remote}.{uuid.uuid4().hex[:12]}.part"
        self.device.push_file(local, partial, mode=mode)
        verify = sh(
            "set -e; sum=$(sha256sum {partial}); sum=${sum%% *}; "
            'if [ "$sum" != {sha} ]; then rm -f {partial}; echo "sha256 $sum" >&2; exit 9; fi; '
            "chmod {mode} {partial}; mv -f {partial} {remote}",
            partial=partial,
            sha=sha,
            mode=f"{mode:o}",
            remote=remote,
        )
        result = self.device.shell(verify, timeout=120)
        if result.exit_code == 9:
            raise DeviceError(f"{self.device.serial}: {name} arrived corrupted (sha256 mismatch); push again")
        if result.exit_code != 0:
            reason = (result.stderr or result.stdout).decode(errors="replace").strip().splitlines()
            detail = reason[-1] if reason else f"exit {result.exit_code}"
            raise DeviceError(f"{self.device.serial}: installing {name} failed: {detail}")
        return remote
