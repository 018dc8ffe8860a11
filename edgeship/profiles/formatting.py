"""Figures as a reader sees them, the same in the terminal, Markdown and HTML: '9.7 MiB', '0.30 s'.

Bytes use ``summary.format_bytes`` (binary units, one decimal) so every table of the project agrees.
"""

from __future__ import annotations

from edgeship.profiles.summary import format_bytes

DASH = "—"


def format_seconds(value: float | None) -> str:
    """'0.30 s', '20.1 ms' below a tenth of a second, '1 min 2 s' past a minute."""
    if value is None:
        return DASH
    if abs(value) < 0.1:
        return f"{value * 1000:.1f} ms"
    if abs(value) >= 60:
        minutes, seconds = divmod(value, 60)
        return f"{minutes:.0f} min {seconds:.0f} s"
    return f"{value:.2f} s"


def format_rate(value: float | None) -> str:
    return DASH if value is None else f"{value:.1f} tok/s"


def format_value(value: float | None, unit: str) -> str:
    """One figure in its unit: 'bytes', 's' or 'tok/s'."""
    if unit == "bytes":
        return format_bytes(value)
    if unit == "s":
        return format_seconds(value)
    if unit == "tok/s":
        return format_rate(value)
    return DASH if value is None else f"{value:g}"


def format_change(change: float | None) -> str:
    return DASH if change is None else f"{change * 100:+.1f}%"


def format_share(part: float | None, whole: float | None) -> str:
    if part is None or not whole:
        return DASH
    return f"{100.0 * part / whole:.1f}%"
