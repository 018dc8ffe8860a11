"""`edgeship runner parse`: read a saved runner log the way `edgeship profile` reads a live one."""

from __future__ import annotations

from pathlib import Path

import click

from edgeship.console import print_json, stdout_console
from edgeship.errors import InputError


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
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.argument("file", type=click.Path(path_type=Path))
def parse_command(
    runner_name: str, stderr_file: Path | None, log_sink_file: Path | None, as_json: bool, file: Path
) -> None:
    """Parse FILE, a saved runner output (stdout, or stdout and stderr together)."""
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
    if as_json:
        print_json(data)
        return
    from rich.table import Table

    table = Table(show_header=False, box=None)
    rows = [
        ("init", _fmt(metrics.init_s, "s")),
        ("time to first token", _fmt(metrics.ttft_s, "s")),
        ("prefill", _tokens(metrics.prefill_tokens, metrics.prefill_tok_s)),
        ("decode", _tokens(metrics.decode_tokens, metrics.decode_tok_s)),
        ("peak memory (runner's claim)", _fmt_bytes(metrics.peak_mem_bytes)),
    ]
    if "inference_avg_s" in metrics.raw:  # benchmark_model: one graph, latencies instead of token rates
        rows += [
            ("first inference", _fmt(metrics.raw.get("first_inference_s"), "s")),
            ("inference (avg)", _fmt(metrics.raw.get("inference_avg_s"), "s")),
        ]
    for name, value in rows:
        table.add_row(name, value)
    stdout_console.print(table)
    stdout_console.print(f"[dim]TTFT: {adapter.ttft_definition}[/dim]")


def _fmt(value: float | None, unit: str) -> str:
    return "—" if value is None else f"{value:.4g} {unit}"


def _tokens(tokens: int | None, rate: float | None) -> str:
    if rate is None:
        return "—"
    return f"{rate:.2f} tok/s" + (f" ({tokens} tokens)" if tokens is not None else "")


def _fmt_bytes(value: int | None) -> str:
    return "—" if value is None else f"{value / 2**20:.1f} MiB"
