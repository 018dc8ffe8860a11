"""The device side of a push: the assembly script runs here under the host's /bin/sh against a folder laid
out like the device store, so the dd arithmetic, the checks and the rename are tested byte for byte without
a device.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeship.android_harness.push.script import (
    ALIVE_STAMP,
    ATTEMPT_LIVE_S,
    ATTEMPT_STALE_S,
    Survey,
    assemble_script,
    data_targets,
    parse_survey,
    survey_script,
)
from edgeship.android_harness.store import (
    BLOCK,
    DeviceIndex,
    DeviceStore,
    index_text,
    partial_name,
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
    timeout: float = 120,
) -> tuple[int, Path, str]:
    """Lay out the store, start the script, then write what the host would send while it runs.

    The data lands in uneven chunks (not block-aligned), the end marker last, as adbd writes a SEND.
    Returns the exit code (-9: still running after ``timeout``, killed), the final path and stderr.
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
    if partial is not None:  # what an interrupted direct push kept (its attempt folder is gone: dead)
        (staging / "pieces" / partial_name("attempt-dead")).write_bytes(partial)
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
    with subprocess.Popen(
        ["sh", "-c", script], stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    ) as process:
        for offset, length, remote in data_targets(store, plan, attempt.name):
            with open(remote, "wb") as target:
                for start in range(offset, offset + length, 7000):
                    target.write(data[start : min(start + 7000, offset + length)])
                    target.flush()
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            _, stderr = process.communicate()
    return process.returncode, root / "bundles" / new.sha256 / "model.litertlm", stderr


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_direct_first_push_is_written_once_and_verified(tmp_path: Path) -> None:
    new_dir = write_build(tmp_path / "new", random_sections([7 * BLOCK + 3, 2 * BLOCK]))
    code, final, _ = _run_assembly(tmp_path / "root", None, new_dir, 4 * BLOCK)
    assert code == 0
    assert _sha(final) == read_build(new_dir).sha256
    assert not (tmp_path / "root" / "staging").joinpath(read_build(new_dir).sha256).exists()


@pytest.mark.parametrize("kept", [BLOCK - 1, 3 * BLOCK, 3 * BLOCK + 500])
def test_direct_push_resumes_from_the_partial_prefix(tmp_path: Path, kept: int) -> None:
    new_dir = write_build(tmp_path / "new", random_sections([7 * BLOCK + 3, 2 * BLOCK]))
    data = read_build(new_dir).bundle_path.read_bytes()
    code, final, _ = _run_assembly(tmp_path / "root", None, new_dir, 4 * BLOCK, partial=data[:kept])
    assert code == 0
    assert _sha(final) == read_build(new_dir).sha256


def test_a_corrupt_partial_fails_the_check_and_nothing_is_renamed(tmp_path: Path) -> None:
    from edgeship.android_harness.push.script import EXIT_SHA_MISMATCH

    new_dir = write_build(tmp_path / "new", random_sections([7 * BLOCK + 3]))
    corrupt = bytearray(read_build(new_dir).bundle_path.read_bytes()[: 4 * BLOCK])
    corrupt[100] ^= 0xFF
    code, final, _ = _run_assembly(tmp_path / "root", None, new_dir, 4 * BLOCK, partial=bytes(corrupt))
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
    code, final, _ = _run_assembly(tmp / "root", old_dir, new_dir, grid_blocks * BLOCK)
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

    code, final, _ = _run_assembly_existing(root, new_dir)
    assert code == EXIT_SHA_MISMATCH
    assert not final.exists()
    # The failed attempt removed its own partial file; only the resumable pieces stay.
    assert [p.name for p in (root / "staging" / read_build(new_dir).sha256).iterdir()] == ["pieces"]


def _run_assembly_existing(root: Path, new_dir: Path) -> tuple[int, Path, str]:
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
    code, final, _ = _run_assembly(tmp_path / "root", None, new_dir, 4 * BLOCK, env=env)
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
    code, final, _ = _run_assembly(tmp_path / "root", None, new_dir, 4 * BLOCK)
    assert code == 0
    assert "broken" not in {p.name for p in final.parent.iterdir()}
    assert _sha(final) == new.sha256
    assert not (tmp_path / "root" / "staging" / new.sha256).exists()


def _survey(root: Path, sha: str) -> Survey:
    text = subprocess.run(["sh", "-c", survey_script(str(root), sha)], capture_output=True, text=True).stdout
    return parse_survey(text)


