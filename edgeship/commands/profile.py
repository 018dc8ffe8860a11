"""`edgeship profile BUILD_DIR [selection] … -o RUNS_DIR`: measure a bundle on devices, write profile.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from edgeship.android_harness.profile.options import ProfileOptions
from edgeship.commands.options import (
    DeviceSelection,
    options_from,
    output_options,
    runs_dir_option,
    selection_options,
)
from edgeship.console import Output


@click.command("profile")
@click.argument("build_dir", type=click.Path(file_okay=False, path_type=Path))
@selection_options
@options_from(ProfileOptions)
@runs_dir_option("raw outputs and profile.json")
@output_options
def profile_command(
    build_dir: Path,
    selection: DeviceSelection,
    runs_dir: Path,
    out: Output,
    **settings: Any,
) -> None:
    """Profile BUILD_DIR's bundle on devices: latency and memory per run, profile.json per device.

    Exit code 6 when a run failed (killed, crashed, timed out), 5 when a device failed.
    """
    from edgeship.android_harness.profile import profile_devices, raise_for_outcomes
    from edgeship.config import load_config
    from edgeship.exporter.manifest import read_build
    from edgeship.profiles.summary import SummaryRow, failed_row, residency_lines, summary_table

    config = load_config()
    options = ProfileOptions(**settings)
    # Bad options and a bad BUILD_DIR are named before any device is asked (as `push` does).
    options.validate()
    build = read_build(build_dir)
    options.validate_for(build)
    devices = selection.devices_for_build(config, build, verify=True, reporter=out.reporter)
    outcomes = profile_devices(devices, build, runs_dir, options, config, out.reporter)

    rows = [
        SummaryRow.from_profile(outcome.profile, outcome.error)
        if outcome.profile is not None
        else failed_row(outcome.serial, outcome.error or "failed")
        for outcome in outcomes
    ]

    def human() -> None:
        out.print(summary_table(rows))
        for outcome in outcomes:
            if outcome.profile is None:
                continue
            out.print(f"{outcome.serial}: {outcome.profile_path}")
            for line in residency_lines(outcome.profile.summary):
                out.print(f"  {line}")

    out.result(
        [
            {
                "serial": outcome.serial,
                "profile": str(outcome.profile_path) if outcome.profile_path else None,
                "ok": outcome.ok,
                "error": outcome.error,
                "failed_runs": outcome.failed_runs,
                "row": vars(row),
                "summary": outcome.profile.summary if outcome.profile else None,
            }
            for outcome, row in zip(outcomes, rows, strict=True)
        ],
        human,
    )
    raise_for_outcomes(outcomes)
