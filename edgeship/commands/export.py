"""`edgeship export` and `edgeship inspect`.

Only light modules are imported at module level; torch/litert-torch load inside the export pipeline.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from edgeship.console import make_reporter, print_json, stdout_console
from edgeship.exporter.arch import supported_summary
from edgeship.quantize.recipes import PRESETS


@click.command(
    "export",
    epilog=f"Supported model_type: {supported_summary()}. Recipes: {', '.join(PRESETS)} or a YAML file "
    "choosing a scheme per section kind (see edgeship/quantize/recipes.py).",
)
@click.argument("checkpoint_dir", type=click.Path(path_type=Path))
@click.option(
    "-o", "--output", "build_dir", required=True, type=click.Path(path_type=Path), help="BUILD_DIR to write."
)
@click.option("--recipe", default="int8", show_default=True, help="Preset name or YAML recipe file.")
@click.option(
    "--prefill", default="32,128", show_default=True, help="Prefill signature lengths, comma-separated."
)
@click.option(
    "--cache-length", default=1024, show_default=True, type=click.IntRange(min=16), help="KV cache length."
)
@click.option("--force", is_flag=True, help="Replace a non-empty BUILD_DIR.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest summary as JSON.")
@click.option("--quiet", is_flag=True, help="No progress output.")
def export_command(
    checkpoint_dir: Path,
    build_dir: Path,
    recipe: str,
    prefill: str,
    cache_length: int,
    force: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Export a Hugging Face checkpoint folder to BUILD_DIR/model.litertlm + manifest.json.

    The PLE table becomes its own tf_lite_per_layer_embedder section; the bundle is byte-reproducible.
    """
    from edgeship.exporter.manifest import summarize
    from edgeship.exporter.pipeline import ExportOptions, export_build, parse_prefill

    options = ExportOptions(
        recipe=recipe, prefill_lengths=parse_prefill(prefill), cache_length=cache_length, force=force
    )
    manifest = export_build(checkpoint_dir, build_dir, options, make_reporter(quiet or as_json))
    summary = summarize(manifest, build_dir)
    if as_json:
        print_json(summary)
    elif not quiet:
        _print_summary(summary)
    else:
        click.echo(str(build_dir))


@click.command("inspect")
@click.argument("build_dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def inspect_command(build_dir: Path, as_json: bool) -> None:
    """Show a build's sections (bytes, share, quantization), PLE facts and parameters total vs core."""
    from edgeship.exporter.manifest import load_manifest, summarize

    summary = summarize(load_manifest(build_dir), build_dir)
    if as_json:
        print_json(summary)
    else:
        _print_summary(summary)


def _mib(n: int | None) -> str:
    """Bytes in the unit that keeps 3 significant figures readable (a tiny build has KiB sections)."""
    if n is None:
        return "-"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:,.2f} {unit}"
    return f"{n} B"


def _print_summary(summary: dict) -> None:
    bundle = summary["bundle"]
    stdout_console.print(
        f"{summary['build_dir']}: {_mib(bundle['bytes'])}, sha256 {bundle['sha256']}",
        soft_wrap=True,
        highlight=False,
    )
    table = Table()
    for column in ("#", "kind", "bytes", "share", "quant"):
        table.add_column(
            column, justify="right" if column in ("#", "bytes", "share") else "left", no_wrap=True
        )
    for s in summary["sections"]:
        table.add_row(
            str(s["index"]), s["kind"], _mib(s["bytes"]), f"{s['share'] * 100:.1f}%", s["quant_short"]
        )
    # Never squeeze section kinds into ellipses, even on a narrow or non-terminal stdout (CI logs, pipes).
    stdout_console.print(table, width=max(stdout_console.width, 90), crop=False)
    model = summary["model"]
    stdout_console.print(
        f"model {model['model_type']} ({model['arch']}"
        + (f", loaded as {model['adapted_as']}" if model.get("adapted_as") else "")
        + f"): params total {model['params_total']:,}, core {model['params_core']:,}"
        f" ({model['core_share'] * 100:.1f}% of total); recipe {summary['recipe']}",
        highlight=False,
        soft_wrap=True,
    )
    ple = model.get("ple")
    if ple:
        stdout_console.print(
            f"PLE table: {ple['vocab']:,} tokens x {ple['layers']} layers x {ple['dim']} = "
            f"{_mib(ple['table_bytes'])} at {ple['bits']} bits; {ple['row_bytes']:,} bytes read per token; "
            f"section {_mib(ple.get('section_bytes'))}"
            f" ({(ple.get('section_share') or 0) * 100:.1f}% of the bundle)",
            highlight=False,
            soft_wrap=True,
        )
    else:
        stdout_console.print(
            "PLE table: none (no per-layer embedder section)", highlight=False, soft_wrap=True
        )
