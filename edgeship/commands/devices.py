"""`edgeship devices [--json] [--adb HOST:PORT …]`: every device on every adb server, with its facts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from edgeship.commands.options import output_options
from edgeship.console import Output
from edgeship.units import format_bytes

if TYPE_CHECKING:
    from edgeship.config import AdbServer


def _celsius(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}°C"


def _row(facts: dict[str, Any]) -> list[str]:
    def text(value: Any) -> str:
        return "-" if value in (None, "", {}) else str(value)

    ram = "-"
    if facts.get("ram_total"):
        ram = f"{format_bytes(facts.get('ram_available'), missing='?')} / {format_bytes(facts['ram_total'])}"
    battery = facts.get("battery") or {}
    battery_text = "-"
    if battery:
        level = f"{battery['level']}%" if battery.get("level") is not None else "?"
        battery_text = f"{level} {_celsius(battery.get('temperature_c'))}"
    thermal = facts.get("thermal") or {}
    hottest = f"{max(thermal.values()):.1f}°C" if thermal else "-"
    if facts.get("thermal_status") is not None:
        hottest += f" (status {facts['thermal_status']})"
    android = "-"
    if facts.get("release") or facts.get("sdk"):
        android = f"{text(facts.get('release'))} / {text(facts.get('sdk'))}"
    return [
        facts["serial"],
        facts["state"] if not facts.get("error") else f"{facts['state']} ({facts['error']})",
        facts["adb_server"],
        text(facts.get("model")),
        text(facts.get("manufacturer")),
        text(facts.get("soc")),
        text(facts.get("abi")),
        android,
        ram,
        format_bytes(facts.get("free_bytes"), missing="-"),
        battery_text,
        hottest,
    ]


@click.command("devices")
@click.option("--adb", "servers", multiple=True, help="Extra adb server HOST:PORT (repeatable).")
@output_options
def devices_command(servers: tuple[str, ...], out: Output) -> None:
    """List every device on every adb server (offline and unauthorized ones too) with its facts.

    --json: a list with one object per device (its facts, `error` when it could not be asked).
    """
    from edgeship.android_harness.adb import inventory
    from edgeship.config import load_config

    config = load_config()
    facts = [item.to_dict() for item in inventory(config, servers)]
    out.result(facts, lambda: _print_table(out, facts, config.servers(servers)))


def _print_table(out: Output, facts: list[dict[str, Any]], servers: list[AdbServer]) -> None:
    if not facts:
        out.print(
            "no devices on adb server(s) "
            + ", ".join(str(server) for server in servers)
            + "; connect a phone or run `edgeship vdevice start`"
        )
        return
    from rich.table import Table

    table = Table(title=None, header_style="bold")
    for column in (
        "serial",
        "state",
        "adb server",
        "model",
        "maker",
        "SoC",
        "ABI",
        "Android/SDK",
        "RAM avail/total",
        "free",
        "battery",
        "hottest zone",
    ):
        table.add_column(column)
    for item in facts:
        table.add_row(*_row(item))
    out.print(table)
