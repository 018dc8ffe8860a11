"""Options shared by the commands, declared once: device selection, the output sink, and options generated
from a stage's options dataclass (so a default or a choice is said in one place).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from edgeship.console import Output, Reporter

if TYPE_CHECKING:
    from edgeship.android_harness.adb import Device
    from edgeship.config import Config
    from edgeship.exporter.manifest import Build

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


@dataclasses.dataclass(frozen=True)
class DeviceSelection:
    """What --device/--all/--label/--adb asked for (``selection_options`` passes it as ``selection``)."""

    serials: tuple[str, ...] = ()
    all_: bool = False
    labels: tuple[str, ...] = ()
    servers: tuple[str, ...] = ()

    def devices(self, config: Config, reporter: Reporter) -> list[Device]:
        from edgeship.android_harness.adb import select_devices

        return select_devices(config, self.serials, self.all_, self.labels, self.servers, reporter=reporter)

    def devices_for_build(
        self, config: Config, build: Build, *, verify: bool, reporter: Reporter
    ) -> list[Device]:
        """The devices for a build the caller has read (so a bad BUILD_DIR was named before any device).

        With ``verify`` the bundle's sha256 (a second or two per GB) is checked while the adb servers are
        asked for devices; a bundle changed after export is then refused even when selection failed too.
        """
        from concurrent.futures import ThreadPoolExecutor

        from edgeship.exporter.manifest import verify_bundle

        with ThreadPoolExecutor(max_workers=1) as pool:
            hashed = pool.submit(verify_bundle, build) if verify else None
            try:
                return self.devices(config, reporter)
            finally:
                if hashed is not None:
                    hashed.result()


def selection_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--device/--all/--label/--adb, the same on every command that acts on devices; the command gets them
    as ``selection: DeviceSelection``."""

    @functools.wraps(command)
    def with_selection(
        *args: Any,
        serials: tuple[str, ...],
        all_: bool,
        labels: tuple[str, ...],
        servers: tuple[str, ...],
        **kwargs: Any,
    ) -> Any:
        return command(*args, selection=DeviceSelection(serials, all_, labels, servers), **kwargs)

    for option in reversed(
        [
            click.option("--device", "-s", "serials", multiple=True, help="Device serial (repeatable)."),
            click.option("--all", "all_", is_flag=True, help="Every online device on every adb server."),
            click.option(
                "--label", "labels", multiple=True, help="Devices of a label in edgeship.yaml (repeatable)."
            ),
            click.option("--adb", "servers", multiple=True, help="Extra adb server HOST:PORT (repeatable)."),
        ]
    ):
        with_selection = option(with_selection)
    return with_selection


def runs_dir_option(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """-o/--output RUNS_DIR (required) as ``runs_dir``; ``what`` goes under RUNS_DIR/<serial>/<sha12>/."""
    return click.option(
        "--output",
        "-o",
        "runs_dir",
        type=click.Path(file_okay=False, path_type=Path),
        required=True,
        help=f"RUNS_DIR: {what} go under RUNS_DIR/<serial>/<bundle-sha12>/.",
    )


def output_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--json and --quiet/-q, the same on every data command; the command gets them as ``out: Output``."""

    @functools.wraps(command)
    def with_output(*args: Any, as_json: bool, quiet: bool, **kwargs: Any) -> Any:
        return command(*args, out=Output(json=as_json, quiet=quiet), **kwargs)

    with_output = click.option(
        "--quiet", "-q", "quiet", is_flag=True, help="No progress or notes on stderr; the result only."
    )(with_output)
    return click.option(
        "--json", "as_json", is_flag=True, help="Print the result as one JSON document on stdout."
    )(with_output)


def options_from(cls: type) -> Decorator:
    """One click option per field of the dataclass ``cls`` whose metadata has a "help".

    The flag is ``--field-name`` unless the metadata names a "flag"; the type comes from the annotation
    (``X | None`` is an optional X), the default from the field, a click.Choice from "choices", a file path
    (as str) from "path", the help's placeholder from "metavar". The command receives each value under the
    field's name.
    """
    hints = typing.get_type_hints(cls)
    decorators: list[Decorator] = []
    for item in dataclasses.fields(cls):
        meta = item.metadata
        if "help" not in meta:
            continue
        click_type: Any
        if "choices" in meta:
            click_type = click.Choice(list(meta["choices"]))
        elif meta.get("path"):
            click_type = click.Path(dir_okay=False)
        else:
            click_type = _value_type(hints[item.name])
        decorators.append(
            click.option(
                meta.get("flag") or "--" + item.name.replace("_", "-"),
                item.name,
                type=click_type,
                default=item.default,
                show_default=item.default is not None,
                help=meta["help"],
                metavar=meta.get("metavar"),
            )
        )

    def apply(command: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(decorators):
            command = decorator(command)
        return command

    return apply


def _value_type(hint: Any) -> type:
    """int for ``int`` and ``int | None``."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        (value,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return typing.cast(type, value)
    return typing.cast(type, hint)
