"""`edgeship profile`: run a build through the probe on each device and write profile.json.

Modules: ``options`` (what was asked; the CLI's options are generated from it), ``session`` (set-up on one
device, the profile.json it fills), ``run`` (one run on the device), ``outcome`` (one run's pulled files →
an Iteration), ``oom`` (who killed it: the kernel's record), ``cooldown`` (the thermal wait), ``orchestrate``
(the runs per device, devices in parallel).
Names resolve lazily: the CLI reads ``ProfileOptions`` without importing adb and the rest.
"""

from edgeship.lazy import lazy_exports

_PUBLIC = {
    "ProfileOptions": "edgeship.android_harness.profile.options",
    "ProfileSession": "edgeship.android_harness.profile.session",
    "DeviceOutcome": "edgeship.android_harness.profile.orchestrate",
    "profile_device": "edgeship.android_harness.profile.orchestrate",
    "profile_devices": "edgeship.android_harness.profile.orchestrate",
    "raise_for_outcomes": "edgeship.android_harness.profile.orchestrate",
    "run_plan": "edgeship.android_harness.profile.orchestrate",
    "on_each_device": "edgeship.android_harness.profile.orchestrate",
    "device_failure": "edgeship.android_harness.profile.orchestrate",
}
__all__ = sorted(_PUBLIC)
__getattr__ = lazy_exports(__name__, _PUBLIC)
