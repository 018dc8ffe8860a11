"""profile.json's memory peaks from the probe's files (docs/contracts.md), each rule on a crafted run.

``hwm`` is the largest of four readings, and each case below makes a different one the largest, so a rule
that drops any of them (or reports VmRSS as the high-water mark) fails one case.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeship.android_harness.probe import read_probe_output
from edgeship.android_harness.probe.results import TIMELINE_FIELDS

MIB = 1024 * 1024


def craft_run(folder: Path, rows: list[dict[str, int | None]], maxrss: int | None) -> dict[str, int | None]:
    """A finished probe folder with ``rows`` as its timeline (a field not given: the kernel lacks it)."""
    folder.mkdir()
    lines = ["t_ms," + ",".join(TIMELINE_FIELDS)]
    for t, row in enumerate(rows):
        cells = ["" if row.get(name) is None else str(row[name]) for name in TIMELINE_FIELDS]
        lines.append(f"{t * 50}," + ",".join(cells))
    (folder / "timeline.csv").write_text("\n".join(lines) + "\n")
    peaks = {}
    for name in TIMELINE_FIELDS:
        seen = [row[name] for row in rows if row.get(name) is not None]
        peaks[name] = max(seen) if seen else None
    result = {
        "exit": {"code": 0, "signal": None, "timed_out": False},
        "wall_s": len(rows) * 0.05,
        "rusage": {} if maxrss is None else {"maxrss": maxrss},
        "samples": len(rows),
        "peaks": peaks,
        "missing": [name for name, value in peaks.items() if value is None],
        "mappings": [],
    }
    (folder / "result.json").write_text(json.dumps(result))
    return read_probe_output(folder).memory_figures()


def status(rss: int, hwm: int, swap: int = 0) -> dict[str, int | None]:
    return {"vm_rss": rss * MIB, "vm_hwm": hwm * MIB, "vm_swap": swap * MIB, "rss_anon": rss * MIB // 2}


@pytest.mark.parametrize(
    ("case", "rows", "maxrss", "hwm"),
    [
        # the engine peaked between two samples: only the kernel's VmHWM saw it
        ("vm_hwm", [status(100, 100), status(120, 300), status(110, 300)], 250 * MIB, 300 * MIB),
        # zram took anonymous pages out of RSS: RSS + swap is above anything RSS ever was
        ("rss_plus_swap", [status(100, 150), status(100, 150, swap=90)], 120 * MIB, 190 * MIB),
        # the last peak came after the last sample: wait4's ru_maxrss is the high-water mark at exit
        ("ru_maxrss", [status(100, 100), status(110, 120)], 400 * MIB, 400 * MIB),
    ],
)
def test_hwm_is_the_largest_reading_whichever_it_is(
    tmp_path: Path, case: str, rows: list[dict[str, int | None]], maxrss: int, hwm: int
) -> None:
    figures = craft_run(tmp_path / case, rows, maxrss)
    assert figures["hwm"] == hwm
    assert figures["peak_rss"] == max(row["vm_rss"] for row in rows)  # type: ignore[type-var]
    assert figures["peak_swap"] == max(row["vm_swap"] for row in rows)  # type: ignore[type-var]


def test_a_kernel_without_the_fields_gives_null_never_zero(tmp_path: Path) -> None:
    figures = craft_run(tmp_path / "bare", [{"rss": 5 * MIB}, {"rss": 7 * MIB}], maxrss=None)
    assert figures["hwm"] is None and figures["peak_swap"] is None and figures["peak_anon"] is None
    assert figures["peak_rss"] == 7 * MIB  # smaps_rollup's Rss stands in for VmRSS
