"""Options shared by every command that acts on devices."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click


def selection_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--device/--all/--label/--adb, the same on every command that acts on devices."""
    for option in reversed(
        [
            click.option("--device", "-s", "serials", multiple=True, help="Device serial (repeatable)."),
            click.option("--all", "all_", is_flag=True, help="Every online device on every adb server."),
            click.option(
                "--label", "labels", multiple=True, help="Devices of a label in edgeship.yaml (repeatable)."
            ),
            click.option("--adb", "servers", multiple=True, help="Extra adb server HOST:PORT (repeatable)."),
        ]
    ):
        command = option(command)
    return command
