"""`edgeship fit`: a bundle's fit curve — decode speed and memory at decreasing available memory, the knee
and the kill point — on virtual devices (their own RAM, through adb) and phones (a balloon).

Modules: ``options`` (what fit was asked), ``limits`` (taking memory away and giving it back: the cgroup
lease, the balloon), ``balloon`` + ``balloon.c`` (the native helper), ``bisect`` (where to measure next,
pure), ``sweep`` (one device's sweep, devices in parallel, fit.json). Each step is a normal probed run of
``android_harness/profile``; fit.json's contract is ``edgeship/profiles/fitcurve.py``.
"""

from edgeship.lazy import lazy_exports

_PUBLIC = {
    "FitOptions": "edgeship.android_harness.fit.options",
    "FitOutcome": "edgeship.android_harness.fit.sweep",
    "fit_devices": "edgeship.android_harness.fit.sweep",
    "LimitUnavailable": "edgeship.android_harness.fit.limits",
}
__all__ = sorted(_PUBLIC)
__getattr__ = lazy_exports(__name__, _PUBLIC)
