"""Files that only ever appear whole (written to a temporary name in the same folder, then renamed), and
the one rule for a file name that crosses a trust boundary (a manifest's, a device's)."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from edgeship.errors import InputError

# One path component that no shell, option parser or path join can misread: no separator, no `..`, no
# leading `.` (hidden, temporary) or `-` (an option), no whitespace or shell metacharacter.
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]{0,254}")
SAFE_NAME_RULE = "one path component of letters, digits, . _ + - (not starting with . or -)"


def is_safe_name(name: object) -> bool:
    """True for a file name that is ``SAFE_NAME_RULE``."""
    return isinstance(name, str) and _SAFE_NAME.fullmatch(name) is not None


def write_text_atomic(path: Path, text: str, *, mode: int | None = None) -> Path:
    """Write ``text`` to ``path`` so a reader sees the old file or the new one, never half of either.

    The data is fsynced before the rename (a crash must not leave an empty file under the final name);
    ``mode`` None keeps the temporary file's owner-only permissions.
    """
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def read_json_document(
    path: str | Path, file_name: str, missing_hint: str, invalid_hint: str = ""
) -> tuple[Path, Any]:
    """A JSON file contract (or the folder holding ``file_name``): its path and parsed data; a missing or
    unparseable file is an InputError naming it (``missing_hint``: what makes one)."""
    path = Path(path)
    if path.is_dir():
        path = path / file_name
    try:
        return path, json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path} does not exist; {missing_hint}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON ({exc}){invalid_hint}") from None


def refuse_invalid(path: Path, what: str, problems: list[str]) -> None:
    """InputError naming the first of a document's validation problems (and how many more there are)."""
    if problems:
        extra = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InputError(f"{path} is not an {what}: {problems[0]}{extra}")
