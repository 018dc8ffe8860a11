"""A build dir opened for `quantize` and `verify`: the checked build plus its bundle's own section table.

Both commands read TFLite sections out of the shipped bundle, so besides ``read_build``'s checks (size,
section ranges) the bundle's header must list the sections the manifest lists, and each section's bytes
are checked against the sha256 the manifest records as they are read: a bundle edited after export, or a
manifest that belongs to another bundle, is an InputError before any result is computed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeship.errors import InputError
from edgeship.exporter.litertlm import BundleHeader, Section, read_header
from edgeship.exporter.manifest import TFLITE_DATA_TYPE, Build, read_build


@dataclass(frozen=True)
class BuildInput:
    build: Build
    header: BundleHeader  # the bundle's own section table (matches the manifest's)

    @property
    def build_dir(self) -> Path:
        return self.build.build_dir

    @property
    def bundle(self) -> Path:
        return self.build.bundle_path

    @property
    def manifest(self) -> Mapping[str, Any]:
        return self.build.manifest

    @property
    def tflite_kinds(self) -> set[str]:
        return {s.kind for s in self.header.sections if s.data_type == TFLITE_DATA_TYPE}

    def section(self, kind: str) -> Section | None:
        return next((s for s in self.header.sections if s.kind == kind), None)

    def read_section(self, section: Section) -> bytes:
        """The section's bytes, checked against the manifest's sha256 (the bundle is never read whole)."""
        with open(self.bundle, "rb") as handle:
            handle.seek(section.offset)
            data = handle.read(section.bytes)
        expected = self.build.sections[section.index].sha256
        if len(data) != section.bytes or hashlib.sha256(data).hexdigest() != expected:
            raise InputError(
                f"{self.bundle}: section {section.index} ({section.kind}) does not match its sha256 in"
                " manifest.json; the bundle changed after export: re-export the build"
            )
        return data


def open_build(build_dir: str | Path) -> BuildInput:
    """``read_build`` plus the bundle header, whose section table must be the manifest's."""
    build = read_build(build_dir)
    header = read_header(build.bundle_path)
    table = [(s.index, s.kind, s.offset, s.end) for s in header.sections]
    listed = [(s.index, s.kind, s.offset, s.end) for s in build.sections]
    if table != listed:
        raise InputError(
            f"manifest.json in {build.build_dir} disagrees with the bundle's section table; the manifest"
            " belongs to another bundle: re-export the build"
        )
    return BuildInput(build, header)
