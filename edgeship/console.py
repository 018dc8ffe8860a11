"""The one output layer of the CLI: the result sink (human / json / quiet) and the Reporter.

Two channels, never mixed: a command's *result* goes to stdout through ``Output`` (tables and lines for
a human, or exactly one JSON document with ``--json``); *progress* (notes, spinners, byte bars, warnings)
goes to stderr through a ``Reporter``, silent with ``--quiet``/``--json`` or when stderr is not a terminal.
Library code never prints: it takes an optional ``Reporter`` and tells it what happens; only commands (the
edge) draw tables. Figures are formatted by ``edgeship.units``.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
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


class TransferProgress:
    """What a transfer tells about bytes in flight (one per device); this base shows nothing."""

    def start(self, total: int) -> None:
        """``total`` bytes will be sent."""

    def advance(self, sent: int) -> None:
        """``sent`` more bytes went out."""

    def phase(self, text: str) -> None:
        """What it does now ("survey", "verifying on the device"…)."""


@dataclass
class Reporter:
    """What long-running library code reports to: notes, warnings, steps and byte progress.

    The default is silent (but for warnings), so library functions can be called from tests and scripts
    without output.
    """

    quiet: bool = True

    def note(self, message: str) -> None:
        if not self.quiet:
            stderr_console.print(message, highlight=False)

    def warn(self, message: str) -> None:
        """Something the user should know even with --quiet (a lab host that does not answer…)."""
        stderr_console.print(f"edgeship: warning: {message}", markup=False, highlight=False)

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
    def transfer(self, description: str, total: int) -> Iterator[Callable[[int], Any]]:
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

    @contextmanager
    def transfers(self, names: Sequence[str]) -> Iterator[dict[str, TransferProgress]]:
        """One byte bar per name (a device serial), updated from several threads at once."""
        if self.quiet:
            yield {name: TransferProgress() for name in names}
            return
        lock = threading.Lock()
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("{task.fields[phase]}"),
            console=stderr_console,
        ) as bars:
            yield {name: _BarProgress(bars, name, lock) for name in names}


class _BarProgress(TransferProgress):
    """A row of a rich Progress; rich is not thread-safe for updates, hence the shared lock."""

    def __init__(self, bars: Progress, name: str, lock: threading.Lock) -> None:
        self.bars = bars
        self.lock = lock
        self.task = bars.add_task(name, total=None, phase="")

    def start(self, total: int) -> None:
        with self.lock:
            self.bars.update(self.task, total=max(total, 1), completed=0 if total else 1, phase="sending")

    def advance(self, sent: int) -> None:
        with self.lock:
            self.bars.advance(self.task, sent)

    def phase(self, text: str) -> None:
        with self.lock:
            self.bars.update(self.task, phase=text)


def make_reporter(quiet: bool) -> Reporter:
    """A reporter that is quiet when asked, or when stderr is not a terminal (CI logs)."""
    return Reporter(quiet=quiet or not sys.stderr.isatty())


def print_json(data: Any) -> None:
    """Machine output on stdout, nothing else on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


@dataclass
class Output:
    """Where a data command's result goes, as chosen by ``--json`` and ``--quiet/-q`` (commands/options.py).

    human (default): tables and lines on stdout, progress on stderr when it is a terminal.
    json: exactly one JSON document on stdout; no progress.
    quiet: no progress or notes; the result is still printed for a human.
    """

    json: bool = False
    quiet: bool = False
    # What library code reports to: silent with --json or --quiet, or when stderr is not a terminal.
    reporter: Reporter = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.reporter = make_reporter(self.quiet or self.json)

    @property
    def mode(self) -> str:
        return "json" if self.json else "quiet" if self.quiet else "human"

    def result(self, data: Any, human: Callable[[], None]) -> None:
        """The command's result: ``data`` as JSON with --json, else what ``human()`` prints."""
        if self.json:
            print_json(data)
        else:
            human()

    def line(self, text: str) -> None:
        """A plain line on stdout (a path a script reads): no markup, never wrapped; nothing with --json."""
        if not self.json:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()

    def print(self, *renderables: Any, **options: Any) -> None:
        """Human output (text, a rich Table) on stdout; nothing with --json, whose stdout is the JSON."""
        if not self.json:
            options.setdefault("highlight", False)
            stdout_console.print(*renderables, **options)
