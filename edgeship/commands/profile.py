"""`edgeship profile BUILD_DIR [selection] … -o RUNS_DIR`: measure a bundle on devices, write profile.json."""

from __future__ import annotations

from pathlib import Path

import click

from edgeship.commands.options import selection_options
from edgeship.console import make_reporter, print_json, stdout_console


@click.command("profile")
@click.argument("build_dir", type=click.Path(file_okay=False, path_type=Path))
@selection_options
@click.option("--prefill", default=128, show_default=True, help="Prefill tokens per run.")
@click.option("--decode", default=128, show_default=True, help="Decode tokens per run.")
@click.option("--iterations", default=3, show_default=True, help="Measured runs per device.")
@click.option("--warmup", default=1, show_default=True, help="Warm-up runs per device (not in the summary).")
@click.option(
    "--threads", type=int, default=None, help="CPU threads for the runner (runner default if unset)."
)
@click.option("--backend", type=click.Choice(["cpu", "gpu", "npu"]), default="cpu", show_default=True)
@click.option("--max-tokens", type=int, default=None, help="KV cache size (default: prefill + decode).")
@click.option("--interval-ms", default=50, show_default=True, help="Probe sampling interval.")
@click.option(
    "--smaps-interval-ms",
    type=int,
    default=None,
    help="Fixed smaps (section residency) interval; default adaptive, ≤1% of wall time.",
)
@click.option(
    "--timeout", "timeout_s", default=600.0, show_default=True, help="Seconds before a run is killed."
)
@click.option("--cooldown-c", type=float, default=None, help="Wait until the hottest zone is below T °C.")
@click.option(
    "--runner",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Runner binary to use (else edgeship.yaml `runners`, else the host runner on x86_64).",
)
@click.option(
    "--output",
    "-o",
    "runs_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="RUNS_DIR: raw outputs and profile.json go under RUNS_DIR/<serial>/<bundle-sha12>/.",
)
@click.option("--json", "as_json", is_flag=True, help="Print profile.json paths and summaries as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress notes.")
def profile_command(
    build_dir: Path,
    serials: tuple[str, ...],
    all_: bool,
    labels: tuple[str, ...],
    servers: tuple[str, ...],
    prefill: int,
    decode: int,
    iterations: int,
    warmup: int,
    threads: int | None,
    backend: str,
    max_tokens: int | None,
    interval_ms: int,
    smaps_interval_ms: int | None,
    timeout_s: float,
    cooldown_c: float | None,
    runner: Path | None,
    runs_dir: Path,
    as_json: bool,
    quiet: bool,
) -> None:
    """Profile BUILD_DIR's bundle on devices: latency and memory per run, profile.json per device.

    Exit code 6 when a run failed (killed, crashed, timed out), 5 when a device failed.
    """
    from edgeship.android_harness.profile import profile_devices, raise_for_outcomes
    from edgeship.android_harness.profile_options import ProfileOptions
    from edgeship.android_harness.selection import select_devices
    from edgeship.config import load_config
    from edgeship.profiles.summary import SummaryRow, failed_row, residency_lines, summary_table

    config = load_config()
    options = ProfileOptions(
        prefill=prefill,
        decode=decode,
        iterations=iterations,
        warmup=warmup,
        threads=threads,
        backend=backend,
        interval_ms=interval_ms,
        smaps_interval_ms=smaps_interval_ms,
        timeout_s=timeout_s,
        cooldown_c=cooldown_c,
        runner=str(runner) if runner else None,
        max_tokens=max_tokens,
    )
    options.validate()
    devices = select_devices(config, serials, all_, labels, servers)
    reporter = make_reporter(quiet or as_json)
    outcomes = profile_devices(devices, build_dir, runs_dir, options, config, reporter)

    rows = [
        SummaryRow.from_profile(outcome.profile, outcome.error)
        if outcome.profile is not None
        else failed_row(outcome.serial, outcome.error or "failed")
        for outcome in outcomes
    ]
    if as_json:
        print_json(
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
            ]
        )
    else:
        stdout_console.print(summary_table(rows))
        for outcome in outcomes:
            if outcome.profile is None:
                continue
            stdout_console.print(f"{outcome.serial}: {outcome.profile_path}", highlight=False)
            for line in residency_lines(outcome.profile.summary):
                stdout_console.print(f"  {line}", highlight=False)
    raise_for_outcomes(outcomes)
