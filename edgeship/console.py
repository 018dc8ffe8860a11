"""Terminal output for the CLI: one rich console, progress that goes quiet when asked or not a TTY.

Library code never prints; it takes an optional ``Reporter`` and tells it what happens.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

# Tables go to CI logs and files as often as to terminals: rich would squeeze them to 80 columns there.
LOG_WIDTH = 160
stdout_console = Console(width=None if sys.stdout.isatty() else LOG_WIDTH)
stderr_console = Console(stderr=True)


@dataclass
class Reporter:
    """What long-running library code reports to: steps, byte progress and notes.

    The default is silent, so library functions can be called from tests and scripts without output.
    """

    quiet: bool = True
    _progress: Progress | None = field(default=None, repr=False)

    def note(self, message: str) -> None:
        if not self.quiet:
            stderr_console.print(message, highlight=False)

    @contextmanager
    def step(self, description: str) -> Iterator[None]:
        """A named step with a spinner (an export phase, an on-device check...)."""
        if self.quiet:
            yield
            return
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=stderr_console,
            transient=False,
        ) as progress:
            task = progress.add_task(description, total=None)
            yield
            progress.update(task, completed=1, total=1)

    @contextmanager
    def transfer(self, description: str, total: int) -> Iterator[Any]:
        """Byte progress; yields ``advance(n)``."""
        if self.quiet:
            yield lambda n: None
            return
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=stderr_console,
        ) as progress:
            task = progress.add_task(description, total=total)
            yield lambda n: progress.advance(task, n)


def make_reporter(quiet: bool) -> Reporter:
    """A reporter that is quiet when asked, or when stderr is not a terminal (CI logs)."""
    return Reporter(quiet=quiet or not sys.stderr.isatty())


def print_json(data: Any) -> None:
    """Machine output on stdout, nothing else on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
