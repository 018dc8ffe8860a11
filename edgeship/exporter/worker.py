"""Run the litert-torch step in a process whose string hashing is not randomised.

Measured: the prefill/decode graph litert-torch writes depends on Python's per-process string hash seed
(some set/dict iteration in tracing or lowering), so two exports of the same checkpoint differ unless
PYTHONHASHSEED is fixed. The seed can only be set when an interpreter starts, so ``run_toolchain`` runs the
step in-process when hash randomisation is already off (``PYTHONHASHSEED=0``) and otherwise in one child
interpreter started with ``PYTHONHASHSEED=0`` — the same work, one model load, in another process.

Child protocol: ``python -m edgeship.exporter.worker REQUEST.json RESULT.json``; the result file holds either
the LitertResult paths or the error to re-raise in the parent.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from edgeship.console import Reporter
from edgeship.errors import EdgeshipError, ExportError, InputError, UsageError
from edgeship.exporter import litert
from edgeship.exporter.checkpoint import Checkpoint, read_checkpoint
from edgeship.exporter.toolchain_output import toolchain_output_to
from edgeship.quantize.recipes import Recipe, resolve_recipe

_ERRORS: dict[str, type[EdgeshipError]] = {
    cls.__name__: cls for cls in (EdgeshipError, ExportError, InputError, UsageError)
}


def hash_seed_is_fixed() -> bool:
    return sys.flags.hash_randomization == 0


def run_toolchain(
    ckpt: Checkpoint,
    work: Path,
    settings: litert.LitertSettings,
    recipe_spec: str,
    recipe: Recipe,
    reporter: Reporter,
    log_path: Path,
) -> litert.LitertResult:
    if hash_seed_is_fixed():
        with toolchain_output_to(log_path):
            return litert.run_export(ckpt, work, settings, recipe, reporter)
    return _run_in_child(ckpt, work, settings, recipe_spec, reporter, log_path)


def _run_in_child(
    ckpt: Checkpoint,
    work: Path,
    settings: litert.LitertSettings,
    recipe_spec: str,
    reporter: Reporter,
    log_path: Path,
) -> litert.LitertResult:
    request = {
        "checkpoint": str(ckpt.path),
        "work": str(work),
        "prefill_lengths": list(settings.prefill_lengths),
        "cache_length": settings.cache_length,
        "externalize_embedder": settings.externalize_embedder,
        "recipe": recipe_spec,
        "quiet": reporter.quiet,
        "log": str(log_path),
    }
    # Beside the log, not in the work dir: the result must be writable even when the build's disk is full.
    request_path, result_path = log_path.with_suffix(".request.json"), log_path.with_suffix(".result.json")
    request_path.write_text(json.dumps(request))
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    child = subprocess.Popen(
        [sys.executable, "-m", "edgeship.exporter.worker", str(request_path), str(result_path)], env=env
    )
    try:
        code = child.wait()
    except BaseException:
        child.send_signal(signal.SIGINT)
        child.wait()
        raise
    result = json.loads(result_path.read_text()) if result_path.is_file() else None
    request_path.unlink(missing_ok=True)
    result_path.unlink(missing_ok=True)
    if code != 0 or result is None or "error" in result:
        raise _error_from(result, code)
    return litert.LitertResult(
        bundle=Path(result["bundle"]),
        section_files={kind: Path(p) for kind, p in result["sections"].items()},
        tokenizer=Path(result["tokenizer"]) if result["tokenizer"] else None,
    )


def _error_from(result: dict[str, Any] | None, code: int) -> BaseException:
    if result is None or "error" not in result:
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        hint = " (out of memory?)" if code == -signal.SIGKILL else ""
        return ExportError(f"the litert-torch export process {how}{hint}")
    error = result["error"]
    if error.get("errno") is not None:
        return OSError(error["errno"], error["message"], error.get("filename"))
    return _ERRORS.get(error.get("type", ""), ExportError)(error["message"])


def _child_main(request_path: Path, result_path: Path) -> int:
    request = json.loads(request_path.read_text())
    try:
        ckpt = read_checkpoint(request["checkpoint"])
        settings = litert.LitertSettings(
            prefill_lengths=tuple(request["prefill_lengths"]),
            cache_length=request["cache_length"],
            externalize_embedder=request["externalize_embedder"],
        )
        reporter = Reporter(quiet=request["quiet"])
        with toolchain_output_to(Path(request["log"])):
            result = litert.run_export(
                ckpt, Path(request["work"]), settings, resolve_recipe(request["recipe"]), reporter
            )
        payload: dict[str, Any] = {
            "bundle": str(result.bundle),
            "sections": {kind: str(p) for kind, p in result.section_files.items()},
            "tokenizer": str(result.tokenizer) if result.tokenizer else None,
        }
        code = 0
    except EdgeshipError as exc:
        payload, code = {"error": {"type": type(exc).__name__, "message": exc.message}}, 1
    except OSError as exc:
        number = exc.errno if exc.errno is not None else errno.EIO
        payload = {"error": {"errno": number, "message": exc.strerror or str(exc), "filename": exc.filename}}
        code = 1
    try:
        result_path.write_text(json.dumps(payload))
    except OSError:
        return 2  # disk full even for the result: the parent reports the exit code
    return code


if __name__ == "__main__":
    sys.exit(_child_main(Path(sys.argv[1]), Path(sys.argv[2])))
