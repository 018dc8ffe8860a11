"""What profile knows of a build: manifest, bundle file, and the sections the probe attributes memory to."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeship.errors import InputError
from edgeship.hashing import sha256_file

MANIFEST_FILE_NAME = "manifest.json"


@dataclass(frozen=True)
class SectionSpan:
    """A bundle section as the probe attributes mappings to it: [offset, end) of the bundle file."""

    kind: str
    offset: int
    end: int

    @property
    def bytes(self) -> int:
        return self.end - self.offset


@dataclass
class BuildInfo:
    build_dir: Path
    bundle_path: Path
    manifest: dict[str, Any]
    manifest_sha256: str
    sections: list[SectionSpan]
    local: Any = None  # push's checked LocalBundle, loaded once for every device

    @property
    def sha256(self) -> str:
        return str(self.manifest["bundle"]["sha256"])

    @property
    def sha12(self) -> str:
        return self.sha256[:12]

    def to_record(self) -> dict[str, Any]:
        """profile.json ``bundle``."""
        model = self.manifest.get("model") or {}
        return {
            "sha256": self.sha256,
            "manifest_sha256": self.manifest_sha256,
            "file": self.bundle_path.name,
            "bytes": self.manifest["bundle"].get("bytes"),
            "build_dir": str(self.build_dir),
            "arch": model.get("arch"),
            "ple": model.get("ple"),
            "recipe": (self.manifest.get("export") or {}).get("recipe"),
            "sections": [
                {"kind": span.kind, "offset": span.offset, "end": span.end, "bytes": span.bytes}
                for span in self.sections
            ],
        }


def section_spans(manifest_sections: Sequence[dict[str, Any]]) -> list[SectionSpan]:
    """One span per manifest section, with kinds made unique ('kind', 'kind#2', …) so none is merged away."""
    spans: list[SectionSpan] = []
    seen: dict[str, int] = {}
    for section in sorted(manifest_sections, key=lambda item: int(item["offset"])):
        kind = str(section["kind"])
        seen[kind] = seen.get(kind, 0) + 1
        name = kind if seen[kind] == 1 else f"{kind}#{seen[kind]}"
        spans.append(SectionSpan(name, int(section["offset"]), int(section["end"])))
    return spans


def read_build(build_dir: Path) -> BuildInfo:
    """The build's manifest and section spans; InputError when BUILD_DIR is not an export."""
    build_dir = Path(build_dir)
    manifest_path = build_dir / MANIFEST_FILE_NAME
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise InputError(
            f"{build_dir} has no {MANIFEST_FILE_NAME}; is it an `edgeship export` BUILD_DIR?"
        ) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{manifest_path} is not valid JSON ({exc})") from None
    try:
        bundle_path = build_dir / manifest["bundle"]["file"]
        sections = section_spans(manifest["sections"])
        _ = manifest["bundle"]["sha256"]
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{manifest_path} lacks bundle/sections; re-export with `edgeship export`") from None
    if not bundle_path.is_file():
        raise InputError(f"{bundle_path} is missing; the build dir is incomplete")
    return BuildInfo(build_dir, bundle_path, manifest, sha256_file(manifest_path), sections)
