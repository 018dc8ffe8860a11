"""Device facts (what a phone is) and device state (how hot and charged it is right now).

Everything is gathered with ONE shell script per device: on a bench of phones behind a USB hub every round
trip counts, and a lab listing several servers would otherwise pay for a dozen `getprop` calls per phone.
The script prints tagged sections; the parsers below are pure functions so they are tested on captured
output. A field the device does not expose stays None — never a guess.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from edgeship.android_harness.adb.device import Device
from edgeship.android_harness.adb.selection import ONLINE, FoundDevice, device_for, gather
from edgeship.android_harness.adb.servers import connect_reachable
from edgeship.android_harness.adb.tagged import df_section, parse_df_available, split_sections, tag
from edgeship.config import DEFAULT_DEVICE_ROOT, Config
from edgeship.errors import EdgeshipError

PROPS = {
    "model": "ro.product.model",
    "manufacturer": "ro.product.manufacturer",
    "soc_model": "ro.soc.model",
    "board_platform": "ro.board.platform",
    "abi": "ro.product.cpu.abi",
    "release": "ro.build.version.release",
    "sdk": "ro.build.version.sdk",
}

# The parts of the script shared by facts and state: battery, thermal zones, CPU clocks.
STATE_SCRIPT = r"""
echo '@battery'; dumpsys battery 2>/dev/null
echo '@power_supply'
for s in /sys/class/power_supply/*; do
  [ -r "$s/type" ] || continue
  echo "supply ${s##*/} type=$(cat "$s/type" 2>/dev/null)" \
    "capacity=$(cat "$s/capacity" 2>/dev/null) temp=$(cat "$s/temp" 2>/dev/null)"
done
echo '@thermal_status'; dumpsys thermalservice 2>/dev/null | grep -i 'thermal status'
echo '@thermal'
for z in /sys/class/thermal/thermal_zone*; do
  [ -r "$z/temp" ] || continue
  echo "zone ${z##*thermal_zone} $(cat "$z/temp" 2>/dev/null) $(cat "$z/type" 2>/dev/null)"
done
echo '@cpufreq'
for c in /sys/devices/system/cpu/cpu[0-9]*; do
  [ -r "$c/cpufreq/scaling_cur_freq" ] && echo "${c##*/} $(cat "$c/cpufreq/scaling_cur_freq" 2>/dev/null)"
