"""Pinned dependencies are installed at their pins and import: a broken wheel fails here, never skips."""

from __future__ import annotations

import importlib
import tomllib
from importlib import metadata

import pytest
from packaging.requirements import Requirement

from tests.cli import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
EXTRAS = ("export", "runtime", "dev")  # what `.[all]` installs
REQUIREMENTS = [Requirement(text) for text in PYPROJECT["dependencies"]] + [
    Requirement(text) for extra in EXTRAS for text in PYPROJECT["optional-dependencies"][extra]
]


@pytest.mark.parametrize("requirement", REQUIREMENTS, ids=str)
def test_installed_at_its_pin(requirement: Requirement) -> None:
    installed = metadata.version(requirement.name)  # PackageNotFoundError: `make test` installs `.[all]`
    assert requirement.specifier.contains(installed, prereleases=True), (str(requirement), installed)


@pytest.mark.parametrize(
    ("module", "attribute"),
    [("litert_lm", "Benchmark"), ("litert_lm_builder", None), ("ai_edge_litert", None), ("ziglang", None)],
)
def test_runtime_modules_import(module: str, attribute: str | None) -> None:
    """The modules the engine-load, host-runner and layout checks use, imported the way those tests do."""
    imported = importlib.import_module(module)
    if attribute:
        assert hasattr(imported, attribute), f"{module} has no {attribute}: a broken wheel?"
