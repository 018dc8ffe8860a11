"""The tagged-script protocol: one shell script per question, its output cut into sections by '@tag' lines.

A round trip to a phone behind a USB hub costs more than any command it runs, so facts, the push survey,
the store's free space and gc each ask everything in ONE script that prints ``echo '@name'`` before each
part and ``@end`` last; ``split_sections`` cuts the output apart and pure parsers read each part (tested on
captured output). Shell fragments more than one script needs live here too.
"""

from __future__ import annotations

import re

from edgeship.android_harness.adb.quoting import Line, script, sh

END = "end"
_TAG_LINE = re.compile(r"@[a-z_]+")


def tag(name: str) -> Line:
    """The shell line that opens section ``name``."""
    if not _TAG_LINE.fullmatch(f"@{name}"):
        raise ValueError(f"section tag {name!r} must be lowercase letters and _")
    return sh("echo {tag}", tag=f"@{name}")


def split_sections(text: str) -> tuple[list[str], dict[str, list[str]]]:
    """Lines before the first '@tag' line, and the lines of each tagged section."""
    head: list[str] = []
    sections: dict[str, list[str]] = {}
    current: list[str] = head
    for line in text.splitlines():
        if line.startswith("@") and _TAG_LINE.fullmatch(line.strip()):
            current = sections.setdefault(line.strip()[1:], [])
            continue
        current.append(line)
    return head, sections


def df_section(root: str) -> Line:
    """Shell: section ``@df``, `df -k` of ``root``'s nearest existing folder (the root itself may not exist
    before the first push); read it with ``parse_df_available(sections["df"])``."""
    return script(
        sh(
            'd={root}; while [ -n "$d" ] && [ ! -d "$d" ]; do d="${d%/*}"; done; [ -n "$d" ] || d=/',
            root=root,
        ),
        sh('{tag}; df -k -P "$d" 2>/dev/null || df -k "$d" 2>/dev/null', tag=tag("df")),
    )


def parse_df_available(lines: list[str]) -> int | None:
    """Available bytes from `df -k` output (the 4th column of the data line, in 1 KiB blocks)."""
    rows = [line.split() for line in lines if line.strip()]
    if len(rows) < 2:
        return None
    data = rows[1]
    # A long filesystem name may wrap onto its own line; the numbers are then on the next line.
    if len(data) == 1 and len(rows) > 2:
        data = data + rows[2]
    if len(data) >= 4 and data[3].isdigit():
        return int(data[3]) * 1024
    return None
