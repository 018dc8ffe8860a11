"""The native memory probe: C source (probe.c), its cross-build (build.py), its command line (command.py)
and its output reader (results.py).
"""

from edgeship.android_harness.probe.build import (
    ZIG_TARGETS,
    ProbeBuildError,
    build_probe,
    cache_root,
    probe_source_sha256,
)
from edgeship.android_harness.probe.command import DEFAULT_INTERVAL_MS, probe_command
from edgeship.android_harness.probe.results import (
    MappingPeak,
    MappingSample,
    ProbeRun,
    Sample,
    read_probe_output,
    read_result,
)

__all__ = [
    "DEFAULT_INTERVAL_MS",
    "ZIG_TARGETS",
    "MappingPeak",
    "MappingSample",
    "ProbeBuildError",
    "ProbeRun",
    "Sample",
    "build_probe",
    "cache_root",
    "probe_command",
    "probe_source_sha256",
    "read_probe_output",
    "read_result",
]
