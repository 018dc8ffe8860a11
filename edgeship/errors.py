"""One exception family for every user-facing failure.

Messages are one line and say what is wrong and what to check; the CLI prints them without a traceback
(unless --debug) and exits with the error's ``exit_code``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar


class EdgeshipError(Exception):
    """Base of every error edgeship reports to a user."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(EdgeshipError):
    """The user asked for something that cannot be done as asked (bad option, unknown recipe...)."""

    exit_code = 2


class InputError(EdgeshipError):
    """An input file or folder is missing, corrupt or does not match what it claims to be."""

    exit_code = 3


class ExportError(EdgeshipError):
    """The export toolchain failed on an input that passed validation."""

    exit_code = 4


class DeviceError(EdgeshipError):
    """A device is missing, offline, unauthorized, full, or a command on it failed."""

    exit_code = 5


class RunError(EdgeshipError):
    """A profiled run failed (runner crashed, was killed, or timed out)."""

    exit_code = 6


class GateFailure(EdgeshipError):
    """A check command (`gate`, `verify`) found a regression or a figure below its threshold."""

    exit_code = 1


class Inconclusive(EdgeshipError):
    """`gate --strict`: some figure could not be decided (too few runs, too much spread)."""

    exit_code = 3


F = TypeVar("F", bound=Callable[..., Any])


def check_command(function: F) -> F:
    """Exit codes of the check commands (report, gate, plan, verify): CI scripts branch on them.

    0 pass, 1 a regression or threshold miss (GateFailure), 2 any usage or input error, 3 inconclusive
    under --strict. Other commands keep the family's codes; here an InputError is re-raised with code 2.
    """

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except InputError as exc:
            exc.exit_code = UsageError.exit_code
            raise

    return wrapper  # type: ignore[return-value]
