"""The device side of a push: the assembly script runs here under the host's /bin/sh against a folder laid
out like the device store, so the dd arithmetic, the checks and the rename are tested byte for byte without
a device.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeship.android_harness.push.script import assemble_script, data_targets, parse_survey, survey_script
from edgeship.android_harness.store import (
    BLOCK,
    PARTIAL_NAME,
    DeviceStore,
    index_text,
    plan_transfer,
    side_files,
)
from edgeship.exporter.manifest import read_build
from tests.android_harness.synthetic import random_sections, write_build


class _PathsOnly:
    """DeviceStore needs a device only for commands; the script generator uses paths alone."""

    serial = "host"


def _run_assembly(
    root: Path,
    old_dir: Path | None,
    new_dir: Path,
    grid: int,
    partial: bytes | None = None,
    env: dict[str, str] | None = None,
) -> tuple[int, Path]:
    """Lay out the store, start the script, then write what the host would send while it runs.

    The data lands in uneven chunks (not block-aligned), the end marker last, as adbd writes a SEND.
    """
    store = DeviceStore(_PathsOnly(), root=str(root))  # type: ignore[arg-type]
    new = read_build(new_dir)
    if old_dir is not None:  # an older verified bundle on the "device", with its section index
        old = read_build(old_dir)
        folder = root / "bundles" / old.sha256
        folder.mkdir(parents=True)
        shutil.copy(old.bundle_path, folder / "model.litertlm")
        (folder / "sections.txt").write_text(index_text(old, side_files(old)))
    staging = root / "staging" / new.sha256
    (staging / "pieces").mkdir(parents=True)
    if partial is not None:  # what an interrupted direct push kept
        (staging / "pieces" / PARTIAL_NAME).write_bytes(partial)
    survey = parse_survey(
        subprocess.run(
            ["sh", "-c", survey_script(str(root), new.sha256)], capture_output=True, text=True
        ).stdout
    )
    plan = plan_transfer(new, survey.index, grid=grid)
    attempt = staging / "attempt-test"
    attempt.mkdir()
    for side in side_files(new):
        shutil.copy(side.path, attempt / side.name)
    script = assemble_script(store, new, plan, {}, verify=True, attempt=attempt.name)
    data = new.bundle_path.read_bytes()
    with subprocess.Popen(["sh", "-c", script], stderr=subprocess.PIPE, text=True, env=env) as process:
        for offset, length, remote in data_targets(store, plan, attempt.name):
            with open(remote, "wb") as target:
                for start in range(offset, offset + length, 7000):
                    target.write(data[start : min(start + 7000, offset + length)])
                    target.flush()
        process.communicate(timeout=120)
    return process.returncode, root / "bundles" / new.sha256 / "model.litertlm"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_direct_first_push_is_written_once_and_verified(tmp_path: Path) -> None:
    new_dir = write_build(tmp_path / "new", random_sections([7 * BLOCK + 3, 2 * BLOCK]))
    code, final = _run_assembly(tmp_path / "root", None, new_dir, 4 * BLOCK)
    assert code == 0
    assert _sha(final) == read_build(new_dir).sha256
    assert not (tmp_path / "root" / "staging").joinpath(read_build(new_dir).sha256).exists()


@pytest.mark.parametrize("kept", [BLOCK - 1, 3 * BLOCK, 3 * BLOCK + 500])
def test_direct_push_resumes_from_the_partial_prefix(tmp_path: Path, kept: int) -> None:
    new_dir = write_build(tmp_path / "new", random_sections([7 * BLOCK + 3, 2 * BLOCK]))
    data = read_build(new_dir).bundle_path.read_bytes()
    code, final = _run_assembly(tmp_path / "root", None, new_dir, 4 * BLOCK, partial=data[:kept])
    assert code == 0
    assert _sha(final) == read_build(new_dir).sha256


def test_a_corrupt_partial_fails_the_check_and_nothing_is_renamed(tmp_path: Path) -> None:
    from edgeship.android_harness.push.script import EXIT_SHA_MISMATCH

    new_dir = write_build(tmp_path / "new", random_sections([7 * BLOCK + 3]))
    corrupt = bytearray(read_build(new_dir).bundle_path.read_bytes()[: 4 * BLOCK])
    corrupt[100] ^= 0xFF
    code, final = _run_assembly(tmp_path / "root", None, new_dir, 4 * BLOCK, partial=bytes(corrupt))
    assert code == EXIT_SHA_MISMATCH
    assert not final.exists()


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
    old_sections = random_sections(sizes, seed=1)
    new_sections = list(old_sections)
    index = changed % len(sizes)
    new_sections[index] = (new_sections[index][0], os.urandom(sizes[index] + 3))
    old_dir = write_build(tmp / "old", old_sections, header=b"H1" * 100)
    new_dir = write_build(tmp / "new", new_sections, header=b"H2" * 120)
    code, final = _run_assembly(tmp / "root", old_dir, new_dir, grid_blocks * BLOCK)
    assert code == 0
    assert _sha(final) == read_build(new_dir).sha256
    assert not (tmp / "root" / "staging" / read_build(new_dir).sha256).exists()


def test_assembly_refuses_to_rename_a_wrong_file(tmp_path: Path) -> None:
    sections = random_sections([5 * BLOCK, 3 * BLOCK])
    old_dir = write_build(tmp_path / "old", sections)
    # The device's older bundle was tampered with after it was verified: the copy cannot verify.
    new_dir = write_build(tmp_path / "new", sections, header=b"other header")
    old = read_build(old_dir)
    root = tmp_path / "root"
    folder = root / "bundles" / old.sha256
    folder.mkdir(parents=True)
    tampered = bytearray(old.bundle_path.read_bytes())
    tampered[old.sections[0].offset + 10] ^= 0xFF
    (folder / "model.litertlm").write_bytes(bytes(tampered))
    (folder / "sections.txt").write_text(index_text(old, side_files(old)))
    from edgeship.android_harness.push.script import EXIT_SHA_MISMATCH

    code, final = _run_assembly_existing(root, new_dir)
    assert code == EXIT_SHA_MISMATCH
    assert not final.exists()
    # The failed attempt removed its own partial file; only the resumable pieces stay.
    assert [p.name for p in (root / "staging" / read_build(new_dir).sha256).iterdir()] == ["pieces"]


def _run_assembly_existing(root: Path, new_dir: Path) -> tuple[int, Path]:
    return _run_assembly(root, None, new_dir, 4 * BLOCK)


def _verified_folder(folder: Path, build_dir: Path, marker: str) -> Path:
    """A bundle folder as a finished push leaves it, with a marker saying whose it is."""
    folder.mkdir(parents=True)
    shutil.copy(read_build(build_dir).bundle_path, folder / "model.litertlm")
    (folder / marker).write_text("")
    return folder


def test_a_push_losing_the_rename_race_leaves_the_winner_in_place(tmp_path: Path) -> None:
    """Another push renames its verified folder into place after our check, just before our rename."""
    new_dir = write_build(tmp_path / "new", random_sections([5 * BLOCK + 7]))
    new = read_build(new_dir)
    theirs = _verified_folder(tmp_path / "theirs", new_dir, "theirs")
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "mv").write_text(
        "#!/bin/sh\n"
        "for last; do :; done\n"
        f'case "$1" in */attempt-test) [ -e "$last" ] || cp -R {theirs} "$last";; esac\n'
        f'exec {shutil.which("mv")} "$@"\n'
    )
    (shim / "mv").chmod(0o755)
    env = {**os.environ, "PATH": f"{shim}:{os.environ['PATH']}"}
    code, final = _run_assembly(tmp_path / "root", None, new_dir, 4 * BLOCK, env=env)
    assert code == 0
    assert sorted(p.name for p in final.parent.iterdir()) == ["model.litertlm", "theirs"]
    assert _sha(final) == new.sha256
    assert not (tmp_path / "root" / "staging" / new.sha256).exists()


def test_a_tampered_folder_at_the_final_path_is_replaced(tmp_path: Path) -> None:
    new_dir = write_build(tmp_path / "new", random_sections([5 * BLOCK + 7]))
    new = read_build(new_dir)
    broken = _verified_folder(tmp_path / "root" / "bundles" / new.sha256, new_dir, "broken")
    with (broken / "model.litertlm").open("ab") as handle:
        handle.write(b"tail")  # no longer the verified size
    code, final = _run_assembly(tmp_path / "root", None, new_dir, 4 * BLOCK)
    assert code == 0
    assert "broken" not in {p.name for p in final.parent.iterdir()}
    assert _sha(final) == new.sha256
    assert not (tmp_path / "root" / "staging" / new.sha256).exists()
