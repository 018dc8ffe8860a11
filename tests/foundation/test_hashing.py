from __future__ import annotations

import hashlib
import os
from pathlib import Path

from edgeship import hashing


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
