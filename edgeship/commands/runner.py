"""`edgeship runner parse`: read a saved runner log the way `edgeship profile` reads a live one."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from edgeship.commands.options import output_options
from edgeship.console import Output
from edgeship.errors import InputError
from edgeship.units import format_bytes, format_duration, format_rate

if TYPE_CHECKING:
    from edgeship.android_harness.runners import RunnerMetrics


@click.group("runner")
def runner_group() -> None:
    """Runner helpers."""


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        raise InputError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a folder; give the runner's log file") from None


@runner_group.command("parse")
@click.option(
    "--runner",
    "runner_name",
    type=click.Choice(["litert_lm_main", "benchmark_model"]),
    default="litert_lm_main",
    show_default=True,
    help="Which runner wrote the log.",
)
@click.option(
    "--stderr", "stderr_file", type=click.Path(path_type=Path), help="Its stderr, when saved apart."
)
@click.option(
    "--log-sink", "log_sink_file", type=click.Path(path_type=Path), help="Its --log_sink_file output."
)
@output_options
@click.argument("file", type=click.Path(path_type=Path))
def parse_command(
    runner_name: str, stderr_file: Path | None, log_sink_file: Path | None, out: Output, file: Path
) -> None:
    """Parse FILE, a saved runner output (stdout, or stdout and stderr together).

    --json: runner, ttft_definition and the figures (seconds, tokens, tok/s; null when not printed).
    """
    from edgeship.android_harness.runners import get_adapter

    adapter = get_adapter(runner_name)
    metrics = adapter.parse(
        _read(file),
        _read(stderr_file) if stderr_file else "",
        _read(log_sink_file) if log_sink_file else None,
    )
    if not metrics.found:
        raise InputError(f"{file} holds no {runner_name} benchmark output (no BenchmarkInfo or timing lines)")
    data = {"runner": runner_name, "ttft_definition": adapter.ttft_definition, **metrics.to_dict()}
    out.result(data, lambda: _print_metrics(out, metrics, adapter.ttft_definition))


def _print_metrics(out: Output, metrics: RunnerMetrics, ttft_definition: str) -> None:
    from rich.table import Table

    table = Table(show_header=False, box=None)
    rows = [
        ("init", format_duration(metrics.init_s)),
        ("time to first token", format_duration(metrics.ttft_s)),
        ("prefill", _tokens(metrics.prefill_tokens, metrics.prefill_tok_s)),
        ("decode", _tokens(metrics.decode_tokens, metrics.decode_tok_s)),
        ("peak memory (runner's claim)", format_bytes(metrics.peak_mem_bytes)),
    ]
    if "inference_avg_s" in metrics.raw:  # benchmark_model: one graph, latencies instead of token rates
        rows += [
            ("first inference", format_duration(metrics.raw.get("first_inference_s"))),
            ("inference (avg)", format_duration(metrics.raw.get("inference_avg_s"))),
        ]
    for name, value in rows:
        table.add_row(name, value)
    out.print(table)
    out.print(f"[dim]TTFT: {ttft_definition}[/dim]")


def _tokens(tokens: int | None, rate: float | None) -> str:
    text = format_rate(rate, digits=2)
    return text + (f" ({tokens} tokens)" if rate is not None and tokens is not None else "")
