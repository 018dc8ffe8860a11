"""Checkpoint → .litertlm bundle + manifest.json (the `export` stage).

Public entry points: ``export_build(checkpoint_dir, out, options_or_recipe)``, ``ExportOptions`` and
``make_checkpoint(arch, size, out)``; the build-dir contract (its one reader ``read_build``) is
``edgeship.exporter.manifest``. They resolve lazily, so importing a submodule (the export worker runs as
``python -m edgeship.exporter.worker``; push and profile read manifests) does not import the rest first.
"""

from edgeship.lazy import lazy_exports

_PUBLIC = {
    "export_build": "edgeship.exporter.pipeline",
    "ExportOptions": "edgeship.exporter.pipeline",
    "make_checkpoint": "edgeship.exporter.synthetic",
}
__all__ = sorted(_PUBLIC)
__getattr__ = lazy_exports(__name__, _PUBLIC)
