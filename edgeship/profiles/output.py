"""What report, gate and plan write: every output rendered first, then each file replaced atomically.

A reader (a browser, a CI upload step) never sees half a file, and a failure while rendering leaves every
output path as it was.
"""

from __future__ import annotations

import sys
from pathlib import Path

from edgeship.files import write_text_atomic

STDOUT = "-"


def write_outputs(outputs: dict[str, str]) -> list[str]:
    """Write each ``{path or "-": text}``; "-" goes to stdout. Returns the file paths written."""
    written = []
    for target, text in outputs.items():
        if target == STDOUT:
            sys.stdout.write(text)
            sys.stdout.flush()
            continue
        path = Path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, text, mode=0o644)  # a report is read by others (a CI upload, a browser)
        written.append(target)
    return written
