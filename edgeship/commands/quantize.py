"""`edgeship quantize`: re-quantize a float build per section, without exporting again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from edgeship.commands.options import output_options
from edgeship.console import Output, stdout_console
from edgeship.quantize.recipes import PRESETS
from edgeship.units import format_bytes, format_duration, format_number


@click.command(
    "quantize",
    epilog=f"Recipes: {', '.join(PRESETS)}, a name under recipes: in edgeship.yaml, or a YAML file"
    " choosing a scheme per section kind (see edgeship/quantize/recipes.py).",
)
@click.argument("build_dir", type=click.Path(path_type=Path))
@click.option("--recipe", required=True, help="Preset, edgeship.yaml recipe name, or YAML recipe file.")
@click.option(
    "-o", "--output", "target", required=True, type=click.Path(path_type=Path), help="BUILD_DIR to write."
)
@click.option("--force", is_flag=True, help="Replace a non-empty output folder.")
@output_options
def quantize_command(build_dir: Path, recipe: str, target: Path, force: bool, out: Output) -> None:
    """Quantize the float build BUILD_DIR with RECIPE into OUT (the bundle `export --recipe` would write).

    Prints per section the bytes before and after and the bits per weight; --json: the new manifest;
    --quiet: OUT's path only.
    """
    from edgeship.quantize.requantize import quantize_build

    manifest = quantize_build(build_dir, recipe, target, force=force, reporter=out.reporter)
    out.result(
        manifest, lambda: out.line(str(target)) if out.quiet else _print_changes(out, target, manifest)
    )


def _print_changes(out: Output, target: Path, manifest: dict[str, Any]) -> None:
    bundle = manifest["bundle"]
    done = manifest["quantized_from"]
    out.print(
        f"{target}: {format_bytes(bundle['bytes'])}, sha256 {bundle['sha256']} (recipe {done['recipe']},"
        f" {format_duration(done['wall_s'])})",
        soft_wrap=True,
    )
    table = Table()
    for column in ("kind", "scheme", "before", "after", "bits/weight"):
        table.add_column(column, justify="left" if column in ("kind", "scheme") else "right", no_wrap=True)
    for change in done["sections"]:
        table.add_row(
            change["kind"],
            change["scheme"]["scheme"],
            format_bytes(change["bytes_before"]),
            format_bytes(change["bytes_after"]),
            format_number(change["bits_per_weight"], 2),
        )
    out.print(table, width=max(stdout_console.width, 90), crop=False)
