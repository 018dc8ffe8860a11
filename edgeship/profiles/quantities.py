"""Sizes and percentages as users write them: ``6GB``, ``16 MiB``, ``1.5G``, ``5%``.

Decimal prefixes (kB, MB, GB) are powers of 1000 and binary ones (KiB, MiB, GiB, or a bare K/M/G as in
``free -h``) powers of 1024, so ``--ram 6GB`` means what a phone's box says.
"""

from __future__ import annotations

import re

from edgeship.errors import UsageError

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "k": 1024,
    "m": 1024**2,
    "g": 1024**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str | int | float, what: str = "size") -> int:
    """Bytes from '6GB' / '16MiB' / 1024; UsageError naming ``what`` when it is not a size."""
    if isinstance(text, bool):
        raise UsageError(f"{what}: {text!r} is not a size (e.g. 16MiB, 6GB)")
    if isinstance(text, int | float):
        if text < 0:
            raise UsageError(f"{what}: {text!r} is negative")
        return int(text)
    match = _SIZE.match(str(text))
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS:
        raise UsageError(f"{what}: {text!r} is not a size (e.g. 16MiB, 6GB, 1.5GiB)")
    return int(float(match.group(1)) * _UNITS[unit])


def parse_percent(text: str | int | float, what: str = "percentage") -> float:
    """A fraction from '5%' / 5 / '5' (percent); UsageError when it is not one."""
    if isinstance(text, bool):
        raise UsageError(f"{what}: {text!r} is not a percentage (e.g. 5%)")
    raw = str(text).strip().removesuffix("%").strip()
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{what}: {text!r} is not a percentage (e.g. 5%)") from None
    if value < 0:
        raise UsageError(f"{what}: {text!r} is negative")
    return value / 100.0
