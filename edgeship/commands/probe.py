"""`edgeship probe build`: cross-build the native memory probe for a device ABI."""

from __future__ import annotations

from pathlib import Path

import click

from edgeship.commands.options import output_options
from edgeship.console import Output


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
@output_options
def build_command(abi: str, output: Path | None, out: Output) -> None:
    """Build (or reuse from the cache) the probe for ABI and print its path.

    --json: abi, path, sha256, source_sha256 (the cache key), bytes.
    """
    from edgeship.android_harness.probe import build_probe, probe_source_sha256
    from edgeship.hashing import sha256_file

    with out.reporter.step(f"probe for {abi}"):
        path = build_probe(abi, output, reporter=out.reporter)
    out.result(
        {
            "abi": abi,
            "path": str(path),
            "sha256": sha256_file(path),
            "source_sha256": probe_source_sha256(),
            "bytes": path.stat().st_size,
        },
        lambda: out.line(str(path)),
    )
