"""The transfer plan: what is copied on the device and what is sent (push/test_script.py checks that
together they rebuild the bundle byte for byte)."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeship.android_harness.store import (
    BLOCK,
    DeviceIndex,
    SectionSource,
    cut_pieces,
    partial_name,
    plan_transfer,
    side_files,
)
from edgeship.exporter.manifest import read_build
from tests.android_harness.synthetic import random_sections, write_build

DEAD = partial_name("attempt-dead")  # the partial prefix a dead push left


def test_a_build_and_the_side_files_that_travel_with_it(tmp_path: Path) -> None:
    build = write_build(tmp_path / "b", random_sections([40_000, 70_001]))
    local = read_build(build)
    manifest = json.loads((build / "manifest.json").read_text())
    assert local.sha256 == manifest["bundle"]["sha256"]
    assert [s.sha256 for s in local.sections] == [s["sha256"] for s in manifest["sections"]]
    assert {f.name for f in side_files(local)} == {"manifest.json", "tokenizer.json"}


def test_fresh_device_gets_the_whole_bundle_as_one_direct_file(tmp_path: Path) -> None:
    local = read_build(write_build(tmp_path / "b", random_sections([3 * BLOCK + 5, 2 * BLOCK])))
    plan = plan_transfer(local, DeviceIndex(), grid=4 * BLOCK)
    assert plan.copies == [] and plan.direct and plan.direct_from == 0
    assert [(p.offset, p.length) for p in plan.pieces_to_send] == [(0, local.bytes)]
    assert plan.bytes_to_send == local.bytes and plan.bytes_resumed == 0


@pytest.mark.parametrize("extra", [0, 1, BLOCK - 1])
def test_direct_push_resumes_from_the_last_whole_block_of_the_partial(tmp_path: Path, extra: int) -> None:
    local = read_build(write_build(tmp_path / "b", random_sections([9 * BLOCK + 7])))
    arrived = 5 * BLOCK + extra
    plan = plan_transfer(local, DeviceIndex(partials={DEAD: arrived}))
    assert plan.direct_from == 5 * BLOCK and plan.partial == DEAD
    assert plan.bytes_resumed == 5 * BLOCK
    assert plan.bytes_to_send == local.bytes - 5 * BLOCK
    # Without reuse (the retry after a failed check) the partial is ignored.
    assert plan_transfer(local, DeviceIndex(partials={DEAD: arrived}), reuse=False).direct_from == 0


def test_the_longest_dead_prefix_is_the_one_taken(tmp_path: Path) -> None:
    local = read_build(write_build(tmp_path / "b", random_sections([9 * BLOCK + 7])))
    other = partial_name("attempt-other")
    plan = plan_transfer(local, DeviceIndex(partials={DEAD: 2 * BLOCK, other: 6 * BLOCK + 1}))
    assert plan.partial == other and plan.direct_from == 6 * BLOCK
    shorter_than_a_block = plan_transfer(local, DeviceIndex(partials={DEAD: BLOCK - 1}))
    assert shorter_than_a_block.direct_from == 0 and shorter_than_a_block.partial is None


def test_a_partial_as_long_as_the_bundle_still_sends_its_last_block(tmp_path: Path) -> None:
    local = read_build(write_build(tmp_path / "b", random_sections([4 * BLOCK + 9])))
    plan = plan_transfer(local, DeviceIndex(partials={DEAD: local.bytes}))
    assert 0 < plan.bytes_to_send <= BLOCK
    assert plan.bytes_to_send + plan.bytes_resumed == local.bytes


def _index_for(local_sha: str, sections: list, bundle_sha: str = "a" * 64) -> DeviceIndex:
    index = DeviceIndex(bundles={bundle_sha: 1})
    for s in sections:
        index.sections[s.sha256] = SectionSource(bundle_sha, s.offset, s.end)
    return index


def test_rebuild_sends_changed_section_header_and_one_block_per_reused_section(tmp_path: Path) -> None:
    ple = os.urandom(40 * BLOCK + 123)
    old = read_build(write_build(tmp_path / "old", [("ple", ple), ("transformer", os.urandom(10 * BLOCK))]))
    new_transformer = os.urandom(10 * BLOCK + 77)
    new = read_build(write_build(tmp_path / "new", [("ple", ple), ("transformer", new_transformer)]))
    plan = plan_transfer(new, _index_for(old.sha256, old.sections))
    header = new.sections[0].offset
    assert [c.kind for c in plan.copies] == ["ple"]
    # Derived bound: header + the ple's last partial block (+ its padding) + the new transformer section.
    assert plan.bytes_to_send <= header + BLOCK + len(new_transformer)
    assert plan.bytes_copied == (len(ple) // BLOCK) * BLOCK


def test_pieces_resume_by_name_and_size(tmp_path: Path) -> None:
    ple = os.urandom(8 * BLOCK)
    old = read_build(write_build(tmp_path / "old", [("ple", ple), ("transformer", os.urandom(9 * BLOCK))]))
    new = read_build(write_build(tmp_path / "new", [("ple", ple), ("transformer", os.urandom(9 * BLOCK))]))
    index = _index_for(old.sha256, old.sections)
    first = plan_transfer(new, index, grid=4 * BLOCK)
    assert not first.direct and len(first.pieces) >= 3
    arrived = first.pieces[0]
    index.pieces = {arrived.name: arrived.length, first.pieces[1].name: 7}  # the second was cut short
    again = plan_transfer(new, index, grid=4 * BLOCK)
    assert again.bytes_resumed == arrived.length
    assert again.bytes_to_send == first.bytes_to_send - arrived.length


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
