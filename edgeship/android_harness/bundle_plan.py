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

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edgeship.exporter.manifest import ALIGNMENT, MANIFEST_FILE, Build
from edgeship.hashing import cached_sha256

BLOCK = ALIGNMENT  # dd's block: a section starts on one, so its whole blocks can be copied
PIECE_GRID = 16 * 1024 * 1024
PARTIAL_NAME = "partial"  # staging/<sha>/pieces/partial: the prefix a direct push received
INDEX_NAME = "sections.txt"  # on the device, beside each bundle: "sha256 offset end kind" per section


@dataclass(frozen=True)
class SideFile:
    """A file that lands beside the bundle (manifest, tokenizer)."""

    name: str
    path: Path
    bytes: int
    sha256: str


def side_files(build: Build) -> tuple[SideFile, ...]:
    """The manifest and the tokenizer (when the build has one), with their sizes and digests."""
    files = [
        SideFile(
            MANIFEST_FILE, build.manifest_path, build.manifest_path.stat().st_size, build.manifest_sha256
        )
    ]
    tokenizer = build.tokenizer_path
    if tokenizer is not None:
        files.append(SideFile(tokenizer.name, tokenizer, tokenizer.stat().st_size, cached_sha256(tokenizer)))
    return tuple(files)


def index_text(build: Build, sides: Sequence[SideFile], pushed_at: float | None = None) -> str:
    """The device-side section index written beside the bundle (and when it was pushed, for gc)."""
    lines = [f"pushed {pushed_at:.6f}"] if pushed_at is not None else []
    lines += [f"{s.sha256} {s.offset} {s.end} {s.kind}" for s in build.sections]
    lines += [f"file {f.name} {f.sha256} {f.bytes}" for f in sides]
    return "\n".join(lines) + "\n"


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


def plan_bundle(build: Build, index: DeviceIndex, reuse: bool = True, grid: int | None = None) -> BundlePlan:
    grid = grid or PIECE_GRID
    copies: list[BlockCopy] = []
    if reuse:
        for section in build.sections:
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
        start = min(partial // BLOCK * BLOCK, (build.bytes - 1) // BLOCK * BLOCK) if build.bytes else 0
        piece = Piece(start, build.bytes - start)
        return BundlePlan(build.sha256, build.bytes, [], [piece], set(), direct_from=start)
    covered = [(c.offset, c.offset + c.length) for c in copies]
    pieces: list[Piece] = []
    for start, end in _uncovered(build.bytes, covered):
        pieces.extend(cut_pieces(start, end, grid))
    present = {p.name for p in pieces if index.pieces.get(p.name) == p.length}
    return BundlePlan(build.sha256, build.bytes, copies, pieces, present)
