"""Run the litert-torch step in processes whose string hashing is not randomised, and as frugally as asked.

Measured: the prefill/decode graph litert-torch writes depends on Python's per-process string hash seed
(some set/dict iteration in tracing or lowering), so two exports of the same checkpoint differ unless
PYTHONHASHSEED is fixed. The seed can only be set when an interpreter starts, so toolchain work runs in child
interpreters started with ``PYTHONHASHSEED=0`` (or in-process when the seed is already fixed).

Two paths (memory.PATHS):
- ``in-process``: the whole export in one process: one model load, every graph, quantization, the bundle.
- ``frugal``: the largest graph (by float32 weight bytes) is converted, quantized and bundled in a process of
  its own, after one process did all the other graphs; it starts from a clean heap, so what the earlier
  conversions left allocated never stacks under the largest one. Lightweight conversion is on. The cost is one
  more interpreter start (none for a model with one graph). Measured first with a process per graph and per
  quantization (7 for a PLE model): the start-ups alone made the tiny export 2.4x slower than the raw call.

Child protocol: ``python -m edgeship.exporter.worker REQUEST.json RESULT.json``; the request names the task
(``export``: convert ``kinds`` and bundle them with ``earlier`` sections; ``sections``: convert and quantize
``kinds`` only); the result file holds its paths or the error to re-raise.
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
from edgeship.exporter import litert, memory
from edgeship.exporter.checkpoint import Checkpoint, read_checkpoint
from edgeship.exporter.memory import IN_PROCESS
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
    path: str = IN_PROCESS,
) -> litert.LitertResult:
    base = {
        "checkpoint": str(ckpt.path),
        "work": str(work),
        "settings": settings.to_dict(),
        "recipe": recipe_spec,
        "quiet": reporter.quiet,
        "log": str(log_path),
    }
    if path == IN_PROCESS:
        if hash_seed_is_fixed():
            with toolchain_output_to(log_path):
                return litert.run_export(ckpt, work, settings, recipe, reporter)
        return _result(_run_in_child({**base, "task": "export"}, log_path))
    kinds = litert.graph_kinds(ckpt, settings)
    largest = memory.largest_graph(ckpt, settings.externalize_embedder, kinds)
    others = [kind for kind in kinds if kind != largest]
    earlier = _run_in_child({**base, "task": "sections", "kinds": others}, log_path) if others else {}
    request = {**base, "task": "export", "kinds": [largest], "earlier": earlier}
    return _result(_run_in_child(request, log_path))


def _result(payload: dict[str, Any]) -> litert.LitertResult:
    return litert.LitertResult(
        bundle=Path(payload["bundle"]),
        section_files={kind: Path(p) for kind, p in payload["sections"].items()},
        tokenizer=Path(payload["tokenizer"]) if payload["tokenizer"] else None,
    )


def _run_in_child(request: dict[str, Any], log_path: Path) -> dict[str, Any]:
    """Run one task in a fresh interpreter (PYTHONHASHSEED=0); its result payload, or its error raised."""
    # Beside the log, not in the work dir: the result must be writable even when the build's disk is full.
    request_path, result_path = log_path.with_suffix(".request.json"), log_path.with_suffix(".result.json")
    request_path.write_text(json.dumps(request))
    result_path.unlink(missing_ok=True)
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
    return result


def _error_from(result: dict[str, Any] | None, code: int) -> BaseException:
    if result is None or "error" not in result:
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        hint = " (out of memory?)" if code == -signal.SIGKILL else ""
        return ExportError(f"the litert-torch export process {how}{hint}")
    error = result["error"]
    if error.get("errno") is not None:
        return OSError(error["errno"], error["message"], error.get("filename"))
    return _ERRORS.get(error.get("type", ""), ExportError)(error["message"])


def _run_task(request: dict[str, Any]) -> dict[str, Any]:
    settings = litert.LitertSettings.from_dict(request["settings"])
    reporter = Reporter(quiet=request["quiet"])
    work = Path(request["work"])
    recipe = resolve_recipe(request["recipe"])
    ckpt = read_checkpoint(request["checkpoint"])
    if request["task"] == "sections":
        sections = litert.export_sections(ckpt, work, settings, recipe, request["kinds"], reporter)
        return {kind: str(path) for kind, path in sections.items()}
    earlier = {kind: Path(p) for kind, p in (request.get("earlier") or {}).items()}
    result = litert.run_export(ckpt, work, settings, recipe, reporter, request.get("kinds"), earlier)
    return {
        "bundle": str(result.bundle),
        "sections": {kind: str(p) for kind, p in result.section_files.items()},
        "tokenizer": str(result.tokenizer) if result.tokenizer else None,
    }


def _child_main(request_path: Path, result_path: Path) -> int:
    request = json.loads(request_path.read_text())
    try:
        with toolchain_output_to(Path(request["log"])):
            payload = _run_task(request)
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
