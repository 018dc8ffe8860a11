"""`edgeship gate --baseline A --current B`: fail CI on a regression, per device × bundle × figure."""

from __future__ import annotations

from pathlib import Path

import click

from edgeship.commands.options import output_options
from edgeship.console import Output
from edgeship.errors import GateFailure, Inconclusive, check_command


@click.command("gate")
@click.option(
    "--baseline",
    "baseline",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="Baseline RUNS_DIR or profile.json (repeatable).",
)
@click.option(
    "--current",
    "current",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="Current RUNS_DIR or profile.json (repeatable).",
)
@click.option(
    "--thresholds",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="YAML thresholds (over edgeship.yaml's gate: key and the defaults).",
)
@click.option(
    "--md", "md_path", type=click.Path(dir_okay=False), default=None, help="Also write the Markdown here."
)
@click.option("--strict", is_flag=True, help="Exit 3 when a figure or pair could not be decided.")
@output_options
@check_command
def gate_command(
    baseline: tuple[Path, ...],
    current: tuple[Path, ...],
    thresholds: Path | None,
    md_path: str | None,
    strict: bool,
    out: Output,
) -> None:
    """Compare current runs with a baseline: exit 0 pass, 1 regression, 2 bad input, 3 undecided (--strict).

    Latency: one-sided Mann-Whitney U at alpha 0.05 plus a minimum change (tok/s −5%, TTFT and init +10%);
    fewer than 3 runs a side is inconclusive. Memory: the median beyond max(16 MiB, 2%) for peak PSS/RSS,
    +10% for PLE resident.
    """
    from edgeship.config import load_config
    from edgeship.profiles.gate import gate_markdown, load_thresholds, run_gate
    from edgeship.profiles.output import write_outputs

    limits = load_thresholds(load_config().gate, thresholds)
    result = run_gate(baseline, current, limits)
    markdown = gate_markdown(result, strict)
    outputs = {md_path: markdown} if md_path else {}
    write_outputs(outputs)
    out.result(result.to_dict(), lambda: out.line(markdown.rstrip("\n")))
    if result.regressions:
        raise GateFailure(f"{result.regressions} regression(s); see the table above")
    if result.inconclusive:
        if strict:
            raise Inconclusive(f"{result.inconclusive} figure(s) or pair(s) undecided (--strict)")
        out.reporter.warn(
            f"{result.inconclusive} figure(s) or pair(s) could not be decided; "
            "more runs per side settle them (exit 3 with --strict)"
        )
