"""`edgeship report RUNS_DIR|profile.json … -o report.html [--md report.md|-] [--json summary.json|-]`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgeship.errors import UsageError, check_command


@click.command("report")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--output", "-o", "html_path", default=None, help="The HTML report (self-contained, no network)."
)
@click.option("--md", "md_path", default=None, help="Markdown for a CI summary or PR comment ('-': stdout).")
@click.option(
    "--json", "json_path", default=None, help="The figures as JSON, schema edgeship.report/1 ('-': stdout)."
)
@click.option(
    "--build",
    "builds",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="A BUILD_DIR of a profiled bundle, when it moved since profiling (planner and KV rows; repeatable).",
)
@check_command
def report_command(
    inputs: tuple[Path, ...],
    html_path: str | None,
    md_path: str | None,
    json_path: str | None,
    builds: tuple[Path, ...],
) -> None:
    """Report the profiles under INPUTS: facts, latency, memory, sections, timeline, fit, per device."""
    from edgeship.profiles.output import STDOUT, write_outputs
    from edgeship.profiles.report import make_report, report_html, report_json, report_markdown

    if not (html_path or md_path or json_path):
        raise UsageError("nothing to write: give -o report.html, --md FILE|- or --json FILE|-")
    if [md_path, json_path].count(STDOUT) > 1:
        raise UsageError("only one of --md and --json can go to stdout ('-')")
    if html_path == STDOUT:
        raise UsageError("-o takes a file path; use --md - or --json - for stdout")
    report = make_report(inputs, builds)
    outputs: dict[str, str] = {}
    if html_path:
        outputs[html_path] = report_html(report)
    if md_path:
        outputs[md_path] = report_markdown(report)
    if json_path:
        outputs[json_path] = json.dumps(report_json(report), indent=2) + "\n"
    for path in write_outputs(outputs):
        click.echo(f"wrote {path}", err=True)
