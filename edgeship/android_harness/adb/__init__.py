"""adb: the phones on every adb server, and what every stage does with one (shell, files, facts).

Modules: ``servers`` (adb servers: connect, start the local one), ``shell`` (command lines, results),
``sync`` (the host side of the sync protocol), ``device`` (``Device``), ``tagged`` (one script per question,
its output cut by '@tag' lines; shared shell fragments), ``selection`` (--device/--label/--all),
``facts`` (what a phone is and its state now), ``service`` (a raw service stream in lines).
"""

from edgeship.android_harness.adb.device import Device
from edgeship.android_harness.adb.facts import (
    Battery,
    DeviceFacts,
    device_facts,
    device_state,
    inventory,
    meminfo_values,
)
from edgeship.android_harness.adb.selection import (
    ONLINE,
    STATE_HINTS,
    DeviceListing,
    list_all_devices,
    select_devices,
)
from edgeship.android_harness.adb.servers import (
    ServerClient,
    connect_reachable,
    connect_server,
    connect_servers,
)
from edgeship.android_harness.adb.service import LineStream, ServiceRefused
from edgeship.android_harness.adb.shell import ShellResult
from edgeship.android_harness.adb.tagged import END, df_section, parse_df_available, split_sections, tag

__all__ = [
    "END",
    "ONLINE",
    "STATE_HINTS",
    "Battery",
    "Device",
    "DeviceFacts",
    "DeviceListing",
    "LineStream",
    "ServerClient",
    "ServiceRefused",
    "ShellResult",
    "connect_reachable",
    "connect_server",
    "connect_servers",
    "device_facts",
    "device_state",
    "df_section",
    "inventory",
    "list_all_devices",
    "meminfo_values",
    "parse_df_available",
    "select_devices",
    "split_sections",
    "tag",
]
