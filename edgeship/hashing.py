"""Streamed digests: never read a multi-GB bundle into memory."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

CHUNK_BYTES = 4 * 1024 * 1024


def sha256_file(path: str | Path, offset: int = 0, length: int | None = None) -> str:
    """sha256 of ``length`` bytes of ``path`` from ``offset`` (the whole rest of the file when None).

    One reused buffer (readinto): a multi-GB bundle costs no allocation per chunk.
    """
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK_BYTES)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        handle.seek(offset)
        remaining = length
        while remaining is None or remaining > 0:
            want = CHUNK_BYTES if remaining is None else min(CHUNK_BYTES, remaining)
            got = handle.readinto(view[:want])
            if not got:
                break
            digest.update(view[:got])
            if remaining is not None:
                remaining -= got
    return digest.hexdigest()


def sha256_files(paths: Iterable[str | Path], reuse_known: bool = False) -> str:
    """One digest over several files in the given order (name and content), e.g. sharded weights.

    ``reuse_known``: each file's digest through ``cached_sha256`` (below), so checking a GB checkpoint a
    second time costs no read.
    """
    digest = hashlib.sha256()
    for path in paths:
        path = Path(path)
        file_digest = cached_sha256(path) if reuse_known else sha256_file(path)
        digest.update(path.name.encode() + b"\0")
        digest.update(bytes.fromhex(file_digest))
    return digest.hexdigest()


# -- digests already known -----------------------------------------------------------------------------------
# A GB bundle costs seconds to hash, and every `edgeship push`/`profile` checks it against its manifest before
# sending anything. Like git's index or make, a digest is remembered with the file's identity: device, inode,
# size, mtime and ctime (nanoseconds). ctime cannot be set from user space, so any write, truncate, rename
# over it or copy gives another identity and the file is hashed again. The device's own sha256sum stays the
# check that counts; this only spares the host a repeat of a check it already made.


def edgeship_cache_dir(name: str) -> Path:
    """``$EDGESHIP_HOME/<name>``, else ``$XDG_CACHE_HOME/edgeship/<name>`` (``~/.cache`` by default)."""
    home = os.environ.get("EDGESHIP_HOME")
    if home:
        return Path(home) / name
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "edgeship" / name


def _known_digests_dir() -> Path:
    return edgeship_cache_dir("known-sha256")


def file_identity(path: str | Path) -> str:
    """What changes whenever the file's bytes may have: path, device, inode, size, mtime and ctime (ns)."""
    path = Path(path)
    info = path.stat()
    parts = (path.resolve(), info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
    return "\0".join(str(part) for part in parts)


def _identity_entry(path: Path, identity: str | None = None) -> Path:
    identity = file_identity(path) if identity is None else identity
    return _known_digests_dir() / hashlib.sha256(identity.encode()).hexdigest()


def known_sha256(path: str | Path) -> str | None:
    """The sha256 recorded for this very file (same identity), or None."""
    try:
        text = _identity_entry(Path(path)).read_text().strip()
    except OSError:
        return None
    return text if len(text) == 64 else None


def cached_sha256(path: str | Path) -> str:
    """The file's sha256: the one recorded for its identity, else computed now and recorded.

    Recorded only when the identity after hashing is the one before: a file written to meanwhile (a build
    still being copied in) gave a digest of bytes that are no longer all there.
    """
    known = known_sha256(path)
    if known is not None:
        return known
    before = file_identity(path)
    digest = sha256_file(path)
    if file_identity(path) == before:
        remember_sha256(path, digest, identity=before)
    return digest


def remember_sha256(path: str | Path, sha256: str, *, identity: str | None = None) -> None:
    """Record the file's sha256 under its identity (``identity``: as taken before hashing it); best effort
    (a read-only home just means rehashing)."""
    with contextlib.suppress(OSError):
        entry = _identity_entry(Path(path), identity)
        entry.parent.mkdir(parents=True, exist_ok=True)
        temporary = entry.with_name(f".{entry.name}.{os.getpid()}")
        temporary.write_text(sha256 + "\n")
        os.replace(temporary, entry)
