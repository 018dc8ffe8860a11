"""Checkpoint → .litertlm bundle + manifest.json (the `export` stage).

Public entry points: ``export_build(checkpoint_dir, out, options_or_recipe)``, ``ExportOptions`` and
``make_checkpoint(arch, size, out)``. They resolve lazily, so importing a submodule (the export worker runs
as ``python -m edgeship.exporter.worker``) does not import the rest of the package first.
"""

from typing import Any

_PUBLIC = {
    "export_build": "edgeship.exporter.pipeline",
    "ExportOptions": "edgeship.exporter.pipeline",
    "make_checkpoint": "edgeship.exporter.synthetic",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'edgeship.exporter' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_PUBLIC[name]), name)
