"""The virtual Android device: adbd's wire protocol over TCP, shell and sync services in a sandbox.

It knows nothing of the rest of edgeship (it is "an Android phone"); only ``edgeship.errors`` is shared.
"""

from __future__ import annotations

from edgeship.vdevice.device import FEATURES, VirtualDevice
from edgeship.vdevice.props import DeviceProfile, list_profiles, load_profile

__all__ = ["FEATURES", "DeviceProfile", "VirtualDevice", "list_profiles", "load_profile"]
