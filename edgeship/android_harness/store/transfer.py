"""The transfer plan: what to send and what to copy on the device, from a build and the device's index.

The bundle is seen as 16 KiB blocks (the .litertlm section alignment). A section whose sha256 the device
already holds in some verified bundle is copied there with `dd bs=16384 skip= seek= count=`: only its
whole blocks, so dd needs no byte-granular flags (toybox dd on old phones has none). Everything else — the
header, padding, the last partial block of each reused section and every new section — travels as
*pieces*. A rebuild that changed only the transformer therefore sends that section, the header and at
most one 16 KiB block per other section: for a 1.5 GB PLE-heavy bundle with 6 sections, <0.01% extra.

When nothing can be copied (a first push), the bundle travels as ONE file straight into the push's attempt
folder — written once on the device, hashed as it grows — and the device keeps a hard link to it
(`staging/<sha>/pieces/partial.<attempt>`): adbd deletes a half-received file, the link keeps the bytes that
arrived, so an interrupted first push resumes from the last whole 16 KiB block of that prefix (only the tail
travels). The link is its attempt's alone while that push lives (its heartbeat, push/script.py): a resume
takes only the partial of a dead push, with one atomic `mv` (two resumes cannot both win it).

With copies (a rebuild), the rest is cut into pieces on a fixed 16 MiB grid of bundle offsets, named by
their range inside a staging folder named by the bundle sha256 (`staging/<sha>/pieces/<offset>-<length>`):
the name fixes the bytes exactly, so an interrupted push resumes with every piece that arrived whole (its
size matches) without hashing pieces on either side; the final sha256sum of the assembled file is the check
that counts.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeship.android_harness.store.index import DeviceIndex
from edgeship.exporter.manifest import ALIGNMENT, Build

BLOCK = ALIGNMENT  # dd's block: a section starts on one, so its whole blocks can be copied
PIECE_GRID = 16 * 1024 * 1024
PARTIAL_PREFIX = "partial."  # staging/<sha>/pieces/partial.<attempt>: the prefix a direct push received


def partial_name(attempt: str) -> str:
    """The name of the partial prefix that attempt folder ``attempt`` owns."""
    return f"{PARTIAL_PREFIX}{attempt}"


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
class TransferPlan:
    bundle_sha256: str
    bundle_bytes: int
    copies: list[BlockCopy]
    pieces: list[Piece]
    present_pieces: set[str]
    # Direct mode: one piece [direct_from, end) sent as one file; the device's partial prefix holds the rest.
    direct_from: int | None = None
    partial: str | None = None  # the dead push's partial prefix a resume takes (direct_from > 0)

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


def plan_transfer(
    build: Build, index: DeviceIndex, reuse: bool = True, grid: int | None = None
) -> TransferPlan:
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
        # Resume from the last whole block of the longest prefix a dead direct push left, sending at
        # least the last block (a prefix as long as the bundle was never verified).
        name, arrived = max(index.partials.items(), key=lambda item: item[1], default=(None, 0))
        start = (
            min(arrived // BLOCK * BLOCK, (build.bytes - 1) // BLOCK * BLOCK) if reuse and build.bytes else 0
        )
        piece = Piece(start, build.bytes - start)
        return TransferPlan(
            build.sha256, build.bytes, [], [piece], set(), direct_from=start, partial=name if start else None
        )
    covered = [(c.offset, c.offset + c.length) for c in copies]
    pieces: list[Piece] = []
    for start, end in _uncovered(build.bytes, covered):
        pieces.extend(cut_pieces(start, end, grid))
    present = {p.name for p in pieces if index.pieces.get(p.name) == p.length}
    return TransferPlan(build.sha256, build.bytes, copies, pieces, present)
