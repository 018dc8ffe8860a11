"""What report, gate and plan write: every output rendered first, then each file replaced atomically.

A reader (a browser, a CI upload step) never sees half a file, and a failure while rendering leaves every
output path as it was.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

STDOUT = "-"


def write_text_atomic(path: Path, text: str, fsync: bool = True) -> None:
    """Temp file in the same folder, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            if fsync:
                os.fsync(out.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def write_outputs(outputs: dict[str, str]) -> list[str]:
    """Write each ``{path or "-": text}``; "-" goes to stdout. Returns the file paths written."""
    written = []
    for target, text in outputs.items():
        if target == STDOUT:
            sys.stdout.write(text)
            sys.stdout.flush()
            continue
        write_text_atomic(Path(target), text)
        written.append(target)
    return written
