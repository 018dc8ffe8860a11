"""The native memory probe: C source (probe.c), its cross-build (build.py) and its output reader (results.py).

The probe runs on the device as ``probe [options] --out DIR -- RUNNER ARGS…``; ``probe_command`` builds that
argument list so callers never hand-assemble it.
"""

from __future__ import annotations

from collections.abc import Sequence

from edgeship.android_harness.probe.build import (
    ZIG_TARGETS,
    ProbeBuildError,
    build_probe,
    cache_root,
    probe_source_sha256,
)
from edgeship.android_harness.probe.results import (
    MappingPeak,
    MappingSample,
    ProbeRun,
    Sample,
    read_probe_output,
)

DEFAULT_INTERVAL_MS = 50


def probe_command(
    probe_path: str,
    out_dir: str,
    runner_argv: Sequence[str],
    *,
    interval_ms: int = DEFAULT_INTERVAL_MS,
    maps: Sequence[str] = (),
    timeout_s: float | None = None,
    smaps_interval_ms: int | None = None,
    rollup_interval_ms: int | None = None,
    proc_dir: str | None = None,
) -> list[str]:
    """The probe's argv (a list: quote it with shlex.join when it goes through a device shell).

    ``smaps_interval_ms`` / ``rollup_interval_ms`` None = adaptive (each expensive read ≤ 1% of wall time).
    """
    argv = [probe_path, "--interval-ms", str(interval_ms)]
    if smaps_interval_ms:
        argv += ["--smaps-interval-ms", str(smaps_interval_ms)]
    if rollup_interval_ms:
        argv += ["--rollup-interval-ms", str(rollup_interval_ms)]
    for path in maps:
        argv += ["--maps", path]
    if timeout_s:
        argv += ["--timeout-s", f"{timeout_s:g}"]
    if proc_dir:  # tests only: crafted status/smaps files instead of /proc/PID
        argv += ["--proc-dir", str(proc_dir)]
    argv += ["--out", out_dir, "--", *runner_argv]
    return argv


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
]
