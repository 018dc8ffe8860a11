"""What a device holds: the index written beside each bundle, and the side files that travel with it.

``bundles/<sha>/sections.txt`` says "pushed <epoch>", then "<sha256> <offset> <end> <kind>" per section and
"file <name> <sha256> <bytes>" per side file; the push survey reads every bundle's index into a
``DeviceIndex``, so a section or side file the device already holds is copied there instead of sent again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edgeship.exporter.manifest import MANIFEST_FILE, Build
from edgeship.hashing import cached_sha256

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
    pieces: dict[str, int] = field(default_factory=dict)  # staged grid piece name -> size
    partials: dict[str, int] = field(default_factory=dict)  # partial prefixes of dead pushes -> size
    unverified: set[str] = field(default_factory=set)  # bundle shas a --no-verify push put in place
    free_bytes: int | None = None


def parse_index_line(bundle_sha: str, line: str, index: DeviceIndex) -> None:
    parts = line.split()
    if len(parts) >= 4 and parts[0] == "file":
        name, sha = parts[1], parts[2]
        index.side_files.setdefault(sha, bundle_sha)
        index.side_names.setdefault(sha, name)
    elif len(parts) >= 3 and len(parts[0]) == 64 and parts[1].isdigit() and parts[2].isdigit():
        index.sections.setdefault(parts[0], SectionSource(bundle_sha, int(parts[1]), int(parts[2])))
