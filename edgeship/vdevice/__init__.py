"""The virtual Android device: adbd's wire protocol over TCP, shell and sync services in a sandbox.

It knows nothing of the rest of edgeship (it is "an Android phone"); only ``edgeship.errors`` is shared.

From Python (tests)::

    with VirtualDevice(name="vd1", profile="vflagship", root=tmp_path / "vd1") as vd:
        subprocess.run(["adb", "connect", vd.serial])      # 127.0.0.1:PORT
        ...                                                  # vd.sandbox_root is its /data/local/tmp

From the shell::

    edgeship vdevice start --profile vbudget4g            # prints the serial, `adb connect`s it
    edgeship vdevice start --auth deny                    # asks for AUTH, never accepts: `unauthorized`
    edgeship vdevice list --json
    edgeship vdevice set-ram vdevice1 2G                  # its RAM now (its memory cgroup); `reset`: profile
    edgeship vdevice stop --all

Modules, one concern each: ``packets`` (framing), ``transport`` (connection, streams, flow control), ``auth``
(the AUTH handshake of ``--auth deny|allow``: tokens, key prompt, signature check),
``services/`` (shell, sync, sockets and small services), ``sandbox`` (folders, bubblewrap: what a command
sees), ``netns`` (its network namespace), ``memory`` and ``meminfo`` (its RAM: memory cgroup, /proc/meminfo),
``paths`` (sync paths resolved and opened without leaving the sandbox), ``processes`` (process groups),
``props`` (profiles, getprop), ``device`` (the listening device), ``daemon`` and ``registry`` (background
devices, their state files, ``set_ram``).
"""

from __future__ import annotations

from edgeship.vdevice.device import FEATURES, VirtualDevice
from edgeship.vdevice.props import DeviceProfile, list_profiles, load_profile
from edgeship.vdevice.registry import set_ram

__all__ = ["FEATURES", "DeviceProfile", "VirtualDevice", "list_profiles", "load_profile", "set_ram"]
