"""GitHub-flavoured pipe tables (a CI step summary, a PR comment): the one place cells are escaped."""

from __future__ import annotations

from collections.abc import Sequence


def cell(text: object) -> str:
    """A table cell: pipes escaped, line breaks folded (either would end the row)."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def pipe_table(headers: Sequence[str], rows: Sequence[Sequence[object]], right: Sequence[int] = ()) -> str:
    """A table with a header row; columns whose index is in ``right`` are right-aligned."""
    lines = ["| " + " | ".join(cell(h) for h in headers) + " |"]
    lines.append("|" + "|".join("---:" if i in right else "---" for i in range(len(headers))) + "|")
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)