def _age(path: Path, seconds: float) -> None:
    when = time.time() - seconds
    os.utime(path, (when, when))


def test_liveness_is_read_on_the_device_clock_never_from_sent_files(tmp_path: Path) -> None:
    """Files that came over sync carry the host's clock (DONE's mtime): a host two hours behind must not
    make a live push stale (main compared model.litertlm's mtime with the device clock), and an attempt
    that died before any bundle byte arrived must be found stale (main only looked at model.litertlm)."""
    sha = "c" * 64
    staging = tmp_path / "staging" / sha
    live_sent = staging / "attempt-livesent"  # its bundle arrived with a host mtime two hours old
    (live_sent).mkdir(parents=True)
    (live_sent / "model.litertlm").write_bytes(b"x")
    _age(live_sent / "model.litertlm", 7200)
    (live_sent / ALIVE_STAMP).write_text("")  # its script's heartbeat: just now
    starting = staging / "attempt-starting"  # side files sent, script not started yet
    starting.mkdir()
    (starting / "manifest.json").write_text("{}")
    _age(starting / "manifest.json", 7200)
    dead_beat = staging / "attempt-deadbeat"  # its script stopped beating long ago
    dead_beat.mkdir()
    (dead_beat / ALIVE_STAMP).write_text("")
    _age(dead_beat / ALIVE_STAMP, ATTEMPT_LIVE_S + 5)
    never_sent = staging / "attempt-neversent"  # died before any bundle byte: no model.litertlm at all
    never_sent.mkdir()
    (never_sent / "manifest.json").write_text("{}")
    _age(never_sent, ATTEMPT_STALE_S + 5)
    assert sorted(_survey(tmp_path, sha).stale_attempts) == ["attempt-deadbeat", "attempt-neversent"]


def test_only_a_dead_pushs_partial_may_be_taken(tmp_path: Path) -> None:
    sha = "d" * 64
    staging = tmp_path / "staging" / sha
    (staging / "pieces").mkdir(parents=True)
    (staging / "attempt-live").mkdir()
    (staging / "attempt-live" / ALIVE_STAMP).write_text("")
    for owner, size in (("attempt-live", 5 * BLOCK), ("attempt-gone", 3 * BLOCK)):
        (staging / "pieces" / partial_name(owner)).write_bytes(b"p" * size)
    (staging / "pieces" / "partial").write_bytes(b"p" * 9 * BLOCK)  # an older edgeship's: never taken
    (staging / "pieces" / "0-16384").write_bytes(b"g" * BLOCK)
    index = _survey(tmp_path, sha).index
    assert index.partials == {partial_name("attempt-gone"): 3 * BLOCK}
    assert index.pieces == {"0-16384": BLOCK}


def test_names_with_newlines_in_the_store_are_skipped_not_misread(tmp_path: Path) -> None:
    """A file named "x\\n16384 0-16384" in the pieces folder must not pass for a piece that arrived (main
    read it as piece 0-16384 and its rebuild then waited 600 s for a file that was never there)."""
    sha = "f" * 64
    pieces = tmp_path / "staging" / sha / "pieces"
    pieces.mkdir(parents=True)
    (pieces / "x\n16384 0-16384").write_bytes(b"x")
    assert _survey(tmp_path, sha).index.pieces == {}


def test_a_finished_bundle_is_never_linked_from_staging(tmp_path: Path) -> None:
    """The partial link is dropped before the rename (main left it while another attempt folder existed,
    and a later resume's `truncate` then rewrote the verified bundle in place)."""
    new_dir = write_build(tmp_path / "new", random_sections([7 * BLOCK + 3]))
    new = read_build(new_dir)
    other = tmp_path / "root" / "staging" / new.sha256 / "attempt-other"  # another push of it, still going
    other.mkdir(parents=True)
    (other / ALIVE_STAMP).write_text("")
    code, final, _ = _run_assembly(tmp_path / "root", None, new_dir, 4 * BLOCK)
    assert code == 0 and _sha(final) == new.sha256
    assert final.stat().st_nlink == 1
    # The other push's folder keeps the pieces folder (it may still use it); ours left nothing in it.
    assert list((tmp_path / "root" / "staging" / new.sha256 / "pieces").iterdir()) == []
    assert sorted(p.name for p in final.parent.iterdir()) == [
        "manifest.json",
        "model.litertlm",
        "tokenizer.json",
    ]


