"""Device shell text, quoted by construction: ``sh(template, **words)`` and ``script(*lines)``.

A device script is shell text, and a name from a manifest, a device listing or a user must reach it as one
quoted word, never as code. So scripts are not built with f-strings: a line is ``sh`` of a *literal*
template whose ``{name}`` fields are filled with quoted words (a test checks that every template in the
package is a literal), and ``script`` joins only such lines — a plain string is refused, so text that
skipped the quoting cannot be added by accident.

    sh('cp {source} "$A"/{name} || exit {code}', source=path, name=tokenizer, code=5)
    →  cp '/data/…/tok$(id).json' "$A"/'tok$(id).json' || exit 5

A field is ``{identifier}`` not preceded by ``$``, so the shell's own ``${var}``, ``{ …; }`` groups and
``$((…))`` stay as written. Words: ``str`` (quoted with shlex.quote), ``int`` and finite ``float``
(digits as they are), a ``Line`` (already-built shell text, inserted as it is), or a list/tuple of words
(each rendered, joined by spaces: an argv).
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Iterable, Sequence
from typing import Union

Word = Union[str, int, float, "Line", Sequence["Word"]]

_FIELD = re.compile(r"(?<!\$)\{([a-z_][a-z0-9_]*)\}")


class Line(str):
    """Shell text made by ``sh`` or ``script``: every word a caller put into it was quoted."""

    __slots__ = ()


def word(value: Word) -> str:
    """One value as shell text: strings quoted, numbers as digits, lines as they are, sequences joined."""
    if isinstance(value, Line):
        return str(value)
    if isinstance(value, str):
        return shlex.quote(value)
    if isinstance(value, bool):
        raise TypeError("a bool is not a shell word; pass 0/1 or a string")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} is not a shell number")
        return repr(value)
    if isinstance(value, (list, tuple)):
        return " ".join(word(item) for item in value)
    raise TypeError(f"{type(value).__name__} is not a shell word")


def sh(template: str, /, **words: Word) -> Line:
    """A line (or a few) of device shell: ``template`` with each ``{field}`` replaced by its quoted word.

    The template must be a string literal in the source (tests/android_harness/adb/test_quoting.py reads
    the package to check); every field needs a word and every word a field, so a typo fails loudly.
    """
    used: set[str] = set()

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in words:
            raise KeyError(f"shell template field {{{name}}} has no word")
        used.add(name)
        return word(words[name])

    text = _FIELD.sub(fill, template)
    unused = set(words) - used
    if unused:
        raise KeyError(f"shell words {sorted(unused)} have no field in the template")
    return Line(text)


def script(*parts: Line | Iterable[Line]) -> Line:
    """Lines (or iterables of lines) joined into one script ending in a newline; plain strings are refused."""
    lines: list[str] = []
    for part in parts:
        for line in [part] if isinstance(part, str) else part:
            if not isinstance(line, Line):
                raise TypeError(f"script lines must come from sh(); got {type(line).__name__} {line!r:.60}")
            lines.append(str(line).rstrip("\n"))
    return Line("\n".join(lines) + "\n")
