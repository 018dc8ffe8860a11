"""`edgeship testing`: helpers for tests, benchmarks and the demo."""

from __future__ import annotations

import os
from pathlib import Path

import click

from edgeship.commands.options import output_options
from edgeship.console import Output
from edgeship.exporter.arch import SYNTHETIC_ARCHS
from edgeship.exporter.synthetic import SIZES


@click.group("testing")
def testing_group() -> None:
    """Test helpers: generate tiny deterministic checkpoints."""


@testing_group.command("make-checkpoint")
@click.option("--arch", type=click.Choice(sorted(SYNTHETIC_ARCHS)), default="gemma4", show_default=True)
@click.option("--size", type=click.Choice(list(SIZES)), default="tiny", show_default=True)
@click.option(
    "-o", "--output", "folder", required=True, type=click.Path(path_type=Path), help="Folder to write."
)
@click.option("--force", is_flag=True, help="Replace a non-empty output folder.")
@output_options
def make_checkpoint_command(arch: str, size: str, folder: Path, force: bool, out: Output) -> None:
    """Write a deterministic HF checkpoint (random weights, a real BPE tokenizer) for tests and demos.

    `ple-heavy` has a 65 536 x 8 x 256 PLE table, so the side-table dominates the bundle; `ple-full` has the
    real Gemma PLE vocabulary (262 144 x 8 x 256), the largest bundle a 2-core box exports in a few minutes;
    `e2b` has Gemma 4 E2B's real geometry (35 layers, PLE 262 144 x 35 x 256, ~9.3 GB bf16), written as a
    stream with little RAM (check the disk first).
    """
    from edgeship.exporter.synthetic import make_checkpoint
    from edgeship.exporter.toolchain_output import toolchain_output_to

    with out.reporter.step(f"Generate {arch} {size} checkpoint"), toolchain_output_to(Path(os.devnull)):
        path = make_checkpoint(arch, size, folder, force=force)
    files = sorted(p.name for p in path.iterdir())
    out.result({"path": str(path), "arch": arch, "size": size, "files": files}, lambda: out.line(str(path)))
