"""Parsers of the one-script facts output, on text shaped like a real phone's (dumpsys, sysfs, toybox df)."""

from __future__ import annotations

from edgeship.android_harness.adb.facts import (
    parse_battery,
    parse_cpufreq,
    parse_meminfo,
    parse_props,
    parse_thermal,
    parse_thermal_status,
)
from edgeship.android_harness.adb.tagged import parse_df_available, split_sections

PHONE_OUTPUT = """prop ro.product.model=Pixel 8
prop ro.product.manufacturer=Google
prop ro.soc.model=
prop ro.board.platform=zuma
prop ro.product.cpu.abi=arm64-v8a
prop ro.build.version.release=15
prop ro.build.version.sdk=35
@meminfo
MemTotal:        7824744 kB
MemFree:          207848 kB
MemAvailable:    3212960 kB
@df
Filesystem                 1K-blocks     Used Available Use% Mounted on
/dev/block/dm-50           115609840 43120740  72358028  38% /data
@battery
Current Battery Service state:
  AC powered: false
  USB powered: true
  level: 87
  scale: 100
  temperature: 312
@power_supply
supply battery type=Battery capacity=86 temp=309
supply usb type=USB capacity= temp=
@thermal_status
Thermal Status: 1
@thermal
zone 0 45312 cpu-0-0
zone 1 38100 battery
zone 2 44000 cpu-0-0
zone 3 -273000
@cpufreq
cpu0 1704000
cpu7 2914000
@end
"""


def test_sections_and_props() -> None:
    head, sections = split_sections(PHONE_OUTPUT)
    props = parse_props(head)
    assert props["ro.product.model"] == "Pixel 8"
    assert "ro.soc.model" not in props  # empty means absent, so the platform is used instead
    assert parse_meminfo(sections["meminfo"]) == (7824744 * 1024, 3212960 * 1024)
    assert parse_df_available(sections["df"]) == 72358028 * 1024


def test_battery_prefers_dumpsys_and_falls_back_to_sysfs() -> None:
    _, sections = split_sections(PHONE_OUTPUT)
    battery = parse_battery(sections["battery"], sections["power_supply"])
    assert battery is not None and (battery.level, battery.temperature_c) == (87, 31.2)
    sysfs_only = parse_battery([], sections["power_supply"])
    assert sysfs_only is not None and (sysfs_only.level, sysfs_only.temperature_c) == (86, 30.9)
    assert parse_battery([], ["supply usb type=USB capacity= temp="]) is None


def test_thermal_zones_cpufreq_and_status() -> None:
    _, sections = split_sections(PHONE_OUTPUT)
    zones = parse_thermal(sections["thermal"])
    assert zones == {"cpu-0-0": 45.312, "battery": 38.1, "cpu-0-0#2": 44.0, "thermal_zone3": -273.0}
    assert parse_thermal_status(sections["thermal_status"]) == 1
    assert parse_cpufreq(sections["cpufreq"]) == {"cpu0": 1704000, "cpu7": 2914000}


def test_df_with_a_wrapped_filesystem_name() -> None:
    lines = [
        "Filesystem 1K-blocks Used Available Use% Mounted on",
        "/dev/block/bootdevice/by-name/userdata",
        "  52228316 1234 51000000 3% /data",
    ]
    assert parse_df_available(lines) == 51000000 * 1024
    assert parse_df_available(["df: /nope: No such file"]) is None


def test_a_device_without_sensors_reports_nothing_invented() -> None:
    _, sections = split_sections("@battery\n@power_supply\n@thermal\n@cpufreq\n@end\n")
    assert parse_battery(sections["battery"], sections["power_supply"]) is None
    assert parse_thermal(sections["thermal"]) == {}
    assert parse_cpufreq(sections["cpufreq"]) == {}


def test_df_of_android_5_toolbox_in_human_sizes() -> None:
    """Android 5's toolbox df ignores -k and prints sizes like "8.2G": main read no figure and skipped the
    space check without a word."""
    lines = [
        "Filesystem               Size     Used     Free   Blksize",
        "/data/local/tmp: No such file or directory",
        "/data                    9.4G     1.2G     8.2G   4096",
    ]
    assert parse_df_available(lines) == int(8.2 * 1024**3)
    small = [
        "Filesystem               Size     Used     Free   Blksize",
        "/cache  503.9M   10.2M  493.7M   4096",
    ]
    assert parse_df_available(small) == int(493.7 * 1024**2)
    # Both fallbacks ran (toolbox df prints its header each time and exits 1 on the -k it does not know).
    twice = [*small, *small[:1], "/data                    9.4G     1.2G     7.5K   4096"]
    assert parse_df_available(twice) == int(7.5 * 1024)
