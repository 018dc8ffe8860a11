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
    before the first push); read it with ``parse_df_available(sections["df"])``. Android 5's toolbox df
    knows no options (it prints sizes like "8.2G" whatever it is given): the last fallback is plain df."""
    return script(
        sh(
            'd={root}; while [ -n "$d" ] && [ ! -d "$d" ]; do d="${d%/*}"; done; [ -n "$d" ] || d=/',
            root=root,
        ),
        sh(
            '{tag}; df -k -P "$d" 2>/dev/null || df -k "$d" 2>/dev/null || df "$d" 2>/dev/null', tag=tag("df")
        ),
    )


# Column titles of the free space: coreutils/toybox `df -k -P` "Available", busybox "Available" or
# "Avail", Android 5 toolbox "Free" (with sizes like 8.2G).
_FREE_COLUMNS = ("Available", "Avail", "Free")
_HUMAN_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?)([KMGT])")
_UNIT = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_df_available(lines: list[str]) -> int | None:
    """Available bytes from df output: the free column of the data line after the last header line.

    `df -k` columns count 1 KiB blocks; Android 5's toolbox prints one decimal and a unit instead ("8.2G",
    rounded: within 0.05 of a unit). A fallback that ran after a failed first try may have printed a header
    of its own, so the last header counts.
    """
    rows = [line.split() for line in lines if line.strip()]
    headers = [i for i, row in enumerate(rows) if row[0] == "Filesystem"]
    if not headers:
        return None
    header = rows[headers[-1]]
    column = next((header.index(name) for name in _FREE_COLUMNS if name in header), 3)
    data = [row for row in rows[headers[-1] + 1 :] if not row[0].endswith(":")]  # skip "path: error" lines
    if not data:
        return None
    values = data[0]
    # A long filesystem name may wrap onto its own line; the numbers are then on the next line.
    if len(values) == 1 and len(data) > 1:
        values = values + data[1]
    if len(values) <= column:
        return None
    value = values[column]
    if value.isdigit():
        return int(value) * 1024
    human = _HUMAN_SIZE.fullmatch(value)
    return int(float(human.group(1)) * _UNIT[human.group(2)]) if human else None
