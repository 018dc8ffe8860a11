"""The push plan: what is copied on the device, what is sent, and that together they rebuild the bundle.

The assembly script itself runs here under the host's /bin/sh against a folder laid out like the device
store, so the dd arithmetic is checked byte for byte without a device.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeship.android_harness.bundle_plan import (
    BLOCK,
    DeviceIndex,
    SectionSource,
    cut_pieces,
    load_build,
    plan_bundle,
)
from edgeship.errors import InputError
from tests.android_harness.synthetic import write_build


def _sections(sizes: list[int], seed: int = 0) -> list[tuple[str, bytes]]:
    rng = __import__("random").Random(seed)
    return [(f"kind{i}", rng.randbytes(size)) for i, size in enumerate(sizes)]


def test_load_build_reads_manifest_and_side_files(tmp_path: Path) -> None:
    build = write_build(tmp_path / "b", _sections([40_000, 70_001]))
    local = load_build(build)
    manifest = json.loads((build / "manifest.json").read_text())
    assert local.sha256 == manifest["bundle"]["sha256"]
    assert [s.sha256 for s in local.sections] == [s["sha256"] for s in manifest["sections"]]
    assert {f.name for f in local.side_files} == {"manifest.json", "tokenizer.json"}


def test_load_build_refuses_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no manifest\.json"):
        load_build(tmp_path)
    build = write_build(tmp_path / "b", _sections([40_000]))
    with (build / "model.litertlm").open("r+b") as handle:  # same size, different bytes
        handle.seek(20_000)
        handle.write(b"\xff" * 8)
    with pytest.raises(InputError, match="does not match its manifest"):
        load_build(build)
    with (build / "model.litertlm").open("ab") as handle:
        handle.write(b"x")
    with pytest.raises(InputError, match="bytes but its manifest says"):
        load_build(build)


def test_load_build_refuses_overlapping_sections(tmp_path: Path) -> None:
    build = write_build(tmp_path / "b", _sections([40_000, 40_000]))
    manifest = json.loads((build / "manifest.json").read_text())
    manifest["sections"][1]["offset"] = manifest["sections"][0]["offset"] + 100
    (build / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="overlaps"):
        load_build(build)


def test_fresh_device_gets_every_byte_as_grid_pieces(tmp_path: Path) -> None:
    local = load_build(write_build(tmp_path / "b", _sections([3 * BLOCK + 5, 2 * BLOCK])))
    plan = plan_bundle(local, DeviceIndex(), grid=4 * BLOCK)
    assert plan.copies == []
    assert plan.bytes_to_send == local.bytes
    assert all(p.offset % (4 * BLOCK) == 0 for p in plan.pieces)


def _index_for(local_sha: str, sections: list, bundle_sha: str = "a" * 64) -> DeviceIndex:
    index = DeviceIndex(bundles={bundle_sha: 1})
    for s in sections:
        index.sections[s.sha256] = SectionSource(bundle_sha, s.offset, s.end)
    return index


def test_rebuild_sends_changed_section_header_and_one_block_per_reused_section(tmp_path: Path) -> None:
    ple = os.urandom(40 * BLOCK + 123)
    old = load_build(write_build(tmp_path / "old", [("ple", ple), ("transformer", os.urandom(10 * BLOCK))]))
    new_transformer = os.urandom(10 * BLOCK + 77)
    new = load_build(write_build(tmp_path / "new", [("ple", ple), ("transformer", new_transformer)]))
    plan = plan_bundle(new, _index_for(old.sha256, old.sections))
    header = new.sections[0].offset
    assert [c.kind for c in plan.copies] == ["ple"]
    # Derived bound: header + the ple's last partial block (+ its padding) + the new transformer section.
    assert plan.bytes_to_send <= header + BLOCK + len(new_transformer)
    assert plan.bytes_copied == (len(ple) // BLOCK) * BLOCK


def test_pieces_resume_by_name_and_size(tmp_path: Path) -> None:
    local = load_build(write_build(tmp_path / "b", _sections([9 * BLOCK])))
    first = plan_bundle(local, DeviceIndex(), grid=4 * BLOCK)
    arrived = first.pieces[0]
    index = DeviceIndex(pieces={arrived.name: arrived.length, first.pieces[1].name: 7})  # second cut short
    again = plan_bundle(local, index, grid=4 * BLOCK)
    assert again.bytes_resumed == arrived.length
    assert again.bytes_to_send == local.bytes - arrived.length


@given(
    start_blocks=st.integers(0, 50),
    length=st.integers(1, 40 * BLOCK),
    grid_blocks=st.integers(1, 8),
)
def test_cut_pieces_tiles_the_range_on_the_grid(start_blocks: int, length: int, grid_blocks: int) -> None:
    start = start_blocks * BLOCK
    grid = grid_blocks * BLOCK
    pieces = cut_pieces(start, start + length, grid)
    assert pieces[0].offset == start
    assert sum(p.length for p in pieces) == length
    for before, after in itertools.pairwise(pieces):
        assert before.offset + before.length == after.offset
        assert after.offset % grid == 0


# -- the generated device script, run by the host shell ------------------------------------------------------


class _PathsOnly:
    """DeviceStore needs a device only for commands; the script generator uses paths alone."""

    serial = "host"


def _run_assembly(root: Path, old_dir: Path | None, new_dir: Path, grid: int) -> tuple[int, Path]:
    from edgeship.android_harness.push import assemble_script, parse_survey, survey_script
    from edgeship.android_harness.store import DeviceStore

    store = DeviceStore(_PathsOnly(), root=str(root))  # type: ignore[arg-type]
    new = load_build(new_dir)
    if old_dir is not None:  # an older verified bundle on the "device", with its section index
        old = load_build(old_dir)
        folder = root / "bundles" / old.sha256
        folder.mkdir(parents=True)
        shutil.copy(old.path, folder / "model.litertlm")
        (folder / "sections.txt").write_text(old.index_text())
    survey = parse_survey(
        subprocess.run(
            ["sh", "-c", survey_script(str(root), new.sha256)], capture_output=True, text=True
        ).stdout
    )
    plan = plan_bundle(new, survey.index, grid=grid)
    staging = root / "staging" / new.sha256
    (staging / "pieces").mkdir(parents=True)
    data = new.path.read_bytes()
    for piece in plan.pieces_to_send:
        (staging / "pieces" / piece.name).write_bytes(data[piece.offset : piece.offset + piece.length])
    attempt = staging / "attempt-test"
    attempt.mkdir()
    for side in new.side_files:
        shutil.copy(side.path, attempt / side.name)
    script = assemble_script(store, new, plan, {}, verify=True, attempt=attempt.name)
    completed = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
    return completed.returncode, root / "bundles" / new.sha256 / "model.litertlm"


@settings(max_examples=15, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 6 * BLOCK), min_size=1, max_size=4),
    changed=st.integers(0, 3),
    grid_blocks=st.integers(1, 4),
)
def test_assembly_script_rebuilds_the_new_bundle_exactly(
    tmp_path_factory: pytest.TempPathFactory, sizes: list[int], changed: int, grid_blocks: int
) -> None:
    tmp = tmp_path_factory.mktemp("asm")
    old_sections = _sections(sizes, seed=1)
    new_sections = list(old_sections)
    index = changed % len(sizes)
    new_sections[index] = (new_sections[index][0], os.urandom(sizes[index] + 3))
    old_dir = write_build(tmp / "old", old_sections, header=b"H1" * 100)
    new_dir = write_build(tmp / "new", new_sections, header=b"H2" * 120)
    code, final = _run_assembly(tmp / "root", old_dir, new_dir, grid_blocks * BLOCK)
    assert code == 0
    assert hashlib.sha256(final.read_bytes()).hexdigest() == load_build(new_dir).sha256
    assert not (tmp / "root" / "staging" / load_build(new_dir).sha256).exists()


def test_assembly_refuses_to_rename_a_wrong_file(tmp_path: Path) -> None:
    sections = _sections([5 * BLOCK, 3 * BLOCK])
    old_dir = write_build(tmp_path / "old", sections)
    # The device's older bundle was tampered with after it was verified: the copy cannot verify.
    new_dir = write_build(tmp_path / "new", sections, header=b"other header")
    old = load_build(old_dir)
    root = tmp_path / "root"
    folder = root / "bundles" / old.sha256
    folder.mkdir(parents=True)
    tampered = bytearray(old.path.read_bytes())
    tampered[old.sections[0].offset + 10] ^= 0xFF
    (folder / "model.litertlm").write_bytes(bytes(tampered))
    (folder / "sections.txt").write_text(old.index_text())
    from edgeship.android_harness.push import EXIT_SHA_MISMATCH

    code, final = _run_assembly_existing(root, new_dir)
    assert code == EXIT_SHA_MISMATCH
    assert not final.exists()
    # The failed attempt removed its own partial file; only the resumable pieces stay.
    assert [p.name for p in (root / "staging" / load_build(new_dir).sha256).iterdir()] == ["pieces"]


def _run_assembly_existing(root: Path, new_dir: Path) -> tuple[int, Path]:
    return _run_assembly(root, None, new_dir, 4 * BLOCK)
