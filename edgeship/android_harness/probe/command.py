"""The probe's command line, built in one place: ``probe [options] --out DIR -- RUNNER ARGS…``."""

from __future__ import annotations

from collections.abc import Sequence

DEFAULT_INTERVAL_MS = 50


def probe_command(
    probe_path: str,
    out_dir: str,
    runner_argv: Sequence[str],
    *,
    interval_ms: int = DEFAULT_INTERVAL_MS,
    timeout_s: float | None = None,
    smaps_interval_ms: int | None = None,
    rollup_interval_ms: int | None = None,
    maps: Sequence[str] = (),
    proc_dir: str | None = None,
) -> list[str]:
    """The probe's argv (a list: quote every word when it goes through a device shell).

    None leaves a flag out and the probe uses its default: no timeout, adaptive smaps and smaps_rollup
    cadences (each expensive read ≤ 1% of wall time). ``maps``: files whose mappings smaps attributes
    (the bundle); ``proc_dir``: tests only, crafted status/smaps files instead of /proc/PID.
    """
    argv = [probe_path, "--interval-ms", str(interval_ms)]
    if timeout_s is not None:
        argv += ["--timeout-s", f"{timeout_s:g}"]
    if smaps_interval_ms is not None:
        argv += ["--smaps-interval-ms", str(smaps_interval_ms)]
    if rollup_interval_ms is not None:
        argv += ["--rollup-interval-ms", str(rollup_interval_ms)]
    for path in maps:
        argv += ["--maps", path]
    if proc_dir is not None:
        argv += ["--proc-dir", str(proc_dir)]
    return [*argv, "--out", out_dir, "--", *runner_argv]
