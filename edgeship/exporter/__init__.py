"""Checkpoint → .litertlm bundle + manifest.json (the `export` stage).

Public entry points (light to import; torch and litert-torch load only when an export runs):
``export_build(checkpoint_dir, out, options_or_recipe)`` and ``make_checkpoint(arch, size, out)``.
"""

from edgeship.exporter.pipeline import ExportOptions, export_build
from edgeship.exporter.synthetic import make_checkpoint

__all__ = ["ExportOptions", "export_build", "make_checkpoint"]
