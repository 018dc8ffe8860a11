"""`edgeship fit BUILD_DIR [selection] -o RUNS_DIR [--method auto|cgroup|balloon] [--context N]`.

A command of its own rather than `profile --squeeze`: it has its own result (the curve, the knee, the kill
point: fit.json, `edgeship.fit/1`), its own options (how memory is taken, the bisection) and its own meaning
of failure (a killed runner is a measurement here, not a failed run), while every step is still a normal
profile run with profile's options.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from edgeship.android_harness.fit.options import FitOptions
from edgeship.android_harness.profile.options import ProfileOptions
from edgeship.commands.options import (
    DeviceSelection,
    options_from,
    output_options,
    runs_dir_option,
    selection_options,
)
from edgeship.console import Output


@click.command("fit")
@click.argument("build_dir", type=click.Path(file_okay=False, path_type=Path))
@selection_options
@options_from(FitOptions)
@options_from(ProfileOptions)
@runs_dir_option("profile.json (the unconstrained run), fit.json and fit/step-<k>/")
@output_options
def fit_command(
    build_dir: Path,
    selection: DeviceSelection,
    runs_dir: Path,
    out: Output,
    **settings: Any,
) -> None:
    """Find how little available memory BUILD_DIR's bundle still decodes well in, per device.

    Profiles the bundle unconstrained, then at decreasing available memory (bisection): the knee is the
    least memory where decode tok/s stays at --threshold of the unconstrained run, the kill point where the
    runner stops running. --iterations are the measured runs of the unconstrained run and of each step,
    --warmup the unconstrained run's warm-ups, --step-warmup each step's. Each device gets its memory back
    however the command ends. Exit 5 when a device failed (among them: no way to take its memory), 2 for
    bad options, 3 for a bad BUILD_DIR.
    """
    from edgeship.android_harness.fit import fit_devices
    from edgeship.config import load_config
    from edgeship.errors import DeviceError
    from edgeship.exporter.manifest import read_build

    fit_names = set(FitOptions.__dataclass_fields__)
    fit_options = FitOptions(**{k: v for k, v in settings.items() if k in fit_names})
    profile_options = ProfileOptions(**{k: v for k, v in settings.items() if k not in fit_names})
    config = load_config()
    profile_options.validate()
    fit_options.validate(profile_options)
    fit_options.apply_context(profile_options)
    build = read_build(build_dir)
    profile_options.validate_for(build)
    devices = selection.devices_for_build(config, build, verify=True, reporter=out.reporter)
    with sigterm_as_interrupt():
        outcomes = fit_devices(devices, build, runs_dir, profile_options, fit_options, config, out.reporter)

    def human() -> None:
        for outcome in outcomes:
            if outcome.fit is None:
                out.print(f"{outcome.serial}: {outcome.error}")
                continue
            out.print(curve_table(outcome))
            out.line(f"{outcome.serial}: {outcome.fit.verdict or 'no step measured'}")
            from edgeship.profiles.fitcurve import planner_line

            planner = planner_line(outcome.fit)
            if planner:
                out.line(f"{outcome.serial}: {planner}")
            out.line(f"{outcome.serial}: {outcome.fit_path}")

    out.result(
        [
            {
                "serial": outcome.serial,
                "fit": str(outcome.fit_path) if outcome.fit_path else None,
                "ok": outcome.ok,
                "error": outcome.error,
                "result": outcome.fit.to_dict() if outcome.fit else None,
            }
            for outcome in outcomes
        ],
        human,
    )
    failed = [outcome for outcome in outcomes if outcome.error]
    if failed:
        more = f" (and {len(failed) - 1} more devices)" if len(failed) > 1 else ""
        raise DeviceError(f"{failed[0].error}{more}")


def curve_table(outcome: Any) -> Any:
    from rich.table import Table

    from edgeship.profiles.fitcurve import CURVE_HEADERS, CURVE_NUMERIC, curve_rows

    result = outcome.fit
    title = (
        f"edgeship fit — {outcome.serial}, {result.method}, {result.bundle.get('arch')} "
        f"{result.bundle.get('recipe')} ({result.state})"
    )
    table = Table(title=title, title_justify="left")
    for number, header in enumerate(CURVE_HEADERS):
        table.add_column(header, justify="right" if number in CURVE_NUMERIC else "left")
    for row in curve_rows(result):
        table.add_row(*row)
    return table


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a CI job cancelled) takes the Ctrl-C path, so the devices get their memory back."""

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
