"""The hash-seed worker: how a child's failure comes back to the parent as one of our errors."""

from __future__ import annotations

import errno
import signal
import subprocess
import sys

from edgeship.errors import ExportError, InputError
from edgeship.exporter.worker import _error_from, hash_seed_is_fixed


def test_child_errors_keep_their_class_and_message() -> None:
    error = _error_from({"error": {"type": "InputError", "message": "no tokenizer in x"}}, 1)
    assert isinstance(error, InputError) and str(error) == "no tokenizer in x"


def test_child_disk_full_comes_back_as_enospc() -> None:
    error = _error_from({"error": {"errno": errno.ENOSPC, "message": "No space left on device"}}, 1)
    assert isinstance(error, OSError) and error.errno == errno.ENOSPC


def test_killed_child_is_an_export_error_naming_the_signal() -> None:
    error = _error_from(None, -signal.SIGKILL)
    assert isinstance(error, ExportError)
    assert "signal 9" in str(error) and "out of memory" in str(error)


def test_hash_seed_detection_follows_pythonhashseed() -> None:
    probe = "from edgeship.exporter.worker import hash_seed_is_fixed; print(hash_seed_is_fixed())"
    for seed, expected in (("0", "True"), ("7", "False"), ("random", "False")):
        out = subprocess.run(
            [sys.executable, "-c", probe],
            capture_output=True,
            text=True,
            env={"PYTHONHASHSEED": seed},
            check=True,
        ).stdout.strip()
        assert out == expected, seed
    assert isinstance(hash_seed_is_fixed(), bool)
