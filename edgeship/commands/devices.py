"""`edgeship devices [--json] [--adb HOST:PORT …]`: every device on every adb server, with its facts."""

from __future__ import annotations

from typing import Any

import click

from edgeship.console import print_json, stdout_console


def _celsius(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}°C"


def _row(facts: dict[str, Any]) -> list[str]:
    from edgeship.android_harness.store import human_bytes

    def text(value: Any) -> str:
        return "-" if value in (None, "", {}) else str(value)

    ram = "-"
    if facts.get("ram_total"):
        ram = f"{human_bytes(facts.get('ram_available'))} / {human_bytes(facts['ram_total'])}"
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
        human_bytes(facts["free_bytes"]) if facts.get("free_bytes") is not None else "-",
        battery_text,
        hottest,
    ]


@click.command("devices")
@click.option("--adb", "servers", multiple=True, help="Extra adb server HOST:PORT (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per device.")
def devices_command(servers: tuple[str, ...], as_json: bool) -> None:
    """List every device on every adb server (offline and unauthorized ones too) with its facts."""
    from edgeship.android_harness.facts import inventory
    from edgeship.config import load_config

    config = load_config()
    facts = [item.to_dict() for item in inventory(config, servers)]
    if as_json:
        print_json(facts)
        return
    if not facts:
        stdout_console.print(
            "no devices on adb server(s) "
            + ", ".join(str(server) for server in config.servers(servers))
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
    stdout_console.print(table)
