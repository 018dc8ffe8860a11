"""`edgeship push BUILD_DIR [selection]` and `edgeship gc [selection] [--keep N]`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from edgeship.commands.options import DeviceSelection, output_options, selection_options
from edgeship.console import Output
from edgeship.units import format_bytes, format_number

if TYPE_CHECKING:
    from edgeship.android_harness.push import PushResult


@click.command("push")
@click.argument("build_dir", type=click.Path(path_type=Path))
@selection_options
@click.option("--dry-run", is_flag=True, help="Show what would be sent and reused per device; send nothing.")
@click.option(
    "--no-verify",
    is_flag=True,
    help="Skip the sha256 checks (host and device); sizes only. The bundle is marked unverified on the "
    "device until a verified push (or profile) checks it there.",
)
@click.option(
    "--verify-present",
    is_flag=True,
    help="When a device already holds the bundle, hash it there too (seconds per GB) and push it again "
    "if it no longer matches.",
)
@output_options
def push_command(
    build_dir: Path,
    selection: DeviceSelection,
    dry_run: bool,
    no_verify: bool,
    verify_present: bool,
    out: Output,
) -> None:
    """Push BUILD_DIR's bundle to devices, sending only the sections they do not already hold.

    The bundle lands at <device root>/bundles/<sha256>/model.litertlm with its manifest and tokenizer,
    renamed into place only after sha256sum on the device. A bundle already there is "present" by its
    size unless --verify-present. Exit code 5 when any device failed. --json: a list with one object per
    device (status pushed | present | planned | failed, bytes sent and reused, seconds, error).
    """
    from edgeship.android_harness.push import push_many
    from edgeship.config import load_config
    from edgeship.errors import DeviceError, UsageError
    from edgeship.exporter.manifest import read_build

    if no_verify and verify_present:
        raise UsageError("--verify-present checks sha256 on the device; it cannot go with --no-verify")
    config = load_config()
    # A bad BUILD_DIR is refused before any device is touched; the bundle's sha256 (a second or two for a
    # GB) is computed while the adb servers are asked for devices, and checked before anything is sent.
    build = read_build(build_dir)
    devices = selection.devices_for_build(config, build, verify=not no_verify, reporter=out.reporter)
    results = push_many(
        devices,
        build,
        verify=not no_verify,
        dry_run=dry_run,
        reporter=out.reporter,
        root=config.device_root,
        verify_present=verify_present,
    )
    out.result([result.to_dict() for result in results], lambda: _print_results(out, results, dry_run))
    failed = [result for result in results if not result.ok]
    if failed:
        if len(results) == 1:
            raise DeviceError(failed[0].error or f"push to {failed[0].serial} failed")
        raise DeviceError(
            f"push failed on {len(failed)} of {len(results)} devices: "
            + "; ".join(f"{result.serial}: {result.error}" for result in failed)
        )


def _print_results(out: Output, results: list[PushResult], dry_run: bool) -> None:
    from rich.table import Table

    table = Table(header_style="bold")
    for column in (
        "serial",
        "status",
        "would send" if dry_run else "sent",
        "reused",
        "seconds",
        "path / error",
    ):
        table.add_column(column)
    for result in results:
        table.add_row(
            result.serial,
            result.status,
            format_bytes(result.bytes_sent),
            format_bytes(result.bytes_reused),
            format_number(result.seconds, 2),
            result.remote_path if result.ok else (result.error or ""),
        )
    out.print(table)


@click.command("gc")
@selection_options
@click.option("--keep", default=2, show_default=True, help="Most recently pushed bundles to keep.")
@click.option("--dry-run", is_flag=True, help="Show what would be removed.")
@output_options
def gc_command(
    selection: DeviceSelection,
    keep: int,
    dry_run: bool,
    out: Output,
) -> None:
    """Remove old bundles (all but the --keep newest) and leftovers (staging, runs) from devices.

    Leftovers written to in the last 10 minutes belong to a push or profile still running and are kept.
    Only what edgeship named is removed, and only under a device root holding the .edgeship-store marker
    that push writes; other entries are listed as foreign (--json) and left alone.
    """
    from concurrent.futures import ThreadPoolExecutor

    from edgeship.android_harness.store import collect_garbage
    from edgeship.config import load_config
    from edgeship.errors import DeviceError, UsageError

    if keep < 0:
        raise UsageError("--keep must be 0 or more")
    config = load_config()
    devices = selection.devices(config, out.reporter)
    with ThreadPoolExecutor(max_workers=max(1, len(devices))) as pool:
        results = list(
            pool.map(
                lambda d: collect_garbage(d, keep=keep, root=config.device_root, dry_run=dry_run), devices
            )
        )

    def human() -> None:
        verb = "would free" if dry_run else "freed"
        for result in results:
            if result.ok:
                removed = len(result.removed_bundles)
                leftovers = len(result.removed_leftovers)
                busy = f"; {len(result.in_use)} in use by a running push or profile" if result.in_use else ""
                if result.foreign:
                    busy += f"; {len(result.foreign)} not edgeship's, left alone"
                out.print(
                    f"{result.serial}: kept {len(result.kept)} bundle(s), removed {removed} and "
                    f"{leftovers} leftover(s){busy}; {verb} {format_bytes(result.freed_bytes)}"
                )
            else:
                out.print(f"{result.serial}: gc failed: {result.error}")

    out.result([result.to_dict() for result in results], human)
    failed = [result for result in results if not result.ok]
    if failed:
        raise DeviceError("; ".join(f"{result.serial}: {result.error}" for result in failed))