def test_a_verified_push_replaces_an_unverified_folder_of_the_right_size(tmp_path: Path) -> None:
    """A --no-verify push's folder at the final path is not "as good as ours" for a verified push."""
    new_dir = write_build(tmp_path / "new", random_sections([5 * BLOCK + 7]))
    new = read_build(new_dir)
    unchecked = _verified_folder(tmp_path / "root" / "bundles" / new.sha256, new_dir, "unverified")
    with (unchecked / "model.litertlm").open("r+b") as handle:  # same size, wrong bytes
        handle.seek(BLOCK)
        handle.write(b"\0" * 64)
    code, final, _ = _run_assembly(tmp_path / "root", None, new_dir, 4 * BLOCK)
    assert code == 0
    assert _sha(final) == new.sha256
    assert "unverified" not in {p.name for p in final.parent.iterdir()}


def test_a_rebuild_whose_writer_dies_ends_at_once(tmp_path: Path) -> None:
    """The background writer dies without leaving its exit status — what a full disk does (the status file
    cannot be written) or the low-memory killer. Main's reader then waited the full 600 s for data from a
    writer that was gone; the script must end at once, naming the writer."""
    sections = random_sections([5 * BLOCK, 3 * BLOCK])
    old_dir = write_build(tmp_path / "old", sections)
    new_dir = write_build(tmp_path / "new", sections, header=b"another header")
    shim = tmp_path / "shim"
    shim.mkdir()
    # dd copying from the older bundle kills the writer (its grandparent), then fails.
    (shim / "dd").write_text(
        "#!/bin/sh\n"
        'case "$1" in if=*/bundles/*)\n'
        "  read -r _ _ _ writer _ < /proc/$PPID/stat; kill -9 $writer; exit 1;;\n"
        "esac\n"
        f'exec {shutil.which("dd")} "$@"\n'
    )
    (shim / "dd").chmod(0o755)
    env = {**os.environ, "PATH": f"{shim}:{os.environ['PATH']}"}
    started = time.monotonic()
    code, final, stderr = _run_assembly(tmp_path / "root", old_dir, new_dir, 4 * BLOCK, env=env, timeout=60)
    assert code not in (0, -9), f"exit {code} after {time.monotonic() - started:.0f} s: {stderr[-300:]}"
    assert "writer" in stderr and not final.exists()


@pytest.mark.parametrize("shell", ["mksh", "sh"])
def test_a_hung_up_push_removes_its_attempt_at_once_and_keeps_its_prefix(tmp_path: Path, shell: str) -> None:
    """adbd HUPs the script when the host goes. Under mksh (a phone's sh) with `set -e`, main's HUP trap
    (`exit 129`, cleanup left to the EXIT trap) never tidied up: the hashing pipeline the signal failed took
    the shell out through errexit and the trap's `exit` skipped the EXIT trap, so the attempt folder and its
    `alive` stamp stayed and a re-push could not take the partial prefix for ATTEMPT_LIVE_S."""
    new_dir = write_build(tmp_path / "new", random_sections([9 * BLOCK + 5]))
    new = read_build(new_dir)
    root = tmp_path / "root"
    store = DeviceStore(_PathsOnly(), root=str(root))  # type: ignore[arg-type]
    staging = root / "staging" / new.sha256
    attempt = staging / "attempt-hup"
    attempt.mkdir(parents=True)
    for side in side_files(new):
        shutil.copy(side.path, attempt / side.name)
    plan = plan_transfer(new, DeviceIndex(), grid=4 * BLOCK)
    script = assemble_script(store, new, plan, {}, verify=True, attempt=attempt.name)
    prefix = new.bundle_path.read_bytes()[: 3 * BLOCK]
    with subprocess.Popen([shell, "-c", script], stderr=subprocess.PIPE, start_new_session=True) as process:
        (_, _, remote), *_ = data_targets(store, plan, attempt.name)
        Path(remote).write_bytes(prefix)  # part of the SEND arrived, then the host went
        partial = staging / "pieces" / partial_name(attempt.name)
        deadline = time.monotonic() + 30
        while not partial.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert partial.exists(), "the script never linked the arriving file"
        os.killpg(process.pid, signal.SIGHUP)
        process.wait(timeout=30)
    assert not attempt.exists()
    assert partial.read_bytes() == prefix
