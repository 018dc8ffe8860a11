"""`edgeship export` and `edgeship inspect`.

Only light modules are imported at module level; torch/litert-torch load inside the export pipeline.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from edgeship.commands.options import output_options
from edgeship.console import Output, stdout_console
from edgeship.exporter import memory
from edgeship.exporter.arch import supported_summary
from edgeship.quantize.recipes import PRESETS
from edgeship.units import format_bytes, format_percent


@click.command(
    "export",
    epilog=f"Supported model_type: {supported_summary()}. Recipes: {', '.join(PRESETS)} or a YAML file "
    "choosing a scheme per section kind (see edgeship/quantize/recipes.py).",
)
@click.argument("checkpoint_dir", type=click.Path(path_type=Path))
@click.option(
    "-o", "--output", "build_dir", required=True, type=click.Path(path_type=Path), help="BUILD_DIR to write."
)
@click.option(
    "--recipe", default="int8", show_default=True, help="Preset, edgeship.yaml recipe name, or YAML file."
)
@click.option(
    "--prefill", default="32,128", show_default=True, help="Prefill signature lengths, comma-separated."
)
@click.option(
    "--cache-length", default=1024, show_default=True, type=click.IntRange(min=16), help="KV cache length."
)
@click.option("--force", is_flag=True, help="Replace a non-empty BUILD_DIR.")
@click.option(
    "--no-sliding-cache",
    "no_sliding_cache",
    is_flag=True,
    help="Give sliding-window layers the full cache length (default: a ring buffer of their window).",
)
@click.option(
    "--memory-path",
    type=click.Choice(memory.PATH_CHOICES),
    default=memory.AUTO,
    show_default=True,
    help="frugal: the largest graph in its own process, lightweight conversion; in-process: one process; "
    f"auto: frugal where it is predicted to save {memory.FRUGAL_MIN_SAVING:.0%} of the peak or more.",
)
@click.option(
    "--ignore-memory-check",
    "ignore_memory",
    is_flag=True,
    help="Export even when the predicted peak memory exceeds what this machine has available.",
)
@click.option(
    "--verify",
    "then_verify",
    is_flag=True,
    help="Then run `edgeship verify` on the new build against CHECKPOINT_DIR (exit 1 below threshold).",
)
@output_options
def export_command(
    checkpoint_dir: Path,
    build_dir: Path,
    recipe: str,
    prefill: str,
    cache_length: int,
    force: bool,
    no_sliding_cache: bool,
    memory_path: str,
    ignore_memory: bool,
    then_verify: bool,
    out: Output,
) -> None:
    """Export a Hugging Face checkpoint folder to BUILD_DIR/model.litertlm + manifest.json.

    The PLE table becomes its own tf_lite_per_layer_embedder section; the bundle is byte-reproducible.
    Prints what `inspect` prints (--json: its JSON view); with --quiet only BUILD_DIR's path. --verify adds
    `verify`'s result (--json: as "accuracy").
    """
    from edgeship.exporter.manifest import read_build, summarize
    from edgeship.exporter.pipeline import ExportOptions, export_build, parse_prefill

    options = ExportOptions(
        recipe=recipe,
        prefill_lengths=parse_prefill(prefill),
        cache_length=cache_length,
        force=force,
        memory_path=memory_path,
        sliding_cache=not no_sliding_cache,
        ignore_memory=ignore_memory,
    )
    export_build(checkpoint_dir, build_dir, options, out.reporter)
    if not then_verify:
        summary = summarize(read_build(build_dir))
        out.result(summary, lambda: out.line(str(build_dir)) if out.quiet else _print_summary(out, summary))
        return
    from edgeship.commands.verify import print_accuracy, raise_on_failure
    from edgeship.quantize.verify import VerifyOptions, verify_build

    accuracy = verify_build(build_dir, VerifyOptions(checkpoint=checkpoint_dir), out.reporter).accuracy
    summary = summarize(read_build(build_dir))

    def human() -> None:
        if out.quiet:
            out.line(str(build_dir))
            return
        _print_summary(out, summary)
        print_accuracy(out, build_dir, accuracy)

    out.result({**summary, "accuracy": accuracy}, human)
    raise_on_failure(accuracy)


@click.command("inspect")
@click.argument("build_dir", type=click.Path(path_type=Path))
@output_options
def inspect_command(build_dir: Path, out: Output) -> None:
    """Show a build's sections (bytes, share, quantization), PLE facts and parameters total vs core.

    --json: the `edgeship.inspect/1` view (docs/contracts.md).
    """
    from edgeship.exporter.manifest import read_build, summarize

    summary = summarize(read_build(build_dir))
    out.result(summary, lambda: _print_summary(out, summary))


def _print_summary(out: Output, summary: dict) -> None:
    bundle = summary["bundle"]
    out.print(
        f"{summary['build_dir']}: {format_bytes(bundle['bytes'])}, sha256 {bundle['sha256']}", soft_wrap=True
    )
    table = Table()
    for column in ("#", "kind", "bytes", "share", "quant"):
        table.add_column(
            column, justify="right" if column in ("#", "bytes", "share") else "left", no_wrap=True
        )
    for s in summary["sections"]:
        table.add_row(
            str(s["index"]), s["kind"], format_bytes(s["bytes"]), format_percent(s["share"]), s["quant_short"]
        )
    # Never squeeze section kinds into ellipses, even on a narrow or non-terminal stdout (CI logs, pipes).
    out.print(table, width=max(stdout_console.width, 90), crop=False)
    model = summary["model"]
    out.print(
        f"model {model['model_type']} ({model['arch']}"
        + (f", loaded as {model['adapted_as']}" if model.get("adapted_as") else "")
        + f"): params total {model['params_total']:,}, core {model['params_core']:,}"
        f" ({format_percent(model['core_share'])} of total); recipe {summary['recipe']}",
        soft_wrap=True,
    )
    ple = model.get("ple")
    if ple:
        out.print(
            f"PLE table: {ple['vocab']:,} tokens x {ple['layers']} layers x {ple['dim']} = "
            f"{format_bytes(ple['table_bytes'])} at {ple['bits']} bits; {ple['row_bytes']:,} bytes read per "
            f"token; section {format_bytes(ple.get('section_bytes'))}"
            f" ({format_percent(ple.get('section_share') or 0)} of the bundle)",
            soft_wrap=True,
        )
    else:
        out.print("PLE table: none (no per-layer embedder section)", soft_wrap=True)
