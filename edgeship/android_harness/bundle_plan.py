"""What to send and what to copy on the device, from a build's manifest and the device's section index.

The bundle is seen as 16 KiB blocks (the .litertlm section alignment). A section whose sha256 the device
already holds in some verified bundle is copied there with `dd bs=16384 skip= seek= count=`: only its
whole blocks, so dd needs no byte-granular flags (toybox dd on old phones has none). Everything else — the
header, padding, the last partial block of each reused section and every new section — travels as
*pieces*. A rebuild that changed only the transformer therefore sends that section, the header and at
most one 16 KiB block per other section: for a 1.5 GB PLE-heavy bundle with 6 sections, <0.01% extra.

When nothing can be copied (a first push), the bundle travels as ONE file straight into the push's attempt
folder — written once on the device, hashed as it grows — and the device keeps a hard link to it
(`staging/<sha>/pieces/partial`): adbd deletes a half-received file, the link keeps the bytes that arrived, so
an interrupted first push resumes from the last whole 16 KiB block of that prefix (only the tail travels).

With copies (a rebuild), the rest is cut into pieces on a fixed 16 MiB grid of bundle offsets, named by
their range inside a staging folder named by the bundle sha256 (`staging/<sha>/pieces/<offset>-<length>`):
the name fixes the bytes exactly, so an interrupted push resumes with every piece that arrived whole (its
size matches) without hashing pieces on either side; the final sha256sum of the assembled file is the check
that counts.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeship.errors import InputError
from edgeship.hashing import file_identity, known_sha256, remember_sha256, sha256_file

BLOCK = 16 * 1024
PIECE_GRID = 16 * 1024 * 1024
MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA = "edgeship.manifest/1"
PARTIAL_NAME = "partial"  # staging/<sha>/pieces/partial: the prefix a direct push received
INDEX_NAME = "sections.txt"  # on the device, beside each bundle: "sha256 offset end kind" per section


@dataclass(frozen=True)
class SectionRef:
    kind: str
    offset: int
    end: int
    sha256: str

    @property
    def bytes(self) -> int:
        return self.end - self.offset


@dataclass(frozen=True)
class SideFile:
    """A file that lands beside the bundle (manifest, tokenizer)."""

    name: str
    path: Path
    bytes: int
    sha256: str


@dataclass
class LocalBundle:
    build_dir: Path
    path: Path
    sha256: str
    bytes: int
    sections: list[SectionRef]
    side_files: list[SideFile]
    manifest: dict[str, Any] = field(repr=False)

    def index_text(self, pushed_at: float | None = None) -> str:
        """The device-side section index written beside the bundle (and when it was pushed, for gc)."""
        lines = [f"pushed {pushed_at:.6f}"] if pushed_at is not None else []
        lines += [f"{s.sha256} {s.offset} {s.end} {s.kind}" for s in self.sections]
        lines += [f"file {f.name} {f.sha256} {f.bytes}" for f in self.side_files]
        return "\n".join(lines) + "\n"


def load_build(build_dir: str | Path, verify: bool = True) -> LocalBundle:
    """Read and check BUILD_DIR: manifest present and sane, bundle size and (with ``verify``) sha256 match."""
    build_dir = Path(build_dir)
    manifest_path = build_dir / MANIFEST_NAME
    if not build_dir.is_dir():
        raise InputError(f"{build_dir} is not a folder; pass the BUILD_DIR written by `edgeship export`")
    if not manifest_path.is_file():
        raise InputError(
            f"{build_dir} has no {MANIFEST_NAME}; pass the BUILD_DIR written by `edgeship export`"
        )
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{manifest_path} is not readable JSON: {exc}".splitlines()[0]) from None
    if not isinstance(manifest, dict) or manifest.get("schema") != MANIFEST_SCHEMA:
        raise InputError(f"{manifest_path} is not an {MANIFEST_SCHEMA} manifest (schema key)")
    try:
        bundle = manifest["bundle"]
        bundle_path = build_dir / str(bundle["file"])
        expected_bytes = int(bundle["bytes"])
        expected_sha = str(bundle["sha256"]).lower()
        sections = [
            SectionRef(
                kind=str(s.get("kind", "section")),
                offset=int(s["offset"]),
                end=int(s["end"]),
                sha256=str(s["sha256"]).lower(),
            )
            for s in manifest.get("sections", [])
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(
            f"{manifest_path} lacks bundle/section field {exc}; re-run `edgeship export`"
        ) from None
    if not bundle_path.is_file():
        raise InputError(f"{bundle_path} is missing (named by {manifest_path})")
    actual_bytes = bundle_path.stat().st_size
    if actual_bytes != expected_bytes:
        raise InputError(
            f"{bundle_path} has {actual_bytes} bytes but its manifest says {expected_bytes}; "
            "rebuild or re-export"
        )
    _check_sections(sections, expected_bytes, manifest_path)
    if verify:
        verify_bundle(bundle_path, expected_sha)
    side_files = [
        SideFile(MANIFEST_NAME, manifest_path, manifest_path.stat().st_size, sha256_file(manifest_path))
    ]
    tokenizer = (
        (manifest.get("tokenizer") or {}).get("file") if isinstance(manifest.get("tokenizer"), dict) else None
    )
    if tokenizer:
        tokenizer_path = build_dir / str(tokenizer)
        if not tokenizer_path.is_file():
            raise InputError(f"{tokenizer_path} is missing (named by {manifest_path})")
        side_files.append(
            SideFile(
                tokenizer_path.name,
                tokenizer_path,
                tokenizer_path.stat().st_size,
                sha256_file(tokenizer_path),
            )
        )
    return LocalBundle(
        build_dir=build_dir,
        path=bundle_path,
        sha256=expected_sha,
        bytes=expected_bytes,
        sections=sections,
        side_files=side_files,
        manifest=manifest,
    )


# Bundles verified in this process, by (file identity, digest): `profile` pushes to N devices from N threads,
# and a GB bundle must not be hashed N times even where the on-disk record cannot be written.
_VERIFIED: set[tuple[str, str]] = set()
_VERIFIED_LOCK = threading.Lock()


def verify_bundle(bundle_path: Path, expected_sha: str) -> None:
    """The bundle's sha256 against its manifest: a bundle changed after export is refused before sending.

    A digest recorded for this very file (export records it; so does the first check) is not recomputed:
    see edgeship.hashing.known_sha256.
    """
    key = (file_identity(bundle_path), expected_sha)
    with _VERIFIED_LOCK:
        if key in _VERIFIED:
            return
        if known_sha256(bundle_path) == expected_sha:
            _VERIFIED.add(key)
            return
        actual_sha = sha256_file(bundle_path)
        if actual_sha == expected_sha:
            _VERIFIED.add(key)
            remember_sha256(bundle_path, actual_sha)
    if actual_sha != expected_sha:
        raise InputError(
            f"{bundle_path} sha256 {actual_sha[:12]}… does not match its manifest "
            f"({expected_sha[:12]}…); the bundle changed after export — re-export"
        )


def _check_sections(sections: list[SectionRef], total: int, manifest_path: Path) -> None:
    previous_end = 0
    for section in sorted(sections, key=lambda s: s.offset):
        if not (0 <= section.offset <= section.end <= total) or section.offset < previous_end:
            raise InputError(
                f"{manifest_path}: section {section.kind} [{section.offset}, {section.end}) "
                f"overlaps another or leaves the {total}-byte bundle; re-export"
            )
        previous_end = section.end


# -- the device's index -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SectionSource:
    """Where the device already holds a section: inside a verified bundle."""

    bundle_sha256: str
    offset: int
    end: int


@dataclass
class DeviceIndex:
    bundles: dict[str, int] = field(default_factory=dict)  # bundle sha -> model.litertlm size
    sections: dict[str, SectionSource] = field(default_factory=dict)  # section sha -> a source
    side_files: dict[str, str] = field(default_factory=dict)  # file sha -> bundle sha holding it (by name)
    side_names: dict[str, str] = field(default_factory=dict)  # file sha -> its name there
    pieces: dict[str, int] = field(default_factory=dict)  # staged piece name -> size
    free_bytes: int | None = None


def parse_index_line(bundle_sha: str, line: str, index: DeviceIndex) -> None:
    parts = line.split()
    if len(parts) >= 4 and parts[0] == "file":
        name, sha = parts[1], parts[2]
        index.side_files.setdefault(sha, bundle_sha)
        index.side_names.setdefault(sha, name)
    elif len(parts) >= 3 and len(parts[0]) == 64 and parts[1].isdigit() and parts[2].isdigit():
        index.sections.setdefault(parts[0], SectionSource(bundle_sha, int(parts[1]), int(parts[2])))


# -- the plan --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockCopy:
    """dd bs=16384 skip=source_offset/BLOCK seek=offset/BLOCK count=length/BLOCK from an older bundle."""

    source_bundle: str
    source_offset: int
    offset: int
    length: int
    kind: str


@dataclass(frozen=True)
class Piece:
    offset: int
    length: int

    @property
    def name(self) -> str:
        return f"{self.offset}-{self.length}"


@dataclass
class BundlePlan:
    bundle_sha256: str
    bundle_bytes: int
    copies: list[BlockCopy]
    pieces: list[Piece]
    present_pieces: set[str]
    # Direct mode: one piece [direct_from, end) sent as one file; the device's partial prefix holds the rest.
    direct_from: int | None = None

    @property
    def direct(self) -> bool:
        return self.direct_from is not None

    @property
    def pieces_to_send(self) -> list[Piece]:
        return [p for p in self.pieces if p.name not in self.present_pieces]

    @property
    def bytes_to_send(self) -> int:
        return sum(p.length for p in self.pieces_to_send)

    @property
    def bytes_copied(self) -> int:
        return sum(c.length for c in self.copies)

    @property
    def bytes_resumed(self) -> int:
        present = sum(p.length for p in self.pieces if p.name in self.present_pieces)
        return present + (self.direct_from or 0)


def _uncovered(total: int, covered: list[tuple[int, int]]) -> list[tuple[int, int]]:
    gaps: list[tuple[int, int]] = []
    cursor = 0
    for start, end in sorted(covered):
        if start > cursor:
            gaps.append((cursor, start))
        cursor = max(cursor, end)
    if cursor < total:
        gaps.append((cursor, total))
    return gaps


def cut_pieces(start: int, end: int, grid: int = PIECE_GRID) -> list[Piece]:
    """[start, end) cut at multiples of ``grid``, so the same range always gives the same pieces."""
    pieces: list[Piece] = []
    cursor = start
    while cursor < end:
        stop = min(end, (cursor // grid + 1) * grid)
        pieces.append(Piece(cursor, stop - cursor))
        cursor = stop
    return pieces


def plan_bundle(
    local: LocalBundle, index: DeviceIndex, reuse: bool = True, grid: int | None = None
) -> BundlePlan:
    grid = grid or PIECE_GRID
    copies: list[BlockCopy] = []
    if reuse:
        for section in local.sections:
            source = index.sections.get(section.sha256)
            if source is None or source.end - source.offset != section.bytes:
                continue
            if section.offset % BLOCK or source.offset % BLOCK:
                continue  # unaligned (not a .litertlm written by edgeship): send it
            whole = (section.bytes // BLOCK) * BLOCK
            if whole:
                copies.append(
                    BlockCopy(source.bundle_sha256, source.offset, section.offset, whole, section.kind)
                )
    if not copies:
        # Resume from the last whole block of the prefix an interrupted direct push left, sending at
        # least the last block (a prefix as long as the bundle was never verified).
        partial = index.pieces.get(PARTIAL_NAME, 0) if reuse else 0
        start = min(partial // BLOCK * BLOCK, (local.bytes - 1) // BLOCK * BLOCK) if local.bytes else 0
        piece = Piece(start, local.bytes - start)
        return BundlePlan(local.sha256, local.bytes, [], [piece], set(), direct_from=start)
    covered = [(c.offset, c.offset + c.length) for c in copies]
    pieces: list[Piece] = []
    for start, end in _uncovered(local.bytes, covered):
        pieces.extend(cut_pieces(start, end, grid))
    present = {p.name for p in pieces if index.pieces.get(p.name) == p.length}
    return BundlePlan(local.sha256, local.bytes, copies, pieces, present)
