"""`edgeship probe build`: cross-build the native memory probe for a device ABI."""

from __future__ import annotations

from pathlib import Path

import click

from edgeship.console import make_reporter, print_json


@click.group("probe")
def probe_group() -> None:
    """The native memory probe (C, static musl, built with ziglang on first use)."""


@probe_group.command("build")
@click.option(
    "--abi",
    required=True,
    type=click.Choice(["arm64-v8a", "x86_64", "armeabi-v7a", "x86"]),
    help="Device ABI to build for.",
)
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), help="Also copy the binary here (file or folder)."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--quiet", is_flag=True, help="No progress output.")
def build_command(abi: str, output: Path | None, as_json: bool, quiet: bool) -> None:
    """Build (or reuse from the cache) the probe for ABI and print its path."""
    from edgeship.android_harness.probe.build import build_probe, probe_source_sha256
    from edgeship.hashing import sha256_file

    reporter = make_reporter(quiet or as_json)
    with reporter.step(f"probe for {abi}"):
        path = build_probe(abi, output, reporter=reporter)
    if as_json:
        print_json(
            {
                "abi": abi,
                "path": str(path),
                "sha256": sha256_file(path),
                "source_sha256": probe_source_sha256(),
                "bytes": path.stat().st_size,
            }
        )
    else:
        click.echo(str(path))
