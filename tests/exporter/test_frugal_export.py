"""The frugal memory path against the in-process one: the same bundle layout, and it runs.

The default cached build (tests/fixtures/builds.py) of the tiny Gemma 4 is exported in-process (the auto
path's choice for a model this small); here the same checkpoint goes through the frugal path once, and the
two bundles are compared section by section.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeship.exporter.manifest import read_build
from edgeship.exporter.memory import FRUGAL, IN_PROCESS
from tests.fixtures.engine import run_in_engine

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def frugal_build(build_factory) -> Path:
    return build_factory("gemma4", "tiny", "int8", memory_path=FRUGAL)


def test_frugal_build_has_the_in_process_section_layout(frugal_build: Path, tiny_gemma4_build: Path) -> None:
    frugal = read_build(frugal_build).manifest
    whole = read_build(tiny_gemma4_build).manifest
    assert frugal["export"]["memory"]["path"] == FRUGAL
    assert whole["export"]["memory"]["path"] == IN_PROCESS
    assert [s["kind"] for s in frugal["sections"]] == [s["kind"] for s in whole["sections"]]
    for ours, theirs in zip(frugal["sections"], whole["sections"], strict=True):
        # Lightweight conversion leaves constant folding to the runtime: sizes may move a little, never 1%.
        assert abs(ours["bytes"] - theirs["bytes"]) <= 0.01 * theirs["bytes"], ours["kind"]
        assert ours["quant"] == theirs["quant"]
    assert frugal["export"]["kv_cache"] == whole["export"]["kv_cache"]


def test_frugal_build_runs_in_litert_lm(frugal_build: Path, tiny_gemma4_build: Path) -> None:
    run_in_engine(frugal_build / "model.litertlm")
    run_in_engine(tiny_gemma4_build / "model.litertlm")
