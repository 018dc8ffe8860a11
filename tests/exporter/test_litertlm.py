"""The .litertlm reader and the reproducible-stamp normaliser, on a real exported bundle."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edgeship.errors import InputError
from edgeship.exporter.litertlm import digest_bundle, normalise_stamps, read_header
from edgeship.hashing import sha256_file


@pytest.fixture
def bundle_copy(tiny_gemma4_build: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "model.litertlm"
    shutil.copyfile(tiny_gemma4_build / "model.litertlm", copy)
    return copy


def test_sections_are_aligned_ordered_and_inside_the_file(bundle_copy: Path) -> None:
    header = read_header(bundle_copy)
    size = bundle_copy.stat().st_size
    previous_end = header.header_end
    for section in header.sections:
        assert section.offset % (16 * 1024) == 0
        assert previous_end <= section.offset <= section.end <= size
        previous_end = section.end
    assert header.sections[-1].end == size


def test_digest_bundle_matches_streamed_sha256_of_each_range(bundle_copy: Path) -> None:
    header = read_header(bundle_copy)
    digests = digest_bundle(bundle_copy, header, chunk_bytes=5000)  # chunks straddle section boundaries
    assert digests.bundle == sha256_file(bundle_copy)
    first = header.sections[0].offset
    assert digests.header == sha256_file(bundle_copy, 0, first)
    for section, digest in zip(header.sections, digests.sections, strict=True):
        assert digest == sha256_file(bundle_copy, section.offset, section.bytes)


def test_exported_bundle_carries_the_normalised_stamps(tiny_gemma4_build: Path, bundle_copy: Path) -> None:
    import json

    manifest = json.loads((tiny_gemma4_build / "manifest.json").read_text())
    header = read_header(bundle_copy)
    assert set(header.stamp_locations) == {"uuid", "creation_timestamp"}
    for key, value in manifest["bundle"]["stamps"].items():
        assert header.system_metadata[key] == value
    assert header.system_metadata["creation_timestamp"].startswith("2025-01-01T00:00:00")


def test_normalise_changes_only_the_stamp_bytes(bundle_copy: Path) -> None:
    original = bundle_copy.read_bytes()
    header = read_header(bundle_copy)
    normalise_stamps(bundle_copy, seed="another seed")
    changed = bundle_copy.read_bytes()
    assert len(changed) == len(original)
    diff = [i for i, (a, b) in enumerate(zip(original, changed, strict=True)) if a != b]
    allowed = set()
    for offset, length in header.stamp_locations.values():
        allowed.update(range(offset, offset + length))
    assert diff and set(diff) <= allowed
    assert read_header(bundle_copy).system_metadata["creation_timestamp"].startswith("2025-01-01T00:00:00")
    normalise_stamps(bundle_copy, seed="another seed")
    assert bundle_copy.read_bytes() == changed  # same seed, same bytes


def test_truncated_bundle_is_an_input_error(bundle_copy: Path) -> None:
    with open(bundle_copy, "r+b") as handle:
        handle.truncate(bundle_copy.stat().st_size // 2)
    with pytest.raises(InputError, match="outside the file"):
        read_header(bundle_copy)


def test_not_a_bundle(tmp_path: Path) -> None:
    path = tmp_path / "x.litertlm"
    path.write_bytes(b"NOTLITERTLM" + b"\0" * 100)
    with pytest.raises(InputError, match="bad magic"):
        read_header(path)