done
echo '@end'
"""


def facts_script(device_root: str) -> str:
    prop_lines = "".join(f'echo "prop {key}=$(getprop {key})"\n' for key in PROPS.values())
    return (
        prop_lines
        + f"{tag('meminfo')}; cat /proc/meminfo 2>/dev/null\n"
        + df_section(device_root)
        + STATE_SCRIPT
    )


@dataclass
class Battery:
    level: int | None = None
    temperature_c: float | None = None


@dataclass
class DeviceFacts:
    serial: str
    state: str
    adb_server: str
    model: str | None = None
    manufacturer: str | None = None
    soc: str | None = None
    abi: str | None = None
    release: str | None = None
    sdk: int | None = None
    ram_total: int | None = None
    ram_available: int | None = None
    free_bytes: int | None = None
    device_root: str = DEFAULT_DEVICE_ROOT
    battery: Battery | None = None
    thermal: dict[str, float] = field(default_factory=dict)
    thermal_status: int | None = None
    cpu_freq_khz: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_props(lines: list[str]) -> dict[str, str]:
    props: dict[str, str] = {}
    for line in lines:
        if line.startswith("prop ") and "=" in line:
            key, _, value = line[5:].partition("=")
            if value.strip():
                props[key.strip()] = value.strip()
    return props


def meminfo_values(lines: list[str]) -> dict[str, int]:
    """/proc/meminfo lines → field → bytes (the kB fields)."""
    values: dict[str, int] = {}
    for line in lines:
        match = re.match(r"^([\w()]+):\s+(\d+)\s*kB", line)
        if match:
            values[match.group(1)] = int(match.group(2)) * 1024
    return values


def parse_meminfo(lines: list[str]) -> tuple[int | None, int | None]:
    values = meminfo_values(lines)
    return values.get("MemTotal"), values.get("MemAvailable")


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def parse_battery(battery_lines: list[str], supply_lines: list[str]) -> Battery | None:
    """`dumpsys battery` (level, temperature in tenths of °C), else a Battery-type power_supply node."""
    level: int | None = None
    temperature: float | None = None
    for line in battery_lines:
        key, _, value = line.strip().partition(":")
        value = value.strip()
        if key == "level" and value.lstrip("-").isdigit():
            level = int(value)
        elif key == "temperature" and value.lstrip("-").isdigit():
            temperature = int(value) / 10.0
    if level is None or temperature is None:
        for line in supply_lines:
            fields = dict(part.split("=", 1) for part in line.split()[2:] if "=" in part)
            if fields.get("type", "").lower() != "battery":
                continue
            capacity = fields.get("capacity", "")
            temp = fields.get("temp", "")
            if level is None and capacity.lstrip("-").isdigit():
                level = int(capacity)
            if temperature is None and temp.lstrip("-").isdigit():
                temperature = int(temp) / 10.0
            break
    if level is None and temperature is None:
        return None
    return Battery(level=level, temperature_c=temperature)


def thermal_celsius(raw: float) -> float:
    """Thermal zones report millidegrees; a few drivers report whole degrees."""
    return raw / 1000.0 if abs(raw) >= 1000 else raw


def parse_thermal(lines: list[str]) -> dict[str, float]:
    zones: dict[str, float] = {}
    for line in lines:
        parts = line.split(None, 3)
        if len(parts) < 3 or parts[0] != "zone":
            continue
        raw = _number(parts[2])
        if raw is None:
            continue
        index = parts[1]
        name = parts[3].strip() if len(parts) > 3 and parts[3].strip() else f"thermal_zone{index}"
        if name in zones:
            name = f"{name}#{index}"
        zones[name] = round(thermal_celsius(raw), 3)
    return zones


def parse_thermal_status(lines: list[str]) -> int | None:
    for line in lines:
        match = re.search(r"thermal status:\s*(-?\d+)", line, re.IGNORECASE)
        if match:
            return int(match.group(1))
    return None


def parse_cpufreq(lines: list[str]) -> dict[str, int]:
    freqs: dict[str, int] = {}
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            freqs[parts[0]] = int(parts[1])
    return freqs


def parse_state(sections: dict[str, list[str]]) -> dict[str, Any]:
    battery = parse_battery(sections.get("battery", []), sections.get("power_supply", []))
    return {
        "thermal": parse_thermal(sections.get("thermal", [])),
        "thermal_status": parse_thermal_status(sections.get("thermal_status", [])),
        "battery": asdict(battery) if battery else None,
        "cpu_freq_khz": parse_cpufreq(sections.get("cpufreq", [])),
    }


def parse_facts(device: Device, output: str, device_root: str = DEFAULT_DEVICE_ROOT) -> DeviceFacts:
    head, sections = split_sections(output)
    props = parse_props(head)
    ram_total, ram_available = parse_meminfo(sections.get("meminfo", []))
    state = parse_state(sections)
    sdk = props.get("ro.build.version.sdk")
    return DeviceFacts(
        serial=device.serial,
        state=device.state,
        adb_server=str(device.server),
        model=props.get("ro.product.model"),
        manufacturer=props.get("ro.product.manufacturer"),
        soc=props.get("ro.soc.model") or props.get("ro.board.platform"),
        abi=props.get("ro.product.cpu.abi"),
        release=props.get("ro.build.version.release"),
        sdk=int(sdk) if sdk and sdk.isdigit() else None,
        ram_total=ram_total,
        ram_available=ram_available,
        free_bytes=parse_df_available(sections.get("df", [])),
        device_root=device_root,
        battery=Battery(**state["battery"]) if state["battery"] else None,
        thermal=state["thermal"],
        thermal_status=state["thermal_status"],
        cpu_freq_khz=state["cpu_freq_khz"],
    )


def device_facts(device: Device, device_root: str = DEFAULT_DEVICE_ROOT) -> DeviceFacts:
    """Facts of an online device in one shell round trip."""
    result = device.shell(facts_script(device_root), timeout=30)
    return parse_facts(device, result.text, device_root)


def device_state(device: Device) -> dict[str, Any]:
    """Thermal zones, battery and CPU clocks now — for before/after snapshots around a profile run."""
    result = device.shell(STATE_SCRIPT, timeout=30)
    _, sections = split_sections(result.text)
    return parse_state(sections)


def inventory(config: Config, servers: tuple[str, ...] = ()) -> list[DeviceFacts]:
    """Facts of every device on every server; offline/unauthorized ones with their state only.

    Devices are asked in parallel (one script each): a bench of ten phones answers in the time of one.
    """
    # One lab host being down must not hide the phones of the others: it gets a row of its own.
    clients, down = connect_reachable(config.servers(servers))
    unreachable = [
        DeviceFacts(serial="-", state="unreachable", adb_server=str(server), error=reason)
        for server, reason in down
    ]
    found = gather(clients)

    def one(item: FoundDevice) -> DeviceFacts:
        device = device_for(item)
        if item.listing.state != ONLINE:
            return DeviceFacts(
                serial=device.serial,
                state=device.state,
                adb_server=str(device.server),
                model=item.listing.model,
                device_root=config.device_root,
            )
        try:
            return device_facts(device, config.device_root)
        except EdgeshipError as exc:
            return DeviceFacts(
                serial=device.serial,
                state=device.state,
                adb_server=str(device.server),
                device_root=config.device_root,
                error=exc.message,
            )

    if not found:
        return unreachable
    with ThreadPoolExecutor(max_workers=min(16, len(found))) as pool:
        return list(pool.map(one, found)) + unreachable
