"""The one formatter for the figures edgeship prints: bytes, durations, rates, percentages.

Every table, note, Markdown and HTML page formats its figures here, so a figure reads the same wherever
it appears ("9.7 MiB" in the profile table, the push notes and a report alike). Byte units are binary
(KiB = 1024 bytes, as the kernel's /proc figures and `df -k` are); a figure that was not measured reads
``MISSING``, never 0.
"""

from __future__ import annotations

MISSING = "—"
BYTE_UNITS = (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024))


def format_bytes(count: float | None, *, missing: str = MISSING) -> str:
    """Binary units with one decimal: 10 174 464 → '9.7 MiB', 512 → '512 B'."""
    if count is None:
        return missing
    value = float(count)
    for unit, size in BYTE_UNITS:
        if abs(value) >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} B"


def format_number(value: float | None, digits: int, suffix: str = "", *, missing: str = MISSING) -> str:
    """A figure with a fixed number of decimals (for table columns whose header names the unit)."""
    return missing if value is None else f"{value:.{digits}f}{suffix}"


def format_duration(seconds: float | None, *, missing: str = MISSING) -> str:
    """Three significant figures in the unit that keeps them readable: '12.3 ms', '1.5 s', '2 min 5 s'."""
    if seconds is None:
        return missing
    if abs(seconds) < 1.0:
        return f"{seconds * 1000:.3g} ms"
    if abs(seconds) < 60.0:
        return f"{seconds:.3g} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s"


def format_rate(value: float | None, unit: str = "tok/s", *, digits: int = 1, missing: str = MISSING) -> str:
    """A rate with its unit: 12.34 → '12.3 tok/s'."""
    return missing if value is None else f"{value:.{digits}f} {unit}"


def format_percent(fraction: float | None, *, digits: int = 1, missing: str = MISSING) -> str:
    """A share given as a fraction: 0.075 → '7.5%'."""
    return missing if fraction is None else f"{fraction * 100:.{digits}f}%"


def format_change(fraction: float | None, *, digits: int = 1, missing: str = MISSING) -> str:
    """A relative change with its sign: -0.19 → '-19.0%', 0.05 → '+5.0%'."""
    return missing if fraction is None else f"{fraction * 100:+.{digits}f}%"


def format_signed_bytes(count: float | None, *, missing: str = MISSING) -> str:
    """A change in bytes with its sign: '+16.0 MiB', '−512 B'."""
    if count is None:
        return missing
    return ("+" if count >= 0 else "−") + format_bytes(abs(count))


def format_figure(value: float | None, unit: str, *, missing: str = MISSING) -> str:
    """A figure in its unit: 'bytes' (binary units), 's' (a duration), 'tok/s', anything else as a count."""
    if value is None:
        return missing
    if unit == "bytes":
        return format_bytes(value)
    if unit == "s":
        return format_duration(value)
    if unit == "tok/s":
        return format_rate(value)
    return f"{value:g}"


def format_decimal_bytes(count: float | None, *, missing: str = MISSING) -> str:
    """Decimal units, as phones and their RAM are sold: '1.2 GB' from a billion up, else '300 MB'."""
    if count is None:
        return missing
    if abs(count) >= 10**9:
        return f"{count / 1e9:.1f} GB"
    return f"{count / 1e6:.0f} MB"
