"""Keep the toolchain's chatter (torch, TF, MLIR, absl: C++ and Python) off the user's terminal.

stdout must stay clean for --json, and progress must stay readable: the toolchain writes to a log file
while our Reporter keeps a copy of the real stderr.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

from edgeship.console import stderr_console


@contextlib.contextmanager
def toolchain_output_to(log_path: Path) -> Iterator[None]:
    """Send the toolchain's chatter (C++ and Python, stdout and stderr) to a log; keep our progress visible.

    stdout must stay clean for --json. Our Reporter's console is pointed at a copy of the real stderr, while
    fd 1/2 (C++ logs, and Python's sys.stdout/sys.stderr in a normal process), ``sys.stdout`` itself and
    Python warnings go to the log, which is kept beside the build for whoever needs the details.
    ``sys.stderr`` is left alone: logging handlers created during the torch import bind to it and must not
    be left holding a closed file.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    our_stderr = os.fdopen(os.dup(saved_err), "w", buffering=1)
    previous_showwarning = warnings.showwarning
    with open(log_path, "ab") as log, open(log_path, "a", buffering=1) as log_text:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        stderr_console.file = our_stderr
        # Python-level prints too, even when sys.stdout is not fd 1 (pytest's capture replaces it).
        previous_stdout, sys.stdout = sys.stdout, log_text
        warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: (
            log_text.write(warnings.formatwarning(message, category, filename, lineno, line))
        )
        try:
            yield
        finally:
            warnings.showwarning = previous_showwarning
            sys.stdout = previous_stdout
            stderr_console.file = None  # back to following sys.stderr
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved_out, 1)
            os.dup2(saved_err, 2)
            os.close(saved_out)
            os.close(saved_err)
            our_stderr.close()


@contextlib.contextmanager
def toolchain_log(prefix: str) -> Iterator[Path]:
    """``toolchain_output_to`` a temporary log, removed on success, kept and named in the error on failure."""
    from edgeship.errors import EdgeshipError

    fd, name = tempfile.mkstemp(prefix=f"edgeship-{prefix}-", suffix=".log")
    os.close(fd)
    log_path = Path(name)
    try:
        with toolchain_output_to(log_path):
            yield log_path
    except EdgeshipError as exc:
        if log_path.stat().st_size:
            exc.message = f"{exc.message} (toolchain log: {log_path})"
        else:
            log_path.unlink(missing_ok=True)
        raise
    except BaseException:
        if not log_path.stat().st_size:
            log_path.unlink(missing_ok=True)
        raise
    log_path.unlink(missing_ok=True)
