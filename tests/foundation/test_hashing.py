from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from edgeship import hashing
from edgeship.hashing import known_sha256, remember_sha256


def test_sha256_file_ranges_match_hashlib(tmp_path: Path) -> None:
    data = os.urandom(hashing.CHUNK_BYTES + 12345)
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert hashing.sha256_file(path) == hashlib.sha256(data).hexdigest()
    assert hashing.sha256_file(path, 100, 5000) == hashlib.sha256(data[100:5100]).hexdigest()
    assert hashing.sha256_file(path, len(data) - 10) == hashlib.sha256(data[-10:]).hexdigest()


def test_sha256_files_depends_on_names_and_content(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"1")
    (tmp_path / "b").write_bytes(b"1")
    assert hashing.sha256_files([tmp_path / "a"]) != hashing.sha256_files([tmp_path / "b"])


def test_a_known_digest_is_tied_to_the_files_identity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGESHIP_HOME", str(tmp_path / "home"))
    bundle = tmp_path / "model.litertlm"
    bundle.write_bytes(b"a" * 1000)
    digest = hashlib.sha256(bundle.read_bytes()).hexdigest()
    assert known_sha256(bundle) is None
    remember_sha256(bundle, digest)
    assert known_sha256(bundle) == digest
    # Same size, mtime put back: the write still changed ctime, so the digest is no longer known.
    before = bundle.stat()
    time.sleep(0.01)
    with bundle.open("r+b") as handle:
        handle.write(b"b")
    os.utime(bundle, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert bundle.stat().st_size == before.st_size and bundle.stat().st_mtime_ns == before.st_mtime_ns
    assert known_sha256(bundle) is None
    # A copy is another file.
    copy = tmp_path / "copy.litertlm"
    copy.write_bytes(bundle.read_bytes())
    assert known_sha256(copy) is None


def test_a_tampered_bundle_is_refused_even_after_a_successful_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgeship.errors import InputError
    from edgeship.exporter import manifest
    from tests.android_harness.synthetic import write_build

    monkeypatch.setenv("EDGESHIP_HOME", str(tmp_path / "home"))
    build = write_build(tmp_path / "b", [("tf_lite_prefill_decode", os.urandom(50_000))])
    local = manifest.read_build(build, verify=True)  # checked and remembered
    assert known_sha256(local.bundle_path) == local.sha256
    manifest._VERIFIED.clear()  # a new process: only the on-disk record remains
    manifest.read_build(build, verify=True)
    with local.bundle_path.open("r+b") as handle:
        handle.seek(-1, os.SEEK_END)
        last = handle.read(1)[0]
        handle.seek(-1, os.SEEK_END)
        handle.write(bytes([last ^ 0xFF]))
    manifest._VERIFIED.clear()
    with pytest.raises(InputError, match="does not match its manifest"):
        manifest.read_build(build, verify=True)


def test_a_file_changed_while_it_is_hashed_is_not_remembered_with_the_old_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The identity is taken before and after hashing; main recorded the digest of the old bytes under the
    changed file's identity, so the changed file then passed for the old one without being read."""
    monkeypatch.setenv("EDGESHIP_HOME", str(tmp_path / "home"))
    bundle = tmp_path / "model.litertlm"
    bundle.write_bytes(b"a" * 1000)
    real_sha256_file = hashing.sha256_file

    def hashed_while_a_writer_appends(path: str | Path, *args: object) -> str:
        digest = real_sha256_file(path, *args)  # type: ignore[arg-type]
        with open(path, "ab") as handle:  # a build still being written, a copy still arriving
            handle.write(b"more")
        return digest

    monkeypatch.setattr(hashing, "sha256_file", hashed_while_a_writer_appends)
    hashing.cached_sha256(bundle)
    assert known_sha256(bundle) is None
    monkeypatch.setattr(hashing, "sha256_file", real_sha256_file)
    assert hashing.cached_sha256(bundle) == hashlib.sha256(bundle.read_bytes()).hexdigest()
    assert known_sha256(bundle) == hashlib.sha256(bundle.read_bytes()).hexdigest()  # unchanged: recorded
