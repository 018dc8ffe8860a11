"""`edgeship verify`: the shipped bundle against its checkpoint (KL divergence, top-1 agreement, Δp).

torch/transformers/ai-edge-litert load inside the verify code path only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from edgeship.commands.options import output_options
from edgeship.console import Output, stdout_console
from edgeship.errors import GateFailure, check_command
from edgeship.units import MISSING, format_duration, format_percent

POSITIONS_DEFAULT = 256


@click.command("verify")
@click.argument("build_dir", type=click.Path(path_type=Path))
@click.option(
    "--checkpoint",
    "checkpoint",
    required=True,
    type=click.Path(path_type=Path),
    help="The HF checkpoint folder the build was exported from.",
)
@click.option(
    "--prompts",
    type=click.Path(path_type=Path),
    help="UTF-8 text file, prompts separated by '---' lines (or YAML like the built-in set).",
)
@click.option(
    "--positions",
    default=POSITIONS_DEFAULT,
    show_default=True,
    type=click.IntRange(min=1),
    help="Scored positions, spread over the prompts.",
)
@click.option("--max-kl", type=float, help="Gate: mean KLD at most this (default: per recipe).")
@click.option("--max-kl-p999", type=float, help="Gate: KLD p99.9 at most this (default: per recipe).")
@click.option("--min-top1", type=float, help="Gate: top-1 agreement at least this share, 0..1.")
@click.option(
    "--force", is_flag=True, help="Compare with a checkpoint whose weights differ from the manifest's."
)
@click.option(
    "--threads", type=click.IntRange(min=1), help="Interpreter and torch threads (default: the idle cores)."
)
@click.option(
    "--reference-cache/--no-reference-cache",
    default=True,
    show_default=True,
    help="Reuse the checkpoint's reference logits from an earlier verify on the same tokens.",
)
@output_options
@check_command
def verify_command(
    build_dir: Path,
    checkpoint: Path,
    prompts: Path | None,
    positions: int,
    max_kl: float | None,
    max_kl_p999: float | None,
    min_top1: float | None,
    force: bool,
    threads: int | None,
    reference_cache: bool,
    out: Output,
) -> None:
    """Run BUILD_DIR's bundle and the checkpoint (transformers, float32) on held-out prompts; compare.

    Exit 0 pass, 1 a statistic misses its threshold, 2 usage or input error. The result is recorded as
    manifest.json `accuracy`; the bundle is not changed. --json: {"accuracy", "positions": [per position]}.
    """
    from edgeship.quantize.verify import VerifyOptions, verify_build

    options = VerifyOptions(
        checkpoint=checkpoint,
        prompts=prompts,
        positions=positions,
        force=force,
        max_kl=max_kl,
        min_top1=min_top1,
        max_kl_p999=max_kl_p999,
        threads=threads,
        reference_cache=reference_cache,
    )
    result = verify_build(build_dir, options, out.reporter)
    out.result(
        {"accuracy": result.accuracy, "positions": [s.to_dict() for s in result.scores]},
        lambda: print_accuracy(out, build_dir, result.accuracy),
    )
    raise_on_failure(result.accuracy)


def raise_on_failure(accuracy: dict[str, Any]) -> None:
    """Exit 1 (GateFailure) when the gate failed; the figures are already recorded and printed."""
    if accuracy["verdict"] != "pass":
        raise GateFailure(f"accuracy below threshold: {'; '.join(accuracy['failures'])}")


def _row(name: str, stats: dict[str, Any]) -> list[str]:
    kld = stats.get("kld")
    # KLD in nats spans 1e-12 (float) to 10 (broken): significant figures, not fixed decimals.
    figures = [f"{kld[k]:.3g}" for k in ("mean", "median", "p99", "p999", "max")] if kld else [MISSING] * 5
    return [
        name,
        str(stats["positions"]),
        *figures,
        format_percent(stats["top1"]["agreement"]),
        format_percent(stats.get("delta_p_rms"), digits=2),
    ]


def print_accuracy(out: Output, build_dir: Path, accuracy: dict[str, Any]) -> None:
    prompt_set = accuracy["prompt_set"]
    cached = ", reference from the cache" if accuracy["timing"].get("reference_cached") else ""
    out.print(
        f"{build_dir}: recipe {accuracy['recipe']}, {accuracy['statistics']['positions']} positions of"
        f" {prompt_set['prompts']} prompts ({prompt_set['version'] or prompt_set['source']}),"
        f" {format_duration(accuracy['timing']['wall_s'])}{cached}",
        soft_wrap=True,
    )
    table = Table()
    for column in ("positions", "n", "mean KLD", "median", "p99", "p99.9", "max", "top-1", "RMS Δp"):
        table.add_column(column, justify="left" if column == "positions" else "right", no_wrap=True)
    window = accuracy["geometry"]["sliding_window"]
    labels = {"inside_window": f"< {window} (inside window)", "beyond_window": f"≥ {window} (beyond window)"}
    table.add_row(*_row("all", accuracy["statistics"]))
    for name, stats in accuracy["buckets"].items():
        if name in labels:
            table.add_row(*_row(labels[name], stats))
    out.print(table, width=max(stdout_console.width, 100), crop=False)
    t = accuracy["thresholds"]
    out.print(
        f"gate ({t['source']}): mean KLD ≤ {t['max_kl']:g}, KLD p99.9 ≤ {t['max_kl_p999']:g},"
        f" top-1 ≥ {format_percent(t['min_top1'])} → {accuracy['verdict'].upper()}",
        soft_wrap=True,
    )
